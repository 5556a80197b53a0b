"""The stream driver: transient store failures are retried, permanent ones bisected."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaTimeoutError
from bson.errors import InvalidDocument
from pymongo.errors import (
    AutoReconnect,
    DocumentTooLarge,
    DuplicateKeyError,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from nightjar.core.lightcurve import ObjectWrite
from nightjar.runner.ingest import BatchProcessor
from nightjar.runner.records import decode
from nightjar.store import NightjarStore
from nightjar.store.archive import LocalArchive
from nightjar.store.mongo import WriteSummary
from nightjar.store.schema import DEAD_LETTERS
from nightjar.surveys.interface import DeadLetter
from stream.driver import InputMessage, StreamDriver, is_transient
from stream.metrics import WorkerMetrics


def recording(sent: list[tuple[str, bytes | None, bytes]]) -> Any:
    """A producer that records each message and acknowledges it at once."""
    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        sent.append((topic, key, value))
        return asyncio.sleep(0)
    return send


class FlakyStore(NightjarStore):
    """The real store, whose first ``failures`` writes fail as if the server were down."""

    def __init__(self, inner: NightjarStore, failures: int):
        super().__init__(inner.db)
        self.failures = failures

    async def write(self, writes: Sequence[ObjectWrite], dead_letters: Sequence[DeadLetter] = (),
                    now: Any = None, **extra: Any) -> WriteSummary:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("server selection timed out")
        return await super().write(writes, dead_letters, now, **extra)


async def test_store_outage_is_retried_until_the_batch_is_stored(
        store: NightjarStore, tmp_path: Path, simulated: list[tuple[str, int, bytes]]) -> None:
    flaky = FlakyStore(store, failures=2)
    sent: list[tuple[str, bytes | None, bytes]] = []

    send = recording(sent)

    metrics = WorkerMetrics()
    driver = StreamDriver(BatchProcessor(flaky, LocalArchive(tmp_path)), send,
                          classifications_topic="out", dead_letters_topic="dlq",
                          metrics=metrics, max_retry_delay=0.01)
    messages = [InputMessage("ztf-alerts", 0, i, 1_000, raw)
                for i, (_, _, raw) in enumerate(simulated[:40])]
    result = await driver.handle(messages)
    assert flaky.failures == 0
    assert metrics.retries.labels("store")._value.get() == 2
    assert len(result.alerts) == 40
    assert await store.stored_alerts(c for _, c, _ in simulated[:40]) == {
        c for _, c, _ in simulated[:40]}
    # published only once the write finally succeeded: one record per alert, no dead letters
    assert [t for t, _, _ in sent] == ["out"] * 40
    assert sorted(decode(v)[0]["candid"] for _, _, v in sent) == sorted(
        c for _, c, _ in simulated[:40])


class PoisonStore(NightjarStore):
    """The real store, which refuses for good any write holding one candid's detection."""

    def __init__(self, inner: NightjarStore, poison: int):
        super().__init__(inner.db)
        self.poison = poison
        self.refusals = 0

    async def write(self, writes: Sequence[ObjectWrite], dead_letters: Sequence[DeadLetter] = (),
                    now: Any = None, **extra: Any) -> WriteSummary:
        if any(d["_id"] == self.poison for w in writes for d in w.detections):
            self.refusals += 1
            raise DocumentTooLarge("BSON document too large (17000000 bytes)")
        return await super().write(writes, dead_letters, now, **extra)


