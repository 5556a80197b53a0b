"""What the Kafka benchmarks run against: a development broker and a database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from nightjar.processes import free_port
from nightjar.store import EmbeddedMongo
from stream.devbroker import DevKafka

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
