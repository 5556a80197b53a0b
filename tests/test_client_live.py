"""The Python client's subscriptions: fed by a separate `nightjar ingest` process, and
reconnecting after the gateway restarts.  Apart from tests/test_client.py because each
test runs its own deployment (on nx-27017, dropping a database drops every one)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from nightjar_client import Nightjar

from nightjar.processes import free_port
from nightjar.surveys.ztf.simulate import write_alerts
from services.gateway.live import StoreFeed
from tests.gateway_env import deployment, ingest_in_another_process, live_gateway
from tests.test_gateway_live import BurstFeed, _alert, _at_least, until

T = TypeVar("T")


async def collect(stream: AsyncIterator[T], into: list[T]) -> None:
    async for item in stream:
        into.append(item)


async def test_subscriptions_receive_a_separate_ingest_process(mongo_uri: str,
                                                               tmp_path: Path) -> None:
    alerts_dir = tmp_path / "alerts"
    write_alerts(60, alerts_dir, seed=8)
    candids = {int(p.stem.split("_")[-1]) for p in alerts_dir.glob("*.avro")}
    assert len(candids) == 60
    async with deployment(mongo_uri, tmp_path / "home") as dep, \
            live_gateway(dep, feed=StoreFeed(dep.store)) as (url, app):
        nj = Nightjar(url)
        classified = nj.subscribe_classifications(classifier="stamp_classifier", ranking=1)
        bright = nj.subscribe_alerts(magpsf=[None, 19.0])
        stamp_rows: set[tuple[str, str, float]] = set()
        stored: set[int] = set()

        async def ingest() -> None:
            # the subscriptions must be open first: wait for the gateway to count them
            await until(lambda: len(app.state.hub.subscriptions) >= 2, 30,
                        "both subscriptions")
            await ingest_in_another_process(dep, mongo_uri, alerts_dir, tmp_path, 20)
            # what this ingest stored (the database may hold other tests' objects)
            oids = {d["oid"] async for d in dep.store.db["detections"].find(
                {"_id": {"$in": sorted(candids)}}, {"oid": 1})}
            stamp_rows.update({(r["oid"], r["class_name"], r["probability"]) async for r in
                               dep.store.db["probabilities"].find(
                                   {"classifier_name": "stamp_classifier", "ranking": 1})
                               if r["oid"] in oids})
            stored.update({d["_id"] async for d in dep.store.db["detections"].find(
                {"has_stamp": True, "magpsf": {"$lte": 19.0}}) if d["_id"] in candids})

        got: list[Any] = []
        alerts: list[Any] = []
        readers = [asyncio.create_task(collect(classified, got)),
                   asyncio.create_task(collect(bright, alerts))]
        try:
            await ingest()
            await until(lambda: len(got) >= len(stamp_rows) and len(alerts) >= len(stored),
                        60, "every message")
            await asyncio.sleep(0.5)  # nothing more may come
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            nj.close()
    assert stamp_rows and stored
    assert {(c.oid, c.class_name, c.probability) for c in got} == stamp_rows
    assert all(c.classifier_name == "stamp_classifier" and c.missed == 0 for c in got)
    assert {a.candid for a in alerts} == stored and all(a.magpsf <= 19.0 for a in alerts)


async def test_a_subscription_reconnects_after_the_gateway_restarts(
        mongo_uri: str, tmp_path: Path) -> None:
    port = free_port()
    async with deployment(mongo_uri, tmp_path / "home") as dep:
        nj = Nightjar(f"http://127.0.0.1:{port}", backoff=0.1, max_backoff=0.5)
        received: list[Any] = []
        reader = asyncio.create_task(collect(nj.subscribe_alerts(), received))
        try:
            for run, candid in ((1, 10**18 + 1), (2, 10**18 + 2)):
                # nothing listens at first: the client retries until the gateway is up
                await asyncio.sleep(0.5)
                feed = BurstFeed()
                async with live_gateway(dep, feed=feed, port=port) as (_, app):
                    await until(lambda: len(app.state.hub.subscriptions) >= 1, 30,
                                "the reconnected subscription")
                    await feed.queue.put([_alert(candid - 10**18)])
                    await until(partial(_at_least, received, run), 30, "the event")
        finally:
            reader.cancel()
            nj.close()
    assert [alert.candid for alert in received] == [10**18 + 1, 10**18 + 2]
