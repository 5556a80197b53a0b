"""What the Kafka benchmarks run against: a development broker and a database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from nightjar.processes import free_port
from nightjar.runner.ingest import RawInput
from nightjar.settings import KafkaConnection
from nightjar.store import EmbeddedMongo
from nightjar.surveys.interface import AlertSource
from stream.devbroker import DevKafka
from stream.kafka import new_producer
from stream.kafka import produce as produce_paced
from stream.localrun import StreamEnv

#: run(workdir, mongo_uri, bootstrap)
Runner = Callable[[Path, str, str], Coroutine[Any, Any, None]]


def with_broker_and_store(prefix: str, bootstrap: str | None, run: Runner) -> None:
    """Run ``run`` with the embedded database (or ``MONGODB_URI``) and a development Kafka
    broker (or the one at ``bootstrap``), all torn down afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir = Path(tmp)
        uri = os.environ.get("MONGODB_URI")
        database = contextlib.nullcontext(uri) if uri else EmbeddedMongo(workdir / "mongo")
        with database as mongo_uri:
            if bootstrap:
                asyncio.run(run(workdir, mongo_uri, bootstrap))
            else:
                with DevKafka(workdir / "kafka", free_port()) as started:
                    asyncio.run(run(workdir, mongo_uri, started))


async def produce_at_rate(bootstrap: str, topic: str, packets: list[bytes], rate: float) -> None:
    """Produce alert packets at a steady ``rate`` [alerts/s], keyed as ZTF's are."""
    producer = new_producer(KafkaConnection(bootstrap))
    await producer.start()
    try:
        inputs = [RawInput(raw, AlertSource("file", path=str(i)))
                  for i, raw in enumerate(packets)]
        await produce_paced(producer, topic, inputs, rate)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def deployment(bootstrap: str, mongo_uri: str, home: Path, *, partitions: int,
                     batch_size: int, extra: dict[str, str] | None = None
                     ) -> AsyncIterator[StreamEnv]:
    """One isolated deployment (own topics, group, database) for one measurement,
    dropped afterwards."""
    env = StreamEnv(bootstrap, mongo_uri, home, partitions=partitions, batch_size=batch_size,
                    extra=extra or {})
    env.home.mkdir(parents=True)
    try:
        yield env
    finally:
        await env.drop()
