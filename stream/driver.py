"""The thin driver shared by the Faust agent and ``nightjar reconcile``.

Kafka messages in; the topology's steps (:class:`nightjar.ingest.BatchProcessor`);
output and dead-letter records out.  Offsets are the caller's business: it
acknowledges a batch only after :meth:`StreamDriver.handle` returned, which happens
only once the store write succeeded *and* the broker acknowledged every output
record.  Re-processing a batch after a crash is harmless: the store writes are
idempotent (documents are keyed by candid and object), so the effect is exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from nightjar.alerts import AlertSource
from nightjar.ingest import BatchProcessor, BatchResult, RawInput
from stream.metrics import WorkerMetrics
from stream.records import classification_messages, dead_letter_messages

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Enqueue one message on a topic; the awaited result is the delivery future.
Send = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[Any]]]


@dataclass(frozen=True)
class InputMessage:
    """One consumed Kafka message, whatever client read it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    value: bytes

    def as_input(self) -> RawInput:
        return RawInput(self.value or b"", AlertSource(
            "kafka", topic=self.topic, partition=self.partition, offset=self.offset,
            timestamp_ms=self.timestamp_ms))


def now_ms() -> int:
    return int(time.time() * 1000)


class StreamDriver:
    """Process batches of Kafka messages and publish what they yield.

    Parameters
    ----------
    processor : BatchProcessor
        Runs the topology's steps against the injected store and archive.
    send : Send
        Enqueues a message (Faust topic send, or an aiokafka producer).
    classifications_topic, dead_letters_topic : str
        Output topics.
    metrics : WorkerMetrics
        Where counts and latencies go.
    max_retry_delay : float
        Longest wait between retries of a failed store write [s].
    """

    def __init__(self, processor: BatchProcessor, send: Send, *, classifications_topic: str,
                 dead_letters_topic: str, metrics: WorkerMetrics,
                 max_retry_delay: float = 30.0):
        self.processor = processor
        self.send = send
        self.classifications_topic = classifications_topic
        self.dead_letters_topic = dead_letters_topic
        self.metrics = metrics
        self.max_retry_delay = max_retry_delay

    async def _until_done(self, what: str, action: Callable[[], Awaitable[T]]) -> T:
        # A failing store, archive or broker is not the alerts' fault: retry until it
        # succeeds.  Giving up would let the caller acknowledge (and the consumer
        # commit) messages whose alerts were never stored or published.
        delay = 0.5
        while True:
            try:
                return await action()
            except Exception as exc:
                self.metrics.retries.labels(what).inc()
                log.error("%s failed (%s: %s); retrying in %.1f s", what,
                          type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)

    async def _publish(self, messages: list[tuple[str, bytes, bytes]]) -> None:
        deliveries = [await self.send(topic, key, value) for topic, key, value in messages]
        await asyncio.gather(*deliveries)

    async def handle(self, messages: Sequence[InputMessage]) -> BatchResult:
        """Store, then publish; returns once every output record was acknowledged."""
        self.metrics.batch_size.observe(len(messages))
        inputs = [m.as_input() for m in messages]
        result = await self._until_done("store", lambda: self.processor.process(inputs))
        start = time.perf_counter()
        stamp = now_ms()
        outputs = classification_messages(result.alerts, result.objects, result.detections, stamp)
        dead = dead_letter_messages(result.dead_letters, stamp)
        # re-sending after a partial failure duplicates records: the output stream is
        # at-least-once, and consumers deduplicate on candid (documented in the schema)
        await self._until_done("publish", lambda: self._publish(
            [(self.classifications_topic, k, v) for k, v in outputs]
            + [(self.dead_letters_topic, k, v) for k, v in dead]))
        publish = result.steps["publish"]
        publish.n_in = len(result.alerts)
        publish.n_out = len(outputs)
        publish.seconds = time.perf_counter() - start
        for name, stats in result.steps.items():
            self.metrics.observe_step(name, stats)
        done = now_ms()
        for alert in result.alerts:
            if alert.source.timestamp_ms is not None:
                self.metrics.alert_latency.observe((done - alert.source.timestamp_ms) / 1000)
        return result