class Deliveries:
    """A producer whose deliveries the test acknowledges (or fails) when it chooses."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.pending: list[asyncio.Future[None]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        self.sent.append((topic, key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return future


def _driver(processor: BatchProcessor, send: Any, metrics: WorkerMetrics) -> StreamDriver:
    return StreamDriver(processor, send, classifications_topic="out", dead_letters_topic="dlq",
                        metrics=metrics, max_retry_delay=0.01)


async def test_alert_the_store_rejects_for_good_is_dead_lettered_and_the_rest_stored(
        store: NightjarStore, tmp_path: Path, simulated: list[tuple[str, int, bytes]]) -> None:
    batch = simulated[:40]
    poison_oid, poison, _ = batch[17]
    poisoned = PoisonStore(store, poison)
    sent: list[tuple[str, bytes | None, bytes]] = []

    send = recording(sent)
    metrics = WorkerMetrics()
    driver = _driver(BatchProcessor(poisoned, LocalArchive(tmp_path)), send, metrics)
    messages = [InputMessage("ztf-alerts", 0, i, 1_000, raw) for i, (_, _, raw) in
                enumerate(batch)]
    result = await asyncio.wait_for(driver.handle(messages), 60)  # it must not block
    others = {c for _, c, _ in batch} - {poison}
    assert {a.candid for a in result.alerts} == others
    assert await store.stored_alerts(c for _, c, _ in batch) == others
    letter = await store.db[DEAD_LETTERS].find_one({"candid": poison})
    assert letter is not None and letter["oid"] == poison_oid
    assert "DocumentTooLarge" in letter["reason"] and "permanently" in letter["reason"]
    assert letter["source"]["offset"] == 17 and bytes(letter["raw"]) == batch[17][2]
    # bounded: 3 tries of the whole batch, then one per half on the way down to the alert
    assert 3 < poisoned.refusals <= 3 + 2 * 6
    assert sorted(t for t, _, _ in sent) == ["dlq"] + ["out"] * 39


async def test_returns_only_after_the_broker_acknowledges_and_retries_a_failed_publish(
        store: NightjarStore, tmp_path: Path, simulated: list[tuple[str, int, bytes]]) -> None:
    producer = Deliveries()
    metrics = WorkerMetrics()
    driver = _driver(BatchProcessor(store, LocalArchive(tmp_path)), producer.send, metrics)
    messages = [InputMessage("ztf-alerts", 0, i, 1_000, raw)
                for i, (_, _, raw) in enumerate(simulated[:10])]
    handled = asyncio.create_task(driver.handle(messages))
    while len(producer.pending) < 10:  # noqa: ASYNC110 (waiting on the driver's progress)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    assert not handled.done()  # stored and sent, but nothing acknowledged yet
    for future in producer.pending[:9]:
        future.set_result(None)
    producer.pending[9].set_exception(KafkaTimeoutError("delivery timed out"))
    while len(producer.pending) < 20:  # noqa: ASYNC110 (the retry re-sends the batch)
        await asyncio.sleep(0.01)
    assert not handled.done()
    assert metrics.retries.labels("publish")._value.get() == 1
    for future in producer.pending[10:19]:
        future.set_result(None)
    await asyncio.sleep(0.2)
    assert not handled.done()  # one record of the retry still unacknowledged
    producer.pending[19].set_result(None)
    result = await asyncio.wait_for(handled, 10)
    assert len(result.alerts) == 10 and len(producer.sent) == 20


def test_store_errors_are_told_transient_or_permanent() -> None:
    transient = [AutoReconnect("connection reset"), NetworkTimeout("timed out"),
                 ServerSelectionTimeoutError("no primary"), NotPrimaryError("not primary"),
                 ConnectionResetError(), OperationFailure("interrupted", code=11602),
                 RuntimeError("unknown: retrying loses nothing")]
    permanent = [DocumentTooLarge("too large"), InvalidDocument("cannot encode"),
                 OperationFailure("Document failed validation", code=121),
                 DuplicateKeyError("E11000 duplicate key", code=11000),
                 ValueError("bad value")]
    assert [is_transient(e) for e in transient] == [True] * len(transient)
    assert [is_transient(e) for e in permanent] == [False] * len(permanent)


class FullDisk(LocalArchive):
    """The real archive on a disk that is full for its first ``full_for`` writes (ENOSPC),
    as a filling archive volume would be until an operator frees space."""

    def __init__(self, root: Path, full_for: int):
        super().__init__(root)
        self.full_for = full_for

    def put(self, alert: Any) -> None:
        if self.full_for:
            self.full_for -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        super().put(alert)


async def test_a_full_archive_disk_holds_the_batch_until_space_returns(
        store: NightjarStore, tmp_path: Path, simulated: list[tuple[str, int, bytes]]) -> None:
    """ENOSPC while archiving: nothing is stored, published or dead-lettered for the batch
    until the archive can write again, then all of it is, once."""
    archive = FullDisk(tmp_path / "archive", full_for=3)
    deliveries: list[tuple[str, bytes | None, bytes]] = []

    send = recording(deliveries)

    metrics = WorkerMetrics()
    driver = _driver(BatchProcessor(store, archive), send, metrics)
    batch = simulated[40:80]
    messages = [InputMessage("ztf-alerts", 0, i, 1_000, raw)
                for i, (_, _, raw) in enumerate(batch)]
    result = await driver.handle(messages)
    assert archive.full_for == 0 and metrics.retries.labels("store")._value.get() == 3
    candids = {c for _, c, _ in batch}
    assert len(result.alerts) == len(batch) and not result.dead_letters
    assert await store.stored_alerts(candids) == candids
    assert all(archive.get_avro(a.key) is not None for a in result.alerts)  # archived too
    assert sorted(decode(v)[0]["candid"] for t, _, v in deliveries if t == "out") == sorted(
        candids)  # published once each, after the retries
    assert await store.db[DEAD_LETTERS].count_documents(
        {"candid": {"$in": sorted(candids)}}) == 0
