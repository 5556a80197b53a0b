"""A local deployment on a Kafka broker, for tests and benchmarks.

:class:`StreamEnv` is one isolated deployment (its own topics, consumer group and
database) on a shared broker; :class:`Worker` runs ``nightjar worker`` as a real
process, as an operator would, and reads its Prometheus endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient

from nightjar.processes import free_port
from nightjar.runner.records import decode
from nightjar.settings import KafkaConnection
from nightjar.store import NightjarStore
from nightjar.surveys.registry import AlertParser
from stream.kafka import new_producer

ROOT = Path(__file__).resolve().parents[1]  #: where ``python -m nightjar.cli`` runs


@dataclass
class StreamEnv:
    """One isolated deployment on the shared test broker: own topics, group, database."""

    bootstrap: str
    mongo_uri: str
    home: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    partitions: int = 4
    batch_size: int = 200
    #: further settings (security options, say), as environment variables
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            "NIGHTJAR_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "NIGHTJAR_KAFKA_GROUP_ID": f"nightjar-{self.tag}",
            "NIGHTJAR_TOPIC_ALERTS": f"alerts-{self.tag}",
            "NIGHTJAR_TOPIC_CLASSIFICATIONS": f"classifications-{self.tag}",
            "NIGHTJAR_TOPIC_DEAD_LETTERS": f"dead-letters-{self.tag}",
            "NIGHTJAR_TOPIC_LC_CLASSIFY": f"lc-classify-{self.tag}",
            # delivery tests count one output record per alert; the classifier's own
            # records are tested with it switched on (tests/test_lc_classify.py)
            "NIGHTJAR_LC_CLASSIFIER": "false",
            "NIGHTJAR_ALERTS_PARTITIONS": str(self.partitions),
            "NIGHTJAR_WORKER_BATCH_SIZE": str(self.batch_size),
            "NIGHTJAR_WORKER_BATCH_SECONDS": "0.3",
            "NIGHTJAR_KAFKA_SESSION_TIMEOUT": "6",
            "NIGHTJAR_HOME": str(self.home),
            "NIGHTJAR_DATABASE": f"nightjar_stream_{self.tag}",
            "MONGODB_URI": self.mongo_uri,
            **self.extra,
        }

    @property
    def database(self) -> str:
        return self.env["NIGHTJAR_DATABASE"]

    def topic(self, role: str) -> str:
        return self.env[f"NIGHTJAR_TOPIC_{role.upper()}"]

    @contextlib.asynccontextmanager
    async def store(self) -> AsyncIterator[NightjarStore]:
        """The deployment's store (dropped with the test's database by the caller)."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.mongo_uri,
                                                                      tz_aware=True)
        try:
            store = NightjarStore(client[self.database])
            await store.init()
            yield store
        finally:
            await client.close()

    async def group_members(self) -> int:
        """Members of the deployment's consumer group once it is stable (else 0)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            try:
                (response,) = await admin.describe_consumer_groups(
                    [self.env["NIGHTJAR_KAFKA_GROUP_ID"]])
            except KafkaError:  # the group's coordinator is not up yet
                return 0
            # groups: (error_code, group, state, protocol_type, protocol, members, ...)
            (group,) = response.groups
            return len(group[5]) if group[2] == "Stable" else 0
        finally:
            await admin.close()

    async def drop(self) -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.mongo_uri)
        await client.drop_database(self.database)
        await client.close()

    def cli(self, *args: str, timeout: float = 300,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nightjar.cli", *args],
                              env={**os.environ, **self.env, **(extra_env or {})}, cwd=ROOT,
                              capture_output=True,
                              text=True, timeout=timeout, check=False)


class Worker:
    """``nightjar worker`` in a subprocess, with its own metrics port and log file."""

    def __init__(self, stream_env: StreamEnv, name: str = "worker",
                 args: tuple[str, ...] = ()):
        self.metrics_port = free_port()
        self.log_path = stream_env.home / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nightjar.cli", "worker", "--loglevel", "warn",
             "--metrics-port", str(self.metrics_port), *args],
            env={**os.environ, **stream_env.env}, cwd=ROOT, stdout=self._log,
            stderr=subprocess.STDOUT)

    def metric(self, name: str, **labels: str) -> float:
        """Current value of one sample of the worker's Prometheus endpoint (0 if absent)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown, no final offset commit."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._log.close()
        return self.proc.returncode


def keyed(packets: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    """Alert packets as (objectId key, value) messages, as ``nightjar produce`` sends them."""
    parser = AlertParser()
    return [(parser.message_key(raw), raw) for raw in packets]


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = new_producer(KafkaConnection(bootstrap))
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class TopicRecord(NamedTuple):
    key: bytes | None
    value: dict[str, Any]  #: the decoded Avro record
    timestamp_ms: int  #: the message's Kafka timestamp


async def read_topic(bootstrap: str, topic: str, expected: int, wait_s: float = 120,
                     raw: bool = False) -> list[TopicRecord]:
    """Every record on a topic (key, decoded value; with ``raw`` the bytes as they are),
    once ``expected`` have arrived.

    Waits up to ``wait_s`` seconds, then returns what there is; reads a little longer
    after reaching ``expected`` to catch any surplus.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                fetch_max_bytes=50 * 1024 * 1024)
    await consumer.start()
    out: list[TopicRecord] = []
    try:
        deadline = time.monotonic() + wait_s
        while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()  # no public refresh in aiokafka
            await asyncio.sleep(0.5)
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        surplus_deadline: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    values = [rec.value] if raw else decode(rec.value or b"")
                    out.extend(TopicRecord(rec.key, value, rec.timestamp) for value in values)
            if len(out) >= expected:
                surplus_deadline = surplus_deadline or time.monotonic() + 2
                if time.monotonic() > surplus_deadline:
                    break
    finally:
        await consumer.stop()
    return out


async def wait_for(predicate: Callable[[], Any], wait_s: float, what: str,
                   interval: float = 0.5) -> None:
    """Await an async predicate until true; fail with ``what`` after ``wait_s`` s."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {wait_s:.0f} s waiting for {what}")
