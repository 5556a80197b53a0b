"""Relay an external survey stream (ZTF's, LSST's) into Nightjar's alert topic.

Survey brokers publish on their own clusters, behind SASL/SSL, in topics such as ZTF's
nightly ``ztf_YYYYMMDD_programid1`` or Rubin's ``lsst-alerts-v11`` (one topic per major
schema version, 45 partitions), and do not key messages by object.  The workers need
one object's alerts on one partition (:mod:`nightjar.runner.topology`), so the relay
reads the external topics with the ``source_*`` settings and re-publishes each message
unchanged, keyed by its object (ZTF objectId; LSST diaObjectId, or ssObjectId for a
solar-system source, read from the first fields of the packet), to ``topic_alerts`` on
Nightjar's cluster.  Offsets on the external cluster are committed only after the
broker acknowledged the re-published batch: at-least-once, and the workers' idempotent
writes absorb the duplicates.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from nightjar.settings import Settings
from nightjar.surveys.registry import AlertParser
from stream.kafka import connection_options

#: Longest wait for a partition assignment when ``idle_exit`` is set [s].
JOIN_TIMEOUT = 60.0


@dataclass
class RelaySummary:
    forwarded: int = 0
    unkeyed: int = 0  #: messages without a readable object id (forwarded; dead-lettered later)
    seconds: float = 0.0
    partitions: int = 0  #: external partitions the group assigned to this relay (most seen)


def source_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A consumer of the external cluster, subscribed by pattern once started."""
    return AIOKafkaConsumer(
        **connection_options(settings.source_connection()),
        group_id=settings.relay_group_id, enable_auto_commit=False,
        auto_offset_reset=settings.source_offset_reset,
        metadata_max_age_ms=30_000,  # notice the next night's topic within 30 s
        max_partition_fetch_bytes=10 * 1024 * 1024)


async def relay(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, pattern: str,
                topic: str, *, batch_size: int = 500, idle_exit: float | None = None,
                stop: asyncio.Event | None = None,
                parser: AlertParser | None = None) -> RelaySummary:
    """Forward messages until ``stop`` is set, or until ``idle_exit`` seconds pass idle.

    The idle clock runs only once the group has assigned partitions (joining takes
    seconds; "idle" before that would say nothing about the topics).  Without any
    assignment the relay still gives up after ``idle_exit`` + :data:`JOIN_TIMEOUT` s.

    Parameters
    ----------
    consumer, producer
        Started clients of the external and of Nightjar's cluster (injected).
    pattern : str
        Regular expression of the external topics.
    topic : str
        Nightjar's alert topic.
    parser : AlertParser, optional
        Reads the object ids (its LSST schema registry resolves the wire-format ids).
    """
    re.compile(pattern)  # fail early, with the pattern in the message
    consumer.subscribe(pattern=pattern)
    parser = parser or AlertParser()
    summary = RelaySummary()
    start = last_message = time.monotonic()
    while not (stop and stop.is_set()):
        fetched = await consumer.getmany(timeout_ms=500, max_records=batch_size)
        assigned = len(consumer.assignment())
        if not assigned:  # not in the group yet: the idle clock has not started
            last_message = time.monotonic()
            if idle_exit is not None and last_message - start > idle_exit + JOIN_TIMEOUT:
                break
            continue
        summary.partitions = max(summary.partitions, assigned)
        if not fetched:
            if idle_exit is not None and time.monotonic() - last_message > idle_exit:
                break
            continue
        last_message = time.monotonic()
        deliveries = []
        for records in fetched.values():
            for rec in records:
                key = parser.message_key(rec.value or b"")
                summary.unkeyed += key is None
                deliveries.append(await producer.send(topic, rec.value, key=key))
        await asyncio.gather(*deliveries)
        await consumer.commit()  # only after every forwarded message was acknowledged
        summary.forwarded += len(deliveries)
    summary.seconds = time.monotonic() - start
    return summary
