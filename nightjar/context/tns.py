"""The Transient Name Server: a local snapshot of its public objects, searched by position
or name, refreshed through TNS's API.

TNS publishes the full list of public objects as ``tns_public_objects.csv.zip`` (daily)
and the objects added or modified on a day as ``tns_public_objects_YYYYMMDD.csv.zip``,
both under ``/system/files/tns_public_objects/``.  Every request is a POST with the
bot's ``api_key`` and the ``tns_marker{...}`` User-Agent that TNS requires; TNS says how
many requests remain in ``x-rate-limit-remaining`` and when the window resets in
``x-rate-limit-reset`` [s], and answers 429 when the limit is exceeded.  The CSV's first
line is the file's timestamp, the second its header.

:func:`sync` fetches the full file once, then the daily files since the last sync
(incremental), merging by ``objid``; the snapshot is one parquet file, replaced
atomically.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import logging
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nightjar.context.catalogs import validate_cone
from nightjar.sky import separation_deg
from nightjar.values import finite_or_none

log = logging.getLogger(__name__)

FILES_PATH = "/system/files/tns_public_objects/"
FULL_FILE = "tns_public_objects.csv.zip"
SNAPSHOT = "tns_public_objects.parquet"
#: Columns of TNS's public-objects CSV (the snapshot keeps them all, as text or numbers).
COLUMNS = ("objid", "name_prefix", "name", "ra", "declination", "redshift", "typeid", "type",
           "reporting_groupid", "reporting_group", "source_groupid", "source_group",
           "discoverydate", "discoverymag", "discmagfilter", "filter", "reporters",
           "time_received", "internal_names", "Discovery_ADS_bibcode", "Class_ADS_bibcodes",
           "creationdate", "lastmodified")
REQUIRED = ("objid", "name_prefix", "name", "ra", "declination")
_NUMERIC = {"objid": pa.int64(), "ra": pa.float64(), "declination": pa.float64(),
            "redshift": pa.float64(), "typeid": pa.float64(), "reporting_groupid": pa.float64(),
            "source_groupid": pa.float64(), "discoverymag": pa.float64(),
            "discmagfilter": pa.float64()}
#: Within this distance of an object a TNS object is taken to be the same transient
#: (finding charts, the gateway's Object.tns) [arcsec].
#: Longest wait for a rate-limit window to reset [s]; beyond it, sync gives up.
MAX_RATE_WAIT = 900.0


class TnsError(RuntimeError):
    """TNS could not be reached, refused us, or sent something unusable."""


def user_agent(bot_id: int, bot_name: str) -> str:
    """The User-Agent TNS requires of bots."""
    marker = {"tns_id": bot_id, "type": "bot", "name": bot_name}
    return f"tns_marker{json.dumps(marker)}"


def parse_public_objects(payload: bytes) -> pa.Table:
    """A public-objects file (zip or plain CSV, timestamp line first) as an Arrow table.

    Raises :class:`TnsError` when the payload is not such a file.
    """
    try:
        if payload[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                names = [n for n in archive.namelist() if n.endswith(".csv")]
                if not names:
                    raise TnsError("zip file holds no .csv")
                payload = archive.read(names[0])
        text = payload.decode("utf-8")
    except (zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise TnsError(f"not a TNS public-objects file: {exc}") from exc
    lines = text.splitlines()
    if len(lines) < 2:
        raise TnsError("not a TNS public-objects file: fewer than two lines")
    reader = csv.DictReader(lines[1:])
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise TnsError(f"not a TNS public-objects file: no column {', '.join(missing)} "
                       f"(first line {lines[0][:60]!r})")
    rows = list(reader)
    columns: dict[str, pa.Array] = {}
    for name in COLUMNS:
        values = [r.get(name) or None for r in rows]
        if name in _NUMERIC:
            try:
                columns[name] = pa.array([None if v is None else float(v) for v in values],
                                         pa.float64()).cast(_NUMERIC[name])
            except (ValueError, pa.ArrowInvalid) as exc:
                raise TnsError(f"column {name}: {exc}") from exc
        else:
            columns[name] = pa.array(values, pa.string())
    return pa.table(columns)


def merge(snapshot: pa.Table | None, update: pa.Table) -> pa.Table:
    """The snapshot with the update's rows replacing those of the same ``objid``."""
    if snapshot is None or snapshot.num_rows == 0:
        return update
    keep = pc.invert(pc.is_in(snapshot["objid"], value_set=update["objid"]))
    return pa.concat_tables([snapshot.filter(keep), update.select(snapshot.column_names)])


