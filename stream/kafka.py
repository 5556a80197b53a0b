"""Kafka connections, topics, and the producer that replays Avro files into the stream.

Every client is configured here from :class:`~nightjar.settings.Settings`: bootstrap
servers and the SASL/SSL options that ZTF's and LSST's brokers require.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from nightjar.alerts import AlertDecoder, AlertRejected
from nightjar.ingest import RawInput
from nightjar.settings import Settings

#: Largest message the producer sends (ZTF alerts with cutouts are well below 1 MiB).
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if "SSL" not in settings.kafka_security_protocol:
        return None
    return create_ssl_context(cafile=settings.kafka_ssl_cafile,
                              certfile=settings.kafka_ssl_certfile,
                              keyfile=settings.kafka_ssl_keyfile)


def connection_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of every aiokafka client for the configured cluster."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "security_protocol": settings.kafka_security_protocol,
        "ssl_context": _ssl_context(settings),
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=(settings.kafka_sasl_password.get_secret_value()
                                 if settings.kafka_sasl_password else None))
    return options


def faust_broker(settings: Settings) -> list[str]:
    return [f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")]


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """The same security settings in Faust's terms."""
    context = _ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=(settings.kafka_sasl_password.get_secret_value()
                      if settings.kafka_sasl_password else None),
            ssl_context=context, mechanism=settings.kafka_sasl_mechanism)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def topic_partitions(settings: Settings) -> dict[str, int]:
    """Each topic of the topology with the partition count Nightjar creates it with."""
    return {settings.topic_alerts: settings.alerts_partitions,
            settings.topic_classifications: settings.output_partitions,
            settings.topic_dead_letters: settings.output_partitions}


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the topology's topics that do not exist yet; return those created."""
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(name, partitions, settings.kafka_replication_factor)
                  for name, partitions in topic_partitions(settings).items()
                  if name not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                await admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        await admin.close()


def message_key(decoder: AlertDecoder, raw: bytes) -> bytes | None:
    """The partitioning key of a ZTF alert: its objectId; None when it cannot be read.

    Unreadable inputs still go to the topic (and from there to the dead letters).
    """
    try:
        records = decoder.decode(raw)
    except (AlertRejected, ValueError, EOFError, IndexError, TypeError):
        return None
    oid = records[0].get("objectId") if records else None
    return oid.encode() if isinstance(oid, str) else None


@dataclass
class ProduceSummary:
    sent: int = 0
    unkeyed: int = 0  #: inputs whose objectId could not be read (sent without key)
    skipped: list[str] = field(default_factory=list)  #: unreadable files
    seconds: float = 0.0


async def produce(producer: AIOKafkaProducer, topic: str, inputs: Iterable[RawInput],
                  rate: float | None = None) -> ProduceSummary:
    """Send each input as one message keyed by objectId, as ZTF's stream delivers them.

    Parameters
    ----------
    producer : AIOKafkaProducer
        A started producer (injected).
    rate : float, optional
        Messages per second; as fast as possible when None.
    """
    decoder = AlertDecoder()
    summary = ProduceSummary()
    start = time.perf_counter()
    pending: list[asyncio.Future[Any]] = []
    for item in inputs:
        if item.error:
            summary.skipped.append(f"{item.source}: {item.error}")
            continue
        key = message_key(decoder, item.raw)
        summary.unkeyed += key is None
        pending.append(await producer.send(topic, item.raw, key=key))
        summary.sent += 1
        if rate:
            delay = start + summary.sent / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    summary.seconds = time.perf_counter() - start
    return summary


def new_producer(settings: Settings) -> AIOKafkaProducer:
    """A producer for the configured cluster: acks from all replicas, idempotent."""
    return AIOKafkaProducer(**connection_options(settings), acks="all",
                            enable_idempotence=True, max_request_size=MAX_MESSAGE_BYTES,
                            linger_ms=5)
