"""The thin driver shared by the Faust agent and ``nightjar reconcile``.

Kafka messages in; the topology's steps (:class:`nightjar.runner.ingest.BatchProcessor`);
output and dead-letter records out.  Offsets are the caller's business: it
acknowledges a batch only after :meth:`StreamDriver.handle` returned, which happens
only once the store write succeeded *and* the broker acknowledged every output
record.  Re-processing a batch after a crash is harmless: the store writes are
idempotent (documents are keyed by candid and object), so the effect is exactly once.

Store failures are told apart (:func:`is_transient`).  A transient one (connection,
timeout, not primary) is retried until it succeeds: it is not the alerts' fault.  A
permanent one (document too large, validation, a duplicate key that is not a replay)
would block the partition forever, so after ``permanent_retries`` attempts the batch
is bisected until the inputs the store rejects are found; those are dead-lettered with
the error, the rest are stored, and the batch is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bson.errors import BSONError
from pymongo.errors import (
    ConnectionFailure,
    DocumentTooLarge,
    ExecutionTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)

from nightjar.runner.ingest import BatchProcessor, BatchResult, RawInput
from nightjar.runner.records import (
    CONTAINERS,
    OutputCodec,
    classification_messages,
    dead_letter_messages,
)
from nightjar.surveys.interface import AlertSource, DeadLetter
from stream.metrics import WorkerMetrics

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


#: Server error codes that mean "try again later" (MongoDB's retryable-write list plus
#: shutdown and interruption codes), as opposed to a verdict on the documents.
TRANSIENT_CODES = frozenset({6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435,
                             13436, 50, 134, 63, 150, 133, 64})


class PermanentStoreError(Exception):
    """The store rejected part of a batch for good: retrying the same data cannot help."""


def is_transient(exc: BaseException) -> bool:
    """Whether a store failure may go away by itself (retry) or is about the data.

    Transient: lost connections and server selection, timeouts, a primary stepping down,
    errors MongoDB labels retryable, OS-level connection errors.  Permanent: a document
    too large or not encodable, a validation failure, a duplicate key (replays are
    upserts, so a duplicate key is a real conflict), and any other error the server
    answered with a code not in :data:`TRANSIENT_CODES`.  Anything else (a bug, an
    unknown exception) counts as transient: retrying loses nothing, dropping would.
    """
    if isinstance(exc, (ConnectionFailure, NotPrimaryError, ExecutionTimeout, WTimeoutError,
                        ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, PermanentStoreError | DocumentTooLarge | BSONError):
        return False
    if isinstance(exc, PyMongoError) and (exc.has_error_label("RetryableWriteError")
                                          or exc.has_error_label("TransientTransactionError")):
        return True
    if isinstance(exc, OperationFailure):
        return exc.code in TRANSIENT_CODES
    return not isinstance(exc, (ValueError, TypeError, OverflowError))


async def until_done(what: str, action: Callable[[], Awaitable[T]], metrics: WorkerMetrics,
                     max_retry_delay: float, permanent_attempts: int | None = None) -> T:
    """Run ``action`` until it succeeds, backing off up to ``max_retry_delay`` seconds.

    A failing store, archive or broker is not the inputs' fault: giving up would let the
    caller acknowledge (and the consumer commit) messages whose results were never
    stored or published.  Only a permanent error, once seen ``permanent_attempts``
    times, is raised instead (:class:`PermanentStoreError`).
    """
    delay = 0.5
    permanent = 0
    while True:
        try:
            return await action()
        except Exception as exc:
            metrics.retries.labels(what).inc()
            if permanent_attempts is not None and not is_transient(exc):
                permanent += 1
                if permanent >= permanent_attempts:
                    raise PermanentStoreError(f"{type(exc).__name__}: {exc}") from exc
            log.error("%s failed (%s: %s); retrying in %.1f s", what,
                      type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_retry_delay)


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
    permanent_retries : int
        Attempts of a batch whose store write fails with a permanent error before the
        batch is bisected to find (and dead-letter) the inputs the store rejects.
    classify_topic : str, optional
        Where objects that need a light-curve classification go (keyed by objectId),
        for the classify agent; they are sent with the batch's other outputs.
    """

    def __init__(self, processor: BatchProcessor, send: Send, *, classifications_topic: str,
                 dead_letters_topic: str, metrics: WorkerMetrics,
                 max_retry_delay: float = 30.0, permanent_retries: int = 3,
                 classify_topic: str | None = None, codec: OutputCodec = CONTAINERS):
        self.processor = processor
        self.codec = codec
        self.send = send
        self.classifications_topic = classifications_topic
        self.dead_letters_topic = dead_letters_topic
        self.metrics = metrics
        self.max_retry_delay = max_retry_delay
        self.permanent_retries = permanent_retries
        self.classify_topic = classify_topic

    async def _until_done(self, what: str, action: Callable[[], Awaitable[T]],
                          permanent_attempts: int | None = None) -> T:
        return await until_done(what, action, self.metrics, self.max_retry_delay,
                                permanent_attempts)

    async def _store(self, inputs: Sequence[RawInput], attempts: int) -> BatchResult:
        """Process and store ``inputs``; bisect around inputs the store rejects for good.

        ``attempts``: tries of a permanent error before bisecting (after the first split
        one try per half: the error is known to be about the data by then).
        """
        try:
            return await self._until_done("store", lambda: self.processor.process(inputs),
                                          attempts)
        except PermanentStoreError as exc:
            if len(inputs) == 1:
                return await self._reject(inputs[0], exc)
            log.error("store rejects part of %d inputs for good (%s); bisecting",
                      len(inputs), exc)
        half = len(inputs) // 2
        return merge_results(await self._store(inputs[:half], 1),
                             await self._store(inputs[half:], 1))

    async def _reject(self, item: RawInput, exc: PermanentStoreError) -> BatchResult:
        """Dead-letter one input the store will not take, with the store's error."""
        parsed, _ = self.processor.parse([item])  # it parsed before: the store refused it
        letter = DeadLetter(raw=item.raw, source=item.source,
                            reason=f"store rejected it permanently: {exc}",
                            candid=parsed[0].candid if parsed else None,
                            oid=parsed[0].oid if parsed else None,
                            survey=parsed[0].survey if parsed else None)
        log.error("dead-lettering %s: %s", item.source, letter.reason)
        await self._until_done("store", lambda: self.processor.store.write([], [letter]))
        return BatchResult(inputs=1, dead_letters=[letter])

    async def _publish(self, messages: list[tuple[str, bytes, bytes]]) -> None:
        deliveries = [await self.send(topic, key, value) for topic, key, value in messages]
        await asyncio.gather(*deliveries)

    async def handle(self, messages: Sequence[InputMessage]) -> BatchResult:
        """Store, then publish; returns once every output record was acknowledged."""
        self.metrics.batch_size.observe(len(messages))
        inputs = [m.as_input() for m in messages]
        result = await self._store(inputs, self.permanent_retries)
        start = time.perf_counter()
        stamp = now_ms()
        outputs = classification_messages(result.alerts, result.objects, result.detections, stamp,
                                          result.probabilities, codec=self.codec)
        dead = dead_letter_messages(result.dead_letters, stamp, codec=self.codec)
        requests = [(self.classify_topic, oid.encode(), oid.encode())
                    for oid in result.to_classify] if self.classify_topic else []
        # re-sending after a partial failure duplicates records: the output stream is
        # at-least-once, and consumers deduplicate on candid (documented in the schema)
        await self._until_done("publish", lambda: self._publish(
            [(self.classifications_topic, k, v) for k, v in outputs]
            + [(self.dead_letters_topic, k, v) for k, v in dead] + requests))
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


def merge_results(first: BatchResult, second: BatchResult) -> BatchResult:
    """One batch's result from the results of its two halves (processed in order)."""
    merged = BatchResult(
        inputs=first.inputs + second.inputs, alerts=first.alerts + second.alerts,
        dead_letters=first.dead_letters + second.dead_letters,
        writes=first.writes + second.writes, objects={**first.objects, **second.objects},
        detections={**first.detections, **second.detections},
        probabilities={**first.probabilities, **second.probabilities},
        to_classify=first.to_classify + second.to_classify,
        new_detections=first.new_detections + second.new_detections,
        objects_written=first.objects_written + second.objects_written)
    for part in (first, second):
        for name, stats in part.steps.items():
            total = merged.steps[name]
            total.n_in += stats.n_in
            total.n_out += stats.n_out
            total.n_dead += stats.n_dead
            total.seconds += stats.seconds
    return merged