@dataclass(frozen=True)
class TnsObject:
    objid: int
    name: str  #: with prefix, e.g. "SN 2020oi"
    type: str | None
    redshift: float | None
    ra: float  #: [deg]
    dec: float  #: [deg]
    discovery_date: str | None
    reporting_group: str | None
    internal_names: str | None
    distance_arcsec: float | None = None


def _name_key(name: str) -> str:
    """"SN 2020oi", "SN2020oi", "AT 2020oi" and "2020oi" all name the same object."""
    compact = name.replace(" ", "").strip()
    for prefix in ("AT", "SN", "TDE", "FRB", "Kilonova", "FBOT", "NUC", "LRN", "LBV", "ILRT"):
        if compact.upper().startswith(prefix.upper()) and compact[len(prefix):][:1].isdigit():
            return compact[len(prefix):].lower()
    return compact.lower()


class TnsIndex:
    """A snapshot held in memory for searches by position and by name."""

    def __init__(self, table: pa.Table):
        self.table = table
        self.ra = table["ra"].to_numpy(zero_copy_only=False).astype(float)
        self.dec = table["declination"].to_numpy(zero_copy_only=False).astype(float)
        self._by_name = {_name_key(n): i for i, n in enumerate(table["name"].to_pylist()) if n}
        self._rows = table.to_pylist()

    @classmethod
    def load(cls, path: Path) -> TnsIndex:
        return cls(pq.read_table(path) if path.exists() else pa.table(
            {c: pa.array([], _NUMERIC.get(c, pa.string())) for c in COLUMNS}))

    def __len__(self) -> int:
        return self.table.num_rows

    def _object(self, i: int, distance: float | None = None) -> TnsObject:
        r = self._rows[i]
        return TnsObject(
            objid=r["objid"], name=f"{r['name_prefix'] or ''} {r['name']}".strip(),
            type=r.get("type"),
            redshift=finite_or_none(r.get("redshift")),
            ra=r["ra"], dec=r["declination"], discovery_date=r.get("discoverydate"),
            reporting_group=r.get("reporting_group"), internal_names=r.get("internal_names"),
            distance_arcsec=distance)

    def search(self, ra: float, dec: float, radius_arcsec: float,
               limit: int = 10) -> list[TnsObject]:
        """TNS objects within the cone [deg, arcsec], nearest first."""
        validate_cone(ra, dec, radius_arcsec)
        if not len(self):
            return []
        dist = separation_deg(self.ra, self.dec, ra, dec) * 3600.0
        inside = np.flatnonzero(dist <= radius_arcsec)
        order = inside[np.argsort(dist[inside], kind="stable")][:limit]
        return [self._object(int(i), float(dist[i])) for i in order]

    def by_name(self, name: str) -> TnsObject | None:
        i = self._by_name.get(_name_key(name))
        return None if i is None else self._object(i)


# ------------------------------------------------------------------------- sync
@dataclass
class SyncReport:
    files: list[str]
    rows_received: int
    objects: int  #: in the snapshot afterwards
    rate_limit_waits: int


