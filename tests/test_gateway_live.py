"""Subscriptions over graphql-transport-ws: fed by a separate `nightjar ingest` process
(the store's live feed) and by a Kafka worker (the classifications topic); filters; the
slow-subscriber policy (bounded queue, oldest dropped, `missed` told)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families
from websockets.typing import Subprotocol

from nightjar.core.live import Event, alert_event
from nightjar.runner.output_schemas import SchemaResolver
from nightjar.settings import Settings
from nightjar.store import NightjarStore
from nightjar.store.archive import LocalArchive
from nightjar.surveys.avro import RegistryClient, http_fetch
from nightjar.surveys.ztf.simulate import AlertSimulator, write_alerts
from services.gateway.app import GatewayConfig
from services.gateway.live import KafkaFeed, LiveHub, StoreFeed
from stream.kafka import ensure_topics
from stream.localrun import ROOT, StreamEnv, Worker, read_topic
from tests.asgi import serve_asgi
from tests.gateway_env import (
    API_USER,
    Deployment,
    deployment,
    ingest_in_another_process,
    live_gateway,
)
from tests.test_schema_registry import FakeRegistry

CLASSIFICATIONS = """subscription($filter: ClassificationFilterInput) {
  classifications(filter: $filter) { oid candid classifierName classifierVersion className
    probability ranking ra dec storedAt missed } }"""
PER_OBJECT = """subscription($filter: ClassificationFilterInput) {
  classifications(filter: $filter, perObject: true) { oid classifierName className
    probability ranking missed probabilities { className probability } } }"""
ANOMALIES = """subscription($filter: AnomalyFilterInput) {
  anomalies(filter: $filter) { oid score rawScore modelName modelVersion mjd ra dec storedAt
    missed survey } }"""
ALERTS = """subscription($filter: AlertFilterInput) {
  alerts(filter: $filter) { oid candid mjd fid magpsf magpsfCorr ra dec storedAt missed } }"""


class Subscriber:
    """A graphql-transport-ws client: several subscriptions on one WebSocket."""

    def __init__(self, ws: Any):
        self.ws = ws
        self.received: dict[str, list[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, api_key: str | None = None
                      ) -> AsyncIterator[Subscriber]:
        ws_url = url.replace("http://", "ws://") + "/graphql"
        protocol = Subprotocol("graphql-transport-ws")
        headers = {"X-API-Key": api_key} if api_key else None
        async with websockets.connect(ws_url, subprotocols=[protocol],
                                      additional_headers=headers) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            sub = cls(ws)
            try:
                yield sub
            finally:
                if sub._reader is not None:
                    sub._reader.cancel()

    async def subscribe(self, name: str, query: str, **variables: Any) -> None:
        self.received[name] = []
        await self.ws.send(json.dumps({"id": name, "type": "subscribe", "payload": {
            "query": query, "variables": variables}}))

    def start_reading(self) -> None:
        async def read() -> None:
            async for raw in self.ws:
                message = json.loads(raw)
                assert message["type"] == "next", message
                assert not message["payload"].get("errors"), message
                data = message["payload"]["data"]
                self.received[message["id"]].append(next(iter(data.values())))
        self._reader = asyncio.create_task(read())


async def metric(url: str, name: str, **labels: str) -> float:
    """The gateway's sample ``name`` (the one carrying ``labels``); 0 when absent."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return 0.0


