"""A single-node Apache Kafka 3.9 broker (KRaft) on 127.0.0.1 for development and tests.

Kafka is not packaged for PyPI or Debian, so its jars are fetched from Maven Central
(``org.apache.kafka:kafka_2.13`` with its runtime dependencies) by Maven into a cache
directory outside the repository, once.  The broker runs as a plain ``java`` process
with a small heap; its storage is formatted on first start.

Kafka 4.x removed protocol versions that aiokafka (under Faust) still uses, so the
version stays on 3.9.x.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from nightjar.processes import free_port, pid_alive

KAFKA_VERSION = "3.9.1"
SLF4J_VERSION = "1.7.36"  # the reload4j binding Kafka 3.9's own distribution ships
JAVA_HEAP = "-Xmx512m"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>nightjar.dev</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>{slf4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J = """log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


class KafkaUnavailable(RuntimeError):
    """Java or Maven is missing, or the broker did not come up; the message says which."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nightjar" / f"kafka-{KAFKA_VERSION}"


def missing_tools() -> list[str]:
    """Which of java and mvn are not on PATH."""
    return [tool for tool in ("java", "mvn") if shutil.which(tool) is None]


def fetch_kafka(cache_dir: Path | None = None) -> Path:
    """The directory of Kafka's jars, fetched with Maven on first use."""
    cache = cache_dir or default_cache_dir()
    libs = cache / "libs"
    done = cache / "complete"
    if done.exists():
        return libs
    if shutil.which("mvn") is None:
        raise KafkaUnavailable("Maven (mvn) is needed once to fetch Kafka's jars")
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "pom.xml").write_text(_POM.format(kafka=KAFKA_VERSION, slf4j=SLF4J_VERSION))
    tmp = cache / "libs.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    proc = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(cache / "pom.xml"), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"],
        capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise KafkaUnavailable(f"mvn could not fetch Kafka {KAFKA_VERSION}:\n"
                               f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    done.write_text(KAFKA_VERSION)
    return libs


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding.

    Like Kafka's own ``Uuid.randomUuid`` it never begins with ``-``, so even a tool that
    passes it as a separate argument cannot mistake it for an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class DevKafka:
    """A KRaft broker whose state (config, data, log, pid) lives under ``workdir``.

    Parameters
    ----------
    workdir : Path
        Broker directory; reused across starts, so topics survive a restart.
    port : int
        Client port on 127.0.0.1; the controller listens on a second free port.
    cache_dir : Path, optional
        Where Kafka's jars are cached (default ``~/.cache/nightjar/kafka-<version>``).
    """

    workdir: Path
    port: int
    cache_dir: Path | None = None
    #: when set, a second listener on ``sasl_port`` takes SASL/PLAIN with these users,
    #: as ZTF's and LSST's brokers do (for testing authenticated clients)
    sasl_users: dict[str, str] | None = None
    sasl_port: int | None = None
    #: when set, a third listener on ``ssl_port`` speaks TLS with this PEM file (the
    #: server's private key, unencrypted, followed by its certificate chain)
    ssl_keystore_pem: Path | None = None
    ssl_port: int | None = None
    #: when set (with ``ssl_keystore_pem``), a fourth listener on ``scram_port`` takes
    #: SASL_SSL with SCRAM-SHA-512, as Rubin's alert brokers do; the users are created
    #: when the storage is formatted (KRaft keeps SCRAM credentials in its metadata log)
    scram_users: dict[str, str] | None = None
    scram_port: int | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        return f"127.0.0.1:{self.sasl_port}" if self.sasl_users and self.sasl_port else None

    @property
    def ssl_bootstrap(self) -> str | None:
        return f"127.0.0.1:{self.ssl_port}" if self.ssl_keystore_pem and self.ssl_port else None

    @property
    def scram_bootstrap(self) -> str | None:
        return (f"127.0.0.1:{self.scram_port}"
                if self.scram_users and self.scram_port and self.ssl_keystore_pem else None)

    @property
    def _state_file(self) -> Path:
        return self.workdir / "broker.json"

    def _read_state(self) -> dict[str, int] | None:
        try:
            state: dict[str, int] = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        return state if pid_alive(state["pid"]) else None

    def running(self) -> bool:
        state = self._read_state()
        return state is not None and _port_open(state["port"])

    def _configure(self, controller_port: int) -> Path:
        data = self.workdir / "data"
        props = self.workdir / "server.properties"
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}",
                     f"CONTROLLER://127.0.0.1:{controller_port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        advertised = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        sasl: list[str] = []  # security settings of the optional listeners
        if self.sasl_bootstrap:
            listeners.append(f"SASL_PLAINTEXT://{self.sasl_bootstrap}")
            advertised.append(f"SASL_PLAINTEXT://{self.sasl_bootstrap}")
            protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
            users = " ".join(f'user_{name}="{pw}"' for name, pw in (self.sasl_users or {}).items())
            sasl = ["listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN",
                    "listener.name.sasl_plaintext.plain.sasl.jaas.config="
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f"{users};"]
        if self.ssl_bootstrap:
            listeners.append(f"SSL://{self.ssl_bootstrap}")
            advertised.append(f"SSL://{self.ssl_bootstrap}")
            protocols.append("SSL:SSL")
            sasl += ["ssl.keystore.type=PEM", f"ssl.keystore.location={self.ssl_keystore_pem}",
                     "ssl.client.auth=none"]
        if self.scram_bootstrap:
            listeners.append(f"SASL_SSL://{self.scram_bootstrap}")
            advertised.append(f"SASL_SSL://{self.scram_bootstrap}")
            protocols.append("SASL_SSL:SASL_SSL")
            sasl += ["listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512",
                     "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                     "org.apache.kafka.common.security.scram.ScramLoginModule required;"]
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners={','.join(listeners)}",
            f"advertised.listeners={','.join(advertised)}",
            "inter.broker.listener.name=PLAINTEXT",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map={','.join(protocols)}",
            *sasl,
            f"log.dirs={data}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "message.max.bytes=10485760",
            "log.retention.hours=168",
            "",
        ]))
        (self.workdir / "log4j.properties").write_text(_LOG4J)
        return props

    def _java(self, libs: Path, *args: str) -> list[str]:
        return ["java", JAVA_HEAP, "-Xms128m", "-XX:+UseSerialGC",
                f"-Dlog4j.configuration=file:{self.workdir / 'log4j.properties'}",
                "-cp", f"{libs}/*", *args]

    def format_storage(self, libs: Path, props: Path, cluster_id: str) -> None:
        """Format the KRaft log directory for ``cluster_id`` (any id Kafka accepts).

        The id goes in ``--cluster-id=<id>`` form: base64 ids may begin with ``-``, and
        ``-t <id>`` then reads the id as an option and fails.
        """
        scram = [f"--add-scram=SCRAM-SHA-512=[name={name},password={password}]"
                 for name, password in (self.scram_users or {}).items()]
        fmt = subprocess.run(self._java(libs, "kafka.tools.StorageTool", "format",
                                        f"--cluster-id={cluster_id}", "-c", str(props),
                                        *scram),
                             capture_output=True, text=True, check=False)
        if fmt.returncode != 0:
            raise KafkaUnavailable(f"formatting Kafka storage failed: {fmt.stderr[-2000:]}")

    def start(self, timeout: float = 60.0) -> str:
        """Start the broker (or find it running); return its bootstrap address."""
        if self.running():
            return self.bootstrap
        if shutil.which("java") is None:
            raise KafkaUnavailable("Java is needed to run the Kafka broker")
        libs = fetch_kafka(self.cache_dir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        props = self._configure(free_port())
        if not (self.workdir / "data" / "meta.properties").exists():
            self.format_storage(libs, props, new_cluster_id())
        log = (self.workdir / "broker.log").open("ab")
        proc = subprocess.Popen(self._java(libs, "kafka.Kafka", str(props)), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self._state_file.write_text(json.dumps({"pid": proc.pid, "port": self.port}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise KafkaUnavailable(f"Kafka exited with {proc.returncode}; see "
                                       f"{self.workdir / 'broker.log'}")
            if _port_open(self.port):
                return self.bootstrap
            time.sleep(0.2)
        self.stop()
        raise KafkaUnavailable(f"Kafka did not listen on {self.port} within {timeout:.0f} s")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker if it runs (SIGTERM, then SIGKILL); whether one was running."""
        state = self._read_state()
        if state is None:
            return False
        pid = state["pid"]
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.2)
            with contextlib.suppress(ChildProcessError):  # reap it when it is our child
                os.waitpid(pid, os.WNOHANG)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._state_file.unlink(missing_ok=True)
        return True

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