class TnsClient:
    """Downloads public-objects files; respects TNS's rate-limit headers.

    Parameters
    ----------
    http : httpx.AsyncClient
        Injected client (its base URL is the TNS site).
    bot_id, bot_name, api_key
        The bot's credentials (settings).
    sleep : callable
        ``asyncio.sleep``, replaceable to observe the waits.
    """

    def __init__(self, http: httpx.AsyncClient, bot_id: int, bot_name: str, api_key: str,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 max_attempts: int = 5):
        self.http = http
        self.headers = {"User-Agent": user_agent(bot_id, bot_name)}
        self.api_key = api_key
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.waits = 0
        self._pause_until_reset: float | None = None

    async def _respect(self, seconds: float) -> None:
        if seconds > MAX_RATE_WAIT:
            raise TnsError(f"TNS rate limit resets in {seconds:.0f} s; try again later")
        self.waits += 1
        await self.sleep(max(seconds, 0.0))

    async def post(self, path: str, form: dict[str, str], what: str) -> httpx.Response:
        """POST ``form`` (plus the API key) to ``path``: retried on network errors and
        5xx, paused on the rate limit; any other answer is returned as it came.

        ``what`` names the request in errors.  Raises :class:`TnsError` when TNS cannot
        be reached, refuses the bot's credentials, or keeps failing.
        """
        for attempt in range(1, self.max_attempts + 1):
            if self._pause_until_reset is not None:
                await self._respect(self._pause_until_reset)
                self._pause_until_reset = None
            try:
                response = await self.http.post(path, headers=self.headers,
                                                data={"api_key": self.api_key, **form})
            except httpx.HTTPError as exc:
                if attempt == self.max_attempts:
                    raise TnsError(f"TNS unreachable: {type(exc).__name__}") from exc
                await self.sleep(2.0 ** attempt)
                continue
            reset = _header_float(response, "x-rate-limit-reset")
            if response.status_code == 429:
                log.warning("TNS rate limit reached; waiting %.0f s", reset or 60.0)
                await self._respect(reset if reset is not None else 60.0)
                continue
            if _header_float(response, "x-rate-limit-remaining") == 0 and reset is not None:
                self._pause_until_reset = reset  # the next request would be refused
            if response.status_code in (401, 403):
                raise TnsError(f"TNS refused the bot's credentials ({response.status_code}); "
                               "check NIGHTJAR_TNS_BOT_ID, _BOT_NAME and _API_KEY")
            if response.status_code >= 500 and attempt < self.max_attempts:
                await self.sleep(2.0 ** attempt)
                continue
            return response
        raise TnsError(f"gave up on {what} after {self.max_attempts} attempts")

    async def fetch(self, file_name: str) -> bytes | None:
        """One file's bytes; None when TNS has no such file (404)."""
        response = await self.post(FILES_PATH + file_name, {}, file_name)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise TnsError(f"TNS answered {response.status_code} for {file_name}")
        return response.content


def _header_float(response: httpx.Response, name: str) -> float | None:
    try:
        return float(response.headers[name])
    except (KeyError, ValueError):
        return None


def _load(directory: Path) -> tuple[pa.Table | None, dict[str, Any]]:
    snapshot_path = directory / SNAPSHOT
    state_path = directory / "sync.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    return (pq.read_table(snapshot_path) if snapshot_path.exists() else None), state


def _save(directory: Path, snapshot: pa.Table, today: dt.date) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{SNAPSHOT}.tmp"
    pq.write_table(snapshot, tmp)
    tmp.replace(directory / SNAPSHOT)
    (directory / "sync.json").write_text(json.dumps({
        "synced_through": today.isoformat(), "objects": snapshot.num_rows,
        "at": dt.datetime.now(dt.UTC).isoformat()}))


async def sync(client: TnsClient, directory: Path, today: dt.date) -> SyncReport:
    """Bring the snapshot under ``directory`` up to ``today``.

    The first sync downloads the full file; later ones the daily files of every day
    from the last synced day to ``today`` (the last synced day again, since its file
    grows during that day).  Nothing is written unless every download parsed.
    """
    snapshot, state = await asyncio.to_thread(_load, directory)
    files: list[str] = []
    received = 0
    if snapshot is None or "synced_through" not in state:
        payload = await client.fetch(FULL_FILE)
        if payload is None:
            raise TnsError(f"TNS has no {FULL_FILE}")
        snapshot = parse_public_objects(payload)
        files.append(FULL_FILE)
        received += snapshot.num_rows
        start = today
    else:
        start = dt.date.fromisoformat(state["synced_through"])
    day = start
    while day <= today:
        name = f"tns_public_objects_{day:%Y%m%d}.csv.zip"
        payload = await client.fetch(name)
        if payload is not None:
            update = parse_public_objects(payload)
            snapshot = merge(snapshot, update)
            received += update.num_rows
            files.append(name)
        day += dt.timedelta(days=1)
    await asyncio.to_thread(_save, directory, snapshot, today)
    return SyncReport(files, received, snapshot.num_rows, client.waits)


__all__ = ["COLUMNS", "SyncReport", "TnsClient", "TnsError", "TnsIndex", "TnsObject",
           "merge", "parse_public_objects", "sync", "user_agent"]
