"""The stream driver: store failures are retried, never acknowledged as done."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nightjar.alerts import DeadLetter
from nightjar.archive import LocalArchive
from nightjar.ingest import BatchProcessor
from nightjar.lightcurve import ObjectWrite
from nightjar.store import NightjarStore
from nightjar.store.mongo import WriteSummary
from stream.driver import InputMessage, StreamDriver
from stream.metrics import WorkerMetrics
from stream.records import decode


class FlakyStore(NightjarStore):
    """The real store, whose first ``failures`` writes fail as if the server were down."""

    def __init__(self, inner: NightjarStore, failures: int):
        super().__init__(inner.db)
        self.failures = failures

    async def write(self, writes: Sequence[ObjectWrite], dead_letters: Sequence[DeadLetter] = (),
                    now: Any = None) -> WriteSummary:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("server selection timed out")
        return await super().write(writes, dead_letters, now)


async def test_store_outage_is_retried_until_the_batch_is_stored(
        store: NightjarStore, tmp_path: Path, simulated: list[tuple[str, int, bytes]]) -> None:
    flaky = FlakyStore(store, failures=2)
    sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        sent.append((topic, key, value))

        async def delivered() -> None:
            return None
        return delivered()

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