async def until(predicate: Any, wait_s: float, what: str) -> None:
    """Wait until ``predicate()`` (a bool, or an awaitable of one) holds; fail after
    ``wait_s`` [s]."""
    deadline = time.monotonic() + wait_s
    while not await _holds(predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def _holds(value: Any) -> bool:
    return bool(await value if inspect.isawaitable(value) else value)


async def subscribed(url: str, n: int) -> None:
    """Wait until the gateway holds ``n`` subscriptions and its feed is positioned."""
    async def ready() -> bool:
        return (await metric(url, "nightjar_gateway_active_subscriptions") >= n
                and await metric(url, "nightjar_gateway_live_feed_ready") == 1)
    await until(ready, 30, "the subscriptions to be live")


async def stored_rows(store: NightjarStore, classifier: str) -> set[tuple[str, str, float]]:
    return {(r["oid"], r["class_name"], r["probability"]) async for r in
            store.db["probabilities"].find({"classifier_name": classifier})}


async def test_subscriptions_receive_what_a_separate_ingest_process_stores(
        mongo_uri: str, tmp_path: Path) -> None:
    alerts_dir = tmp_path / "alerts"
    write_alerts(150, alerts_dir, seed=5)
    async with deployment(mongo_uri, tmp_path / "home") as dep:
        async with live_gateway(dep, feed=StoreFeed(dep.store)) as (url, _), \
                Subscriber.connect(url) as client:
            await client.subscribe("stamp", CLASSIFICATIONS,
                                   filter={"classifier": "stamp_classifier"})
            await client.subscribe("vs", CLASSIFICATIONS, filter={
                "classifier": "stamp_classifier", "className": "VS", "probabilityMin": 0.5})
            await client.subscribe("stamp_vectors", PER_OBJECT,
                                   filter={"classifier": "stamp_classifier"})
            await client.subscribe("bright", ALERTS, filter={"magpsfMax": 19.0})
            await client.subscribe("alerts", ALERTS)
            await client.subscribe("anomalies", ANOMALIES)
            await client.subscribe("unusual", ANOMALIES, filter={"scoreMin": 0.9})
            client.start_reading()
            await subscribed(url, 7)
            await ingest_in_another_process(dep, mongo_uri, alerts_dir, tmp_path, 30)
            stored_alerts = {(d["oid"], d["_id"], d["magpsf"]) async for d in
                             dep.store.db["detections"].find({"has_stamp": True})}
            stamp = await stored_rows(dep.store, "stamp_classifier")
            scores = {(d["oid"], d["mjd"], d["score"]) async for d in
                      dep.store.db["anomaly"].find({})}
            assert len(stored_alerts) == 150 and stamp and scores

            async def complete() -> bool:
                return (len(client.received["alerts"]) >= len(stored_alerts)
                        and len(client.received["stamp"]) >= len(stamp)
                        and len(client.received["stamp_vectors"]) >= len(
                            {oid for oid, _, _ in stamp})
                        and len(client.received["anomalies"]) >= len(scores))
            await until(complete, 30, "every stored alert and classification")
            await asyncio.sleep(0.5)  # nothing more may come
        got = client.received
        assert {(m["oid"], int(m["candid"]), m["magpsf"]) for m in got["alerts"]} == stored_alerts
        assert len(got["alerts"]) == len(stored_alerts)  # each once
        assert {(m["oid"], int(m["candid"]), m["magpsf"]) for m in got["bright"]} == {
            a for a in stored_alerts if a[2] <= 19.0}
        assert {(m["oid"], m["className"], m["probability"]) for m in got["stamp"]} == stamp
        assert len(got["stamp"]) == len(stamp)
        # perObject: one message per object and classifier, with its whole vector
        vectors = got["stamp_vectors"]
        assert sorted(m["oid"] for m in vectors) == sorted({oid for oid, _, _ in stamp})
        for m in vectors:
            rows = {(c, p) for oid, c, p in stamp if oid == m["oid"]}
            assert {(r["className"], r["probability"]) for r in m["probabilities"]} == rows
            assert m["ranking"] == 1 and m["probability"] == max(p for _, p in rows)
        assert {(m["oid"], m["className"], m["probability"]) for m in got["vs"]} == {
            r for r in stamp if r[1] == "VS" and r[2] >= 0.5}
        assert {(m["oid"], m["mjd"], m["score"]) for m in got["anomalies"]} == scores
        assert len(got["anomalies"]) == len(scores)
        assert {(m["oid"], m["mjd"]) for m in got["unusual"]} == {
            (o, mjd) for o, mjd, score in scores if score >= 0.9}
        assert {m["modelName"] for m in got["anomalies"]} == {"ztf_anomaly"}
        assert all(m["missed"] == 0 for ms in got.values() for m in ms)
        # delivered soon after being stored (generous bound: this tests delivery, the
        # benchmark measures the latency)
        lags = [time.time() - m["storedAt"] for m in got["stamp"]]
        assert max(lags) < 120


MY_ANOMALIES = """subscription($filter: AnomalyFilterInput) {
  anomalies(filter: $filter) { oid score rawScore mjd user sharedScore survey } }"""


async def test_a_users_anomalies_subscription_scores_with_their_model(
        mongo_uri: str, tmp_path: Path) -> None:
    """With ``mine: true`` every shared anomaly event comes rescored by the caller's
    model: the object the caller called ARTEFACT at 0, the shared score beside it; a
    caller without a key is refused."""
    from tests.conftest import as_inputs
    from tests.gateway_env import API_KEY, gql

    packets = list(AlertSimulator(seed=21).packets(500))
    alerts_dir = tmp_path / "alerts"
    alerts_dir.mkdir()
    for i, (_, _, raw) in enumerate(packets[300:]):
        (alerts_dir / f"{i:06d}.avro").write_bytes(raw)
    later = {oid for oid, _, _ in packets[300:]}
    async with deployment(mongo_uri, tmp_path / "home") as dep:
        await dep.ingest(as_inputs(packets[:300]))
        scored = [d["_id"] async for d in dep.store.db["objects"].find(
            {"anomaly.score": {"$gt": 0}})]
        artefact = sorted(o for o in scored if o in later)[0]
        async with live_gateway(dep, feed=StoreFeed(dep.store)) as (url, _):
            async with httpx.AsyncClient(base_url=url) as http:
                said = await gql(http, """mutation($oid: String!) { labelAnomaly(
                    oid: $oid, label: ARTEFACT) { artefactVotes flaggedArtefact } }""",
                                 headers={"X-API-Key": API_KEY}, oid=artefact)
                assert said["data"]["labelAnomaly"] == {"artefactVotes": 1,
                                                        "flaggedArtefact": False}
            async with Subscriber.connect(url) as anonymous:
                await anonymous.subscribe("refused", MY_ANOMALIES, filter={"mine": True})
                refusal = json.loads(await anonymous.ws.recv())
                assert refusal["type"] in ("error", "next")
                assert "API key" in json.dumps(refusal)
            async with Subscriber.connect(url) as shared_client, \
                    Subscriber.connect(url, API_KEY) as mine_client:
                await shared_client.subscribe("shared", MY_ANOMALIES)
                await mine_client.subscribe("mine", MY_ANOMALIES, filter={"mine": True})
                shared_client.start_reading()
                mine_client.start_reading()
                await subscribed(url, 2)
                await ingest_in_another_process(dep, mongo_uri, alerts_dir, tmp_path, 50)
                stored = {(d["oid"], d["mjd"]) async for d in dep.store.db["anomaly"].find(
                    {"mjd": {"$gt": 0}})}

                async def complete() -> bool:
                    return len(mine_client.received["mine"]) >= len(
                        shared_client.received["shared"]) > 0
                await until(complete, 60, "the rescored events")
                await asyncio.sleep(0.5)
        shared = {(m["oid"], m["mjd"]): m for m in shared_client.received["shared"]}
        mine = {(m["oid"], m["mjd"]): m for m in mine_client.received["mine"]}
        assert set(mine) == set(shared) and set(shared) <= stored
        assert all(m["user"] == API_USER and m["survey"] == "ZTF" for m in mine.values())
        assert all(shared[k]["user"] is None for k in shared)
        for key, m in mine.items():
            assert m["sharedScore"] == shared[key]["score"]
            assert 0.0 <= m["score"] <= 1.0
        sunk = [m for (o, _), m in mine.items() if o == artefact]
        assert sunk, "the labelled object was scored again"
        assert all(m["score"] == 0.0 and m["rawScore"] == 0.0 for m in sunk)
        assert all(shared[(artefact, m["mjd"])]["score"] > 0 for m in sunk)


@pytest.mark.parametrize("wire_format", [False, True], ids=["containers", "registry"])
async def test_subscriptions_receive_a_kafka_workers_output(
        kafka_bootstrap: str, mongo_uri: str, tmp_path: Path, wire_format: bool) -> None:
    """The worker publishes, the gateway's Kafka feed reads: as Avro containers, or with
    a schema registry in the Confluent wire format (the worker registers, the feed
    resolves the ids)."""
    async with contextlib.AsyncExitStack() as stack:
        registry_url = None
        if wire_format:
            registry = FakeRegistry({}, writable=True)
            registry_url = await stack.enter_async_context(serve_asgi(registry.app()))
        topics = await _kafka_workers_output(kafka_bootstrap, mongo_uri, tmp_path,
                                             registry_url)
        if wire_format:  # registered by the worker, one subject per output topic
            assert set(registry.subjects) == {f"{topics[name]}-value" for name in (
                "classifications", "dead_letters")}


async def _kafka_workers_output(kafka_bootstrap: str, mongo_uri: str, tmp_path: Path,
                                registry_url: str | None) -> dict[str, str]:
    env = StreamEnv(kafka_bootstrap, mongo_uri, tmp_path)
    schema_of = None
    if registry_url is not None:
        env.extra = {"NIGHTJAR_OUTPUT_SCHEMA_REGISTRY_URL": registry_url}
        schema_of = SchemaResolver(RegistryClient(registry_url, http_fetch(2.0)))
    alerts_dir = tmp_path / "alerts"
    write_alerts(80, alerts_dir, seed=8)
    # the topics exist before the gateway positions itself at the end of the output topic
    await ensure_topics(Settings(
        kafka_bootstrap_servers=kafka_bootstrap, topic_alerts=env.topic("alerts"),
        topic_classifications=env.topic("classifications"),
        topic_dead_letters=env.topic("dead_letters"), topic_lc_classify=env.topic("lc_classify")))

    def consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None,
                                auto_offset_reset="latest", fetch_max_wait_ms=50)

    worker = Worker(env)
    try:
        async with env.store() as store:
            (tmp_path / "gw").mkdir()
            # the gateway reads no store here: everything comes from the topic
            dep = Deployment(store, LocalArchive(tmp_path / "gw"), tmp_path / "gw", None)  # type: ignore[arg-type]
            feed = KafkaFeed(consumer, env.topic("classifications"), schema_of=schema_of)
            async with live_gateway(dep, GatewayConfig(rate_anonymous=1e6), feed=feed) as (
                    url, _), Subscriber.connect(url) as client:
                await client.subscribe("stamp", CLASSIFICATIONS,
                                       filter={"classifier": "stamp_classifier"})
                await client.subscribe("alerts", ALERTS)
                client.start_reading()
                await subscribed(url, 2)
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "nightjar.cli", "produce", str(alerts_dir),
                    env={**os.environ, **env.env}, cwd=ROOT,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
                _, stderr = await proc.communicate()
                assert proc.returncode == 0, stderr.decode()[-2000:]
                await until(lambda: _at_least(client.received["alerts"], 80), 240,
                            "80 alerts through Kafka")
                stamp = await stored_rows(store, "stamp_classifier")
                await until(lambda: _at_least(client.received["stamp"], len(stamp)), 60,
                            "the stamp classifications")
        got = client.received
        candids = {int(p.stem.split("_")[2]) for p in alerts_dir.glob("*.avro")}
        assert {int(m["candid"]) for m in got["alerts"]} == candids
        assert len(got["alerts"]) == 80
        assert {(m["oid"], m["className"], m["probability"]) for m in got["stamp"]} == stamp
        published = await read_topic(kafka_bootstrap, env.topic("classifications"), 80,
                                     raw=True)
        magic = {bytes(r.value[:4]) == b"Obj\x01" for r in published}
        assert magic == {registry_url is None}  # containers, or all in the wire format
    finally:
        assert worker.stop() == 0, worker.log[-3000:]
        await env.drop()
    return {name: env.topic(name) for name in ("classifications", "dead_letters")}


