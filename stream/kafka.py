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

from nightjar.runner.ingest import RawInput
from nightjar.settings import KafkaConnection, Settings
from nightjar.surveys.registry import AlertParser

#: Largest message the producer sends (ZTF alerts with cutouts are well below 1 MiB).
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


def _ssl_context(conn: KafkaConnection) -> ssl.SSLContext | None:
    if "SSL" not in conn.security_protocol:
        return None
    return create_ssl_context(cafile=conn.ssl_cafile, certfile=conn.ssl_certfile,
                              keyfile=conn.ssl_keyfile)


def _password(conn: KafkaConnection) -> str | None:
    return conn.sasl_password.get_secret_value() if conn.sasl_password else None


def connection_options(conn: KafkaConnection) -> dict[str, Any]:
    """Keyword arguments of every aiokafka client for one cluster."""
    options: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in conn.bootstrap_servers.split(",")],
        "security_protocol": conn.security_protocol,
        "ssl_context": _ssl_context(conn),
    }
    if conn.security_protocol.startswith("SASL"):
        options.update(sasl_mechanism=conn.sasl_mechanism,
                       sasl_plain_username=conn.sasl_username,
                       sasl_plain_password=_password(conn))
    return options


def faust_broker(conn: KafkaConnection) -> list[str]:
    return [f"kafka://{server.strip()}" for server in conn.bootstrap_servers.split(",")]


def faust_credentials(conn: KafkaConnection) -> faust.types.auth.CredentialsT | None:
    """The same security settings in Faust's terms."""
    context = _ssl_context(conn)
    if conn.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=conn.sasl_username, password=_password(conn),
                                     ssl_context=context, mechanism=conn.sasl_mechanism)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def topic_partitions(settings: Settings) -> dict[str, int]:
    """Each topic of the topology with the partition count Nightjar creates it with."""
    return {settings.topic_alerts: settings.alerts_partitions,
            settings.topic_classifications: settings.output_partitions,
            settings.topic_dead_letters: settings.output_partitions,
            settings.topic_lc_classify: settings.alerts_partitions}


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the topology's topics that do not exist yet; return those created."""
    admin = AIOKafkaAdminClient(**connection_options(settings.kafka_connection()))
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


@dataclass
class ProduceSummary:
    sent: int = 0
    unkeyed: int = 0  #: inputs whose objectId could not be read (sent without key)
    skipped: list[str] = field(default_factory=list)  #: unreadable files
    seconds: float = 0.0


async def produce(producer: AIOKafkaProducer, topic: str, inputs: Iterable[RawInput],
                  rate: float | None = None, parser: AlertParser | None = None
                  ) -> ProduceSummary:
    """Send each input as one message keyed by objectId, as ZTF's stream delivers them.

    Parameters
    ----------
    producer : AIOKafkaProducer
        A started producer (injected).
    rate : float, optional
        Messages per second; as fast as possible when None.
    """
    parser = parser or AlertParser()
    summary = ProduceSummary()
    start = time.perf_counter()
    pending: list[asyncio.Future[Any]] = []
    for item in inputs:
        if item.error:
            summary.skipped.append(f"{item.source}: {item.error}")
            continue
        key = parser.message_key(item.raw)
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


def new_producer(conn: KafkaConnection) -> AIOKafkaProducer:
    """A producer for one cluster: acks from all replicas, idempotent."""
    return AIOKafkaProducer(**connection_options(conn), acks="all",
                            enable_idempotence=True, max_request_size=MAX_MESSAGE_BYTES,
                            linger_ms=5)
