"""Integrity and replay (paper §4.8): re-read a range of the alert topic, find what the
store lacks, and process exactly that again through the same driver as the worker."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from nightjar.store import NightjarStore
from stream.driver import InputMessage, StreamDriver

#: A range bound: an offset (same for every partition) or a time.
Bound = int | dt.datetime | None


def parse_bound(text: str | None) -> Bound:
    """``--from``/``--to``: an offset (integer) or an ISO-8601 time (UTC when naive)."""
    if text is None or text == "":
        return None
    if text.lstrip("-").isdigit():
        value = int(text)
        if value < 0:
            raise ValueError(f"offset {value} is negative")
        return value
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is neither an offset nor an ISO-8601 time") from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@dataclass
class ReconcileReport:
    read: int = 0  #: messages read in the range
    present: int = 0  #: alerts already stored, or inputs already dead-lettered
    missing: int = 0  #: messages the store had no trace of
    stored: int = 0  #: of those, alerts now stored
    dead_lettered: int = 0  #: of those, inputs now dead-lettered
    per_partition: dict[int, tuple[int, int]] = field(default_factory=dict)  #: [from, to)
    reasons: Counter[str] = field(default_factory=Counter)


async def _offsets(consumer: AIOKafkaConsumer, bound: Bound,
                   begin: dict[TopicPartition, int], last: dict[TopicPartition, int],
                   default: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Per partition, the offset a bound names, within [begin, last]; ``default`` if None."""
    if bound is None:
        return dict(default)
    if isinstance(bound, int):
        return {tp: min(max(bound, begin[tp]), last[tp]) for tp in begin}
    stamps = await consumer.offsets_for_times({tp: int(bound.timestamp() * 1000)
                                               for tp in begin})
    return {tp: (found.offset if found is not None else last[tp]) for tp, found in stamps.items()}


async def read_range(consumer: AIOKafkaConsumer, topic: str, start: Bound, end: Bound,
                     batch_size: int) -> AsyncIterator[tuple[list[InputMessage],
                                                              dict[int, tuple[int, int]]]]:
    """Batches of messages from ``start`` (inclusive) to ``end`` (exclusive) per partition.

    ``consumer`` is a started consumer without a group; the range of each partition is
    fixed when reading begins, so messages arriving meanwhile are left for the workers.
    """
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        # aiokafka has no public call that refreshes the metadata partitions_for_topic reads
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise ValueError(f"topic {topic!r} does not exist")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    begin = await consumer.beginning_offsets(tps)
    last = await consumer.end_offsets(tps)
    starts = await _offsets(consumer, start, begin, last, default=begin)
    stops = await _offsets(consumer, end, begin, last, default=last)
    ranges = {tp.partition: (starts[tp], max(starts[tp], stops[tp])) for tp in tps}
    active = []
    for tp in tps:
        if starts[tp] < stops[tp]:
            consumer.seek(tp, starts[tp])
            active.append(tp)
        else:
            consumer.pause(tp)
    while active:
        fetched = await consumer.getmany(*active, timeout_ms=1000, max_records=batch_size)
        batch: list[InputMessage] = []
        for tp, records in fetched.items():
            for rec in records:
                if rec.offset < stops[tp]:
                    batch.append(InputMessage(tp.topic, tp.partition, rec.offset,
                                              rec.timestamp, rec.value or b""))
        for tp in list(active):
            if await consumer.position(tp) >= stops[tp]:
                active.remove(tp)
                consumer.pause(tp)
        if batch:
            yield batch, ranges


async def reconcile(consumer: AIOKafkaConsumer, store: NightjarStore, driver: StreamDriver,
                    topic: str, start: Bound = None, end: Bound = None,
                    batch_size: int = 500) -> ReconcileReport:
    """Re-process the messages of a range whose alert (or dead letter) the store lacks.

    Parameters
    ----------
    consumer : AIOKafkaConsumer
        Started, without a consumer group (nothing is committed).
    store : NightjarStore
        Where presence is checked.
    driver : StreamDriver
        Processes and publishes the missing messages, exactly as a worker would.
    """
    report = ReconcileReport()
    async for batch, ranges in read_range(consumer, topic, start, end, batch_size):
        report.per_partition = ranges
        report.read += len(batch)
        inputs = [m.as_input() for m in batch]
        # decode once to learn detection keys and digests; the driver decodes again only the
        # missing ones, so a healthy range costs one decode and two indexed reads
        parsed = [driver.processor.parse([item]) for item in inputs]
        known_alerts = await store.stored_alerts(a.key for alerts, _ in parsed for a in alerts)
        known_dead = await store.stored_dead_letters(d.digest for _, dead in parsed for d in dead)
        missing: list[InputMessage] = []
        for message, (alerts, dead) in zip(batch, parsed, strict=True):
            if alerts:
                complete = all(a.key in known_alerts for a in alerts)
            else:
                complete = bool(dead) and all(d.digest in known_dead for d in dead)
            if complete:
                report.present += 1
            else:
                missing.append(message)
        report.missing += len(missing)
        if missing:
            result = await driver.handle(missing)
            report.stored += len(result.alerts)
            report.dead_lettered += len(result.dead_letters)
            report.reasons.update(d.reason for d in result.dead_letters)
    return report