class BurstFeed:
    """A feed the test drives: each put() is one batch of events."""

    name = "test"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[Event]] = asyncio.Queue()

    async def batches(self) -> AsyncIterator[list[Event]]:
        yield []
        while True:
            yield await self.queue.get()


def _alert(i: int) -> Event:
    return alert_event(f"ZTF26test{i:04d}", {"candid": 10**18 + i, "mjd": 60000.0 + i,
                                             "fid": 1, "ra": 10.0, "dec": 20.0,
                                             "magpsf": 18.0, "sigmapsf": 0.1}, stored_ms=0)


async def test_a_slow_subscriber_loses_the_oldest_and_is_told(mongo_uri: str,
                                                             tmp_path: Path) -> None:
    feed = BurstFeed()
    async with deployment(mongo_uri, tmp_path / "home") as dep, \
            live_gateway(dep, GatewayConfig(subscription_queue=5, rate_anonymous=1e6),
                         feed=feed) as (url, _), Subscriber.connect(url) as client:
        await client.subscribe("alerts", ALERTS)
        client.start_reading()
        await subscribed(url, 1)
        # 50 events at once: more than the queue holds before the subscriber can run
        await feed.queue.put([_alert(i) for i in range(50)])
        await until(lambda: _at_least(client.received["alerts"], 5), 10, "the burst")
        for i in range(50, 60):  # then a pace it keeps up with
            await feed.queue.put([_alert(i)])
            await asyncio.sleep(0.02)
        await until(lambda: _at_least(client.received["alerts"], 15), 10, "the paced events")
        got = client.received["alerts"]
        assert [int(m["candid"]) - 10**18 for m in got] == list(range(45, 60))  # the newest
        assert [m["missed"] for m in got] == [45] + [0] * 14  # told once, on the next one
        assert await metric(url, "nightjar_gateway_dropped_messages_total") == 45


async def _at_least(items: list[Any], n: int) -> bool:
    return len(items) >= n


async def test_a_stuck_subscriber_never_holds_back_the_feed_or_others() -> None:
    feed = BurstFeed()
    hub = LiveHub(feed, queue_size=100)
    received: list[int] = []
    try:
        async with hub.subscribe(lambda e: [e]) as stuck, hub.subscribe(lambda e: [e]) as fast:
            async def consume() -> None:
                while len(received) < 10_000:
                    event, missed = await fast.get()
                    assert missed == 0
                    received.append(event["candid"])
            consumer = asyncio.create_task(consume())
            for start in range(0, 10_000, 50):  # batches the fast one keeps up with
                await feed.queue.put([_alert(i) for i in range(start, start + 50)])
                await asyncio.sleep(0.001)
            await asyncio.wait_for(consumer, 30)
            assert feed.queue.empty()  # the feed was read to the end
            assert received == [10**18 + i for i in range(10_000)]
            # the stuck one holds the newest 100 and knows how many it lost
            assert len(stuck.items) == 100 and stuck.missed == 9_900
            assert stuck.items[0]["candid"] == 10**18 + 9_900
    finally:
        await hub.close()
