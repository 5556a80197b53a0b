"""The embedded default database: an nx-27017 server (MongoDB wire protocol over SQLite).

When ``MONGODB_URI`` is unset, Nightjar starts ``nx-27017`` on a free loopback port
with its SQLite file under ``$NIGHTJAR_HOME`` and stops it on exit.  A server already
started for the same home by another Nightjar process (``nightjar serve`` while
``nightjar ingest`` runs) is reused rather than started twice on one file: its port
and pid are kept in ``$NIGHTJAR_HOME/embedded.json`` under a file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import PyMongoError

from nightjar.processes import free_port, pid_alive, terminate
from nightjar.settings import Settings
from nightjar.store.mongo import NightjarStore

STATE_FILE = "embedded.json"
DB_FILE = "nightjar.sqlite"


class EmbeddedServerError(RuntimeError):
    """The embedded database server could not be started."""


def _nx_executable() -> str:
    beside = Path(sys.executable).parent / "nx-27017"
    found = str(beside) if beside.exists() else shutil.which("nx-27017")
    if not found:
        raise EmbeddedServerError("nx-27017 is not installed (pip install nx-27017)")
    return found


def _uri(port: int) -> str:
    """The URI clients of the embedded server use.

    The driver's heartbeat waits ``connectTimeoutMS`` (20 s by default) for an answer, and
    on a timeout it resets the pool, cancelling the writes in flight.  nx-27017 answers in
    Python, after the command before it: writing a visit of new LSST objects (~10^5
    documents) kept it busy past 20 s on a busy 2-core machine.  A local server that is
    busy is not down (a dead one refuses the connection at once), so wait longer.
    """
    return f"mongodb://127.0.0.1:{port}/?directConnection=true&connectTimeoutMS=180000"


def _answers(uri: str, timeout_ms: int = 500) -> bool:
    client: MongoClient[dict[str, object]] = MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


class EmbeddedMongo:
    """Start (or reuse) the nx-27017 server for one Nightjar home directory.

    Parameters
    ----------
    home : Path
        ``$NIGHTJAR_HOME``; the SQLite file, log and state file live here.
    startup_timeout : float
        Seconds to wait for the server to answer a ping.
    port : int, optional
        The port to listen on (a restarted server keeps its address); None = a free one.
    """

    def __init__(self, home: Path, startup_timeout: float = 30.0, port: int | None = None):
        self.home = Path(home)
        self.startup_timeout = startup_timeout
        self.port = port
        self.uri: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def state_path(self) -> Path:
        return self.home / STATE_FILE

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".embedded.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _running(self) -> str | None:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None
        uri = _uri(int(state["port"]))
        if pid_alive(int(state["pid"])) and _answers(uri):
            return uri
        return None

    def start(self) -> str:
        """Return the URI of a running server for this home, starting one if needed."""
        with self._lock():
            running = self._running()
            if running:
                self.uri = running
                return running
            port = self.port or free_port()
            log = open(self.home / "nx-27017.log", "ab")  # noqa: SIM115 (owned by the child)
            self._process = subprocess.Popen(
                [_nx_executable(), "--db", str(self.home / DB_FILE), "--host", "127.0.0.1",
                 "-p", str(port), "--pid-file", str(self.home / "nx-27017.pid")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
            log.close()
            uri = _uri(port)
            deadline = time.monotonic() + self.startup_timeout
            while not _answers(uri):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self._terminate()
                    raise EmbeddedServerError(
                        f"nx-27017 did not start; see {self.home / 'nx-27017.log'}")
                time.sleep(0.1)
            self.state_path.write_text(json.dumps({"pid": self._process.pid, "port": port}))
            self.uri, self.port = uri, port
            return uri

    def stop(self) -> None:
        """Stop the server if this instance started it (a reused one is left running)."""
        proc = self._terminate()
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError), self._lock():
            state = json.loads(self.state_path.read_text())
            if state.get("pid") == proc.pid:
                self.state_path.unlink()

    def _terminate(self) -> subprocess.Popen[bytes] | None:
        proc, self._process = self._process, None
        if proc is None:
            return None
        terminate(proc)
        return proc

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def database_uri(settings: Settings) -> Iterator[str]:
    """The configured MongoDB URI, or an embedded server's for the lifetime of the block."""
    if settings.mongodb_uri:
        yield settings.mongodb_uri
        return
    with EmbeddedMongo(settings.home) as uri:
        yield uri


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[NightjarStore]:
    """A :class:`NightjarStore` on the configured database (embedded when none is)."""
    with database_uri(settings) as uri:
        async with store_at(uri, settings) as store:
            yield store


@contextlib.asynccontextmanager
async def store_at(uri: str, settings: Settings) -> AsyncIterator[NightjarStore]:
    """A :class:`NightjarStore` on the database at ``uri`` (its server already running)."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        yield NightjarStore(client[settings.database], live_feed=settings.live_events)
    finally:
        await client.close()
