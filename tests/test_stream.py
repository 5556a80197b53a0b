"""The Kafka path against a real broker: worker, output stream, dead letters, crash, groups.

Each test gets its own topics, consumer group and database on the session's broker;
workers run as real ``nightjar worker`` processes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nightjar.processes import free_port
from nightjar.runner.ingest import BatchProcessor, expand_paths, ingest, iter_inputs
from nightjar.store import NightjarStore
from nightjar.store.archive import LocalArchive
from nightjar.store.schema import DEAD_LETTERS
from nightjar.surveys.avro import AlertDecoder
from nightjar.surveys.ztf.simulate import AlertSimulator
from stream.localrun import StreamEnv, Worker, keyed, produce, read_topic, wait_for
from tests.conftest import as_inputs

LIGHT_CURVE = ("objects", "detections", "non_detections", "forced_photometry")


@pytest.fixture
async def stream_env(kafka_bootstrap: str, mongo_uri: str,
                     tmp_path: Path) -> AsyncIterator[StreamEnv]:
    env = StreamEnv(kafka_bootstrap, mongo_uri, tmp_path)
    yield env
    await env.drop()


async def _stored_alert_count(env: StreamEnv) -> int:
    async with env.store() as store:
        return await store.count("detections", {"has_stamp": True})


async def _embedded_snapshot(store: NightjarStore, tmp_path: Path,
                             inputs: Any) -> dict[str, list[dict[str, Any]]]:
    await ingest(BatchProcessor(store, LocalArchive(tmp_path / "embedded-archive")), inputs, 500)
    return await store.snapshot()


async def test_real_alerts_through_kafka_match_the_embedded_runner(
        stream_env: StreamEnv, shared_data: Path, store: NightjarStore, tmp_path: Path) -> None:
    alerts_dir = shared_data / "ztf" / "alerts"
    files = expand_paths([alerts_dir])
    produced = stream_env.cli("produce", str(alerts_dir))
    assert produced.returncode == 0, produced.stderr
    assert f"sent {len(files)} messages" in produced.stderr

    expected = await _embedded_snapshot(store, tmp_path, iter_inputs(files))
    decoder = AlertDecoder()
    expected_candids = Counter(decoder.decode(p.read_bytes())[0]["candid"] for p in files)

    worker = Worker(stream_env)
    try:
        records = await read_topic(stream_env.bootstrap, stream_env.topic("classifications"),
                                   expected=len(files), wait_s=240)
        in_count = worker.metric("nightjar_step_alerts_in_total", step="ingest")
        lag = worker.metric("nightjar_consumer_lag", topic=stream_env.topic("alerts"),
                            partition="0")
    finally:
        assert worker.stop() == 0, worker.log[-3000:]
    # one output record per alert message, keyed by objectId
    assert Counter(r.value["candid"] for r in records) == expected_candids
    assert all(r.key == r.value["oid"].encode() for r in records)
    assert in_count == len(files)
    assert lag == 0
    async with stream_env.store() as kafka_store:
        got = await kafka_store.snapshot()
    for coll in LIGHT_CURVE:
        assert got[coll] == expected[coll], f"{coll} differs from the embedded runner's"
    # the last record of each object (Kafka keeps one object's order) has its final stats
    last: dict[str, dict[str, Any]] = {}
    for r in records:
        last[r.value["oid"]] = r.value
    for obj in got["objects"]:
        assert last[obj["_id"]]["object"]["ndet"] == obj["ndet"]
        assert last[obj["_id"]]["object"]["lastmjd"] == pytest.approx(obj["lastmjd"])


async def test_bad_input_is_dead_lettered_and_the_worker_keeps_going(
        stream_env: StreamEnv, shared_data: Path,
        simulated: list[tuple[str, int, bytes]]) -> None:
    bad_files = expand_paths([shared_data / "ztf" / "bad"])
    bad = [p.read_bytes() for p in bad_files] + [os.urandom(300), b"", b"Obj\x01garbage"]
    good = [raw for _, _, raw in simulated[:50]]
    await produce(stream_env.bootstrap, stream_env.topic("alerts"),
                  keyed(bad) + keyed(good[:25]))
    worker = Worker(stream_env)
    try:
        letters = await read_topic(stream_env.bootstrap, stream_env.topic("dead_letters"),
                                   expected=len(bad), wait_s=180)
        assert worker.alive(), worker.log[-3000:]
        # still consuming after the bad input: later alerts are processed too
        await produce(stream_env.bootstrap, stream_env.topic("alerts"), keyed(good[25:]))
        await wait_for(lambda: _count_is(stream_env, 50), 120, "all 50 good alerts stored")
    finally:
        assert worker.stop() == 0, worker.log[-3000:]
    assert sorted(r.value["payload"] for r in letters) == sorted(bad)
    assert all(r.value["reason"] and r.value["source_topic"] == stream_env.topic("alerts")
               for r in letters)
    async with stream_env.store() as store:
        reasons = await store.dead_letter_reasons()
        stored_digests = {d["_id"] async for d in store.db[DEAD_LETTERS].find({}, {"_id": 1})}
    assert stored_digests == {r.value["digest"] for r in letters}
    assert sum(reasons.values()) == len(stored_digests)


async def _count_is(env: StreamEnv, n: int) -> bool:
    return await _stored_alert_count(env) >= n


async def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(
        stream_env: StreamEnv, store: NightjarStore, tmp_path: Path) -> None:
    packets = list(AlertSimulator(seed=11).packets(3000))
    stream_env.batch_size = 100
    await produce(stream_env.bootstrap, stream_env.topic("alerts"),
                  keyed([raw for _, _, raw in packets]))
    first = Worker(stream_env, "first")
    try:
        await wait_for(lambda: _count_is(stream_env, 600), 240, "600 alerts stored")
    finally:
        first.kill()
    stored_at_crash = await _stored_alert_count(stream_env)
    assert stored_at_crash < len(packets), "the crash should come part-way through"
    second = Worker(stream_env, "second")
    try:
        await wait_for(lambda: _count_is(stream_env, len(packets)), 300,
                       "every alert stored after the restart")
    finally:
        assert second.stop() == 0, second.log[-3000:]
    expected = await _embedded_snapshot(store, tmp_path, as_inputs(packets))
    async with stream_env.store() as kafka_store:
        got = await kafka_store.snapshot()
        assert await kafka_store.count(DEAD_LETTERS) == 0
    stamps = [d["_id"] for d in got["detections"] if d["has_stamp"]]
    assert sorted(stamps) == sorted(c for _, c, _ in packets)  # each alert exactly once
    for coll in LIGHT_CURVE:
        assert got[coll] == expected[coll], f"{coll} differs from an uninterrupted run"


async def _stored_lsst_alerts(env: StreamEnv) -> set[Any]:
    async with env.store() as store:
        objects = {d["_id"] async for d in store.db["detections"].find(
            {"survey": "LSST", "has_stamp": True}, {"_id": 1})}
        solar = {d["_id"] async for d in store.db["solar_system_detections"].find(
            {"survey": "LSST", "oid": {"$in": [None]}}, {"_id": 1})}
    return objects | solar


async def test_lsst_over_scram_relayed_by_the_worker_survives_kill_9(
        stream_env: StreamEnv, kafka_broker: Any, store: NightjarStore,
        tmp_path: Path) -> None:
    """Rubin's way in: SASL_SSL with SCRAM-SHA-512, an unkeyed topic, a user-prefixed group.

    The worker relays the topic (re-keyed by diaObjectId) and processes it; killed -9
    part-way and restarted, it stores every alert exactly once, as an uninterrupted
    embedded run does.
    """
    from nightjar.runner.ingest import RawInput
    from nightjar.surveys.interface import AlertSource
    from nightjar.surveys.lsst.simulate import LsstSimulator
    from tests.conftest import KAFKA_SCRAM_USER

    user, password = KAFKA_SCRAM_USER
    ca = kafka_broker.workdir.parent / "tls" / "ca.pem"
    packets = list(LsstSimulator(seed=21).packets(1200))
    source_topic = f"lsst-alerts-v11-{stream_env.tag}"
    plaintext = stream_env.bootstrap
    await produce(plaintext, source_topic, [(None, raw) for _, _, raw in packets])  # unkeyed

    def scram(cluster: str) -> dict[str, str]:
        return {f"NIGHTJAR_{cluster}_SECURITY_PROTOCOL": "SASL_SSL",
                f"NIGHTJAR_{cluster}_SASL_MECHANISM": "SCRAM-SHA-512",
                f"NIGHTJAR_{cluster}_SASL_USERNAME": user,
                f"NIGHTJAR_{cluster}_SASL_PASSWORD": password,
                f"NIGHTJAR_{cluster}_SSL_CAFILE": str(ca)}

    stream_env.bootstrap = kafka_broker.scram_bootstrap
    stream_env.batch_size = 100
    stream_env.extra = {**scram("KAFKA"), **scram("SOURCE"),
                        "NIGHTJAR_SOURCE_BOOTSTRAP_SERVERS": kafka_broker.scram_bootstrap,
                        "NIGHTJAR_SOURCE_TOPIC_PATTERN": rf"^{source_topic}$",
                        "NIGHTJAR_SOURCE_GROUP_ID": f"{user}-relay-{stream_env.tag}",
                        "NIGHTJAR_STAMP_CLASSIFIER": "false"}
    expected = {f"LSST:{source_id}" for _, source_id, _ in packets}

    async def stored(n: int) -> bool:
        return len(await _stored_lsst_alerts(stream_env)) >= n

    first = Worker(stream_env, "first")
    try:
        await wait_for(lambda: stored(250), 300, "250 LSST alerts stored")
    finally:
        first.kill()
    assert len(await _stored_lsst_alerts(stream_env)) < len(packets), "killed too late"
    second = Worker(stream_env, "second")
    try:
        await wait_for(lambda: stored(len(packets)), 420, "every LSST alert stored")
    finally:
        assert second.stop() == 0, second.log[-3000:]
    assert await _stored_lsst_alerts(stream_env) == expected  # each alert, exactly once
    # the relay keyed every message of the unkeyed topic by its object
    relayed = await read_topic(plaintext, stream_env.topic("alerts"), len(packets), raw=True)
    oid_of = {raw: oid for oid, _, raw in packets}
    assert {r.value for r in relayed} == set(oid_of)
    assert all(r.key == oid_of[r.value].encode() for r in relayed)
    # the same store as an uninterrupted embedded run of the same packets
    embedded = await _embedded_snapshot(store, tmp_path, [
        RawInput(raw, AlertSource("file")) for _, _, raw in packets])
    async with stream_env.store() as kafka_store:
        got = await kafka_store.snapshot()
        assert await kafka_store.count(DEAD_LETTERS) == 0
    for coll in (*LIGHT_CURVE, "solar_system_detections"):
        assert got[coll] == embedded[coll], f"{coll} differs from an uninterrupted run"


async def test_stop_mid_stream_then_restart_loses_nothing(stream_env: StreamEnv) -> None:
    """SIGTERM while batches are in flight: the worker finishes or abandons, never loses."""
    packets = list(AlertSimulator(seed=16).packets(2000))
    stream_env.batch_size = 100
    await produce(stream_env.bootstrap, stream_env.topic("alerts"),
                  keyed([raw for _, _, raw in packets]))
    first = Worker(stream_env, "first")
    try:
        await wait_for(lambda: _count_is(stream_env, 300), 240, "300 alerts stored")
    finally:
        code = first.stop()
    assert code == 0, first.log[-3000:]
    assert await _stored_alert_count(stream_env) < len(packets), "stopped too late to tell"
    second = Worker(stream_env, "second")
    try:
        await wait_for(lambda: _count_is(stream_env, len(packets)), 300, "every alert stored")
    finally:
        assert second.stop() == 0, second.log[-3000:]
    async with stream_env.store() as store:
        assert await store.stored_alerts(c for _, c, _ in packets) == {c for _, c, _ in packets}


async def test_two_workers_share_the_partitions_and_store_every_alert_once(
        stream_env: StreamEnv) -> None:
    packets = list(AlertSimulator(seed=12).packets(1500))
    workers = [Worker(stream_env, "a"), Worker(stream_env, "b")]
    try:
        async def both_joined() -> bool:
            return await stream_env.group_members() == 2
        await wait_for(both_joined, 120, "both workers in a stable group")
        await produce(stream_env.bootstrap, stream_env.topic("alerts"),
                      keyed([raw for _, _, raw in packets]))
        await wait_for(lambda: _count_is(stream_env, len(packets)), 300, "all alerts stored")
        records = await read_topic(stream_env.bootstrap, stream_env.topic("classifications"),
                                   expected=len(packets), wait_s=60)
        counts = [w.metric("nightjar_step_alerts_in_total", step="ingest") for w in workers]
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0], [w.log[-2000:] for w in workers]
    assert all(c > 0 for c in counts), f"one worker got no partitions: {counts}"
    # delivery is at-least-once (a rebalance may hand a batch to the other worker
    # again): each alert was processed at least once, none lost
    assert sum(counts) >= len(packets)
    assert {r.value["candid"] for r in records} == {c for _, c, _ in packets}
    # ...and the store holds each alert exactly once, with every object whole: one
    # document per object whose ndet counts all its alerts (an object split across
    # workers racing on its history would lose detections from its statistics)
    alerts_per_object: dict[str, int] = {}
    for oid, _, _ in packets:
        alerts_per_object[oid] = alerts_per_object.get(oid, 0) + 1
    async with stream_env.store() as store:
        assert await store.count("detections", {"has_stamp": True}) == len(packets)
        assert await store.count("objects") == len(alerts_per_object)
        async for obj in store.db["objects"].find({}, {"ndet": 1}):
            stored = await store.count("detections", {"oid": obj["_id"]})
            assert obj["ndet"] == stored >= alerts_per_object[obj["_id"]], obj["_id"]


async def test_reconcile_reprocesses_exactly_what_the_store_lacks(
        stream_env: StreamEnv, tmp_path: Path) -> None:
    packets = list(AlertSimulator(seed=13).packets(400))
    await produce(stream_env.bootstrap, stream_env.topic("alerts"),
                  keyed([raw for _, _, raw in packets]))
    # a third of the alerts reached the store some other way; the rest were lost
    already = packets[::3]
    async with stream_env.store() as store:
        await ingest(BatchProcessor(store, LocalArchive(tmp_path / "archive")),
                     as_inputs(already), 500)
    run = stream_env.cli("reconcile", "--from", "0")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report == {"read": 400, "present": len(already), "missing": 400 - len(already),
                      "stored": 400 - len(already), "dead_lettered": 0}
    assert await _stored_alert_count(stream_env) == 400
    records = await read_topic(stream_env.bootstrap, stream_env.topic("classifications"),
                               expected=400 - len(already), wait_s=30)
    assert sorted(r.value["candid"] for r in records) == sorted(
        c for p in packets if p not in already for c in [p[1]])
    again = stream_env.cli("reconcile")
    assert json.loads(again.stdout.strip().splitlines()[-1])["missing"] == 0


async def test_reconcile_by_time_reads_only_the_range(stream_env: StreamEnv) -> None:
    packets = list(AlertSimulator(seed=14).packets(120))
    await produce(stream_env.bootstrap, stream_env.topic("alerts"),
                  keyed([raw for _, _, raw in packets[:60]]))
    await asyncio.sleep(1.5)
    cut = dt.datetime.now(dt.UTC)
    await asyncio.sleep(1.5)
    await produce(stream_env.bootstrap, stream_env.topic("alerts"),
                  keyed([raw for _, _, raw in packets[60:]]))
    run = stream_env.cli("reconcile", "--from", cut.isoformat())
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["read"] == 60
    async with stream_env.store() as store:
        assert await store.stored_alerts(c for _, c, _ in packets) == {
            c for _, c, _ in packets[60:]}
    bad = stream_env.cli("reconcile", "--from", "last tuesday")
    assert bad.returncode == 2 and "neither an offset" in bad.stderr


def test_dev_kafka_command_starts_and_stops_a_broker(tmp_path: Path,
                                                     kafka_bootstrap: str) -> None:
    # kafka_bootstrap: the same Java/Maven requirement, and Kafka's jars already fetched
    env = StreamEnv("unused", "mongodb://unused", tmp_path)
    port = str(free_port())

    def dev_kafka(command: str) -> subprocess.CompletedProcess[str]:
        return env.cli("dev", "kafka", command, extra_env={"NIGHTJAR_KAFKA_DEV_PORT": port})

    assert dev_kafka("status").returncode == 1
    started = dev_kafka("start")
    assert started.returncode == 0, started.stderr
    assert f"127.0.0.1:{port}" in started.stderr
    try:
        assert dev_kafka("status").returncode == 0
    finally:
        assert dev_kafka("stop").returncode == 0
    assert dev_kafka("status").returncode == 1


async def test_sasl_authenticated_cluster(stream_env: StreamEnv, kafka_broker: Any,
                                          simulated: list[tuple[str, int, bytes]],
                                          tmp_path: Path) -> None:
    """Producer, worker and reconcile all reach a SASL/PLAIN listener with the settings."""
    from tests.conftest import KAFKA_SASL_USER

    user, password = KAFKA_SASL_USER
    sasl = {"NIGHTJAR_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "NIGHTJAR_KAFKA_SASL_MECHANISM": "PLAIN", "NIGHTJAR_KAFKA_SASL_USERNAME": user}
    stream_env.bootstrap = kafka_broker.sasl_bootstrap
    stream_env.extra = {**sasl, "NIGHTJAR_KAFKA_SASL_PASSWORD": "wrong"}
    alerts_dir = tmp_path / "alerts"
    alerts_dir.mkdir()
    for oid, candid, raw in simulated[:30]:
        (alerts_dir / f"{oid}_{candid}.avro").write_bytes(raw)
    refused = stream_env.cli("produce", str(alerts_dir), timeout=120)
    assert refused.returncode == 3, refused.stderr[-2000:]
    assert "Kafka failed" in refused.stderr and "(SASL_PLAINTEXT)" in refused.stderr
    assert "Traceback" not in refused.stderr

    stream_env.extra = {**sasl, "NIGHTJAR_KAFKA_SASL_PASSWORD": password}
    produced = stream_env.cli("produce", str(alerts_dir))
    assert produced.returncode == 0, produced.stderr[-2000:]
    worker = Worker(stream_env)
    try:
        await wait_for(lambda: _count_is(stream_env, 30), 120, "30 alerts stored over SASL")
    finally:
        assert worker.stop() == 0, worker.log[-3000:]
    check = stream_env.cli("reconcile")
    assert check.returncode == 0, check.stderr[-2000:]
    assert json.loads(check.stdout.strip().splitlines()[-1])["present"] == 30


async def test_relay_rekeys_an_external_sasl_stream_by_object(
        stream_env: StreamEnv, kafka_broker: Any) -> None:
    """A survey's unkeyed nightly topic, behind SASL, lands keyed by objectId, once."""
    from tests.conftest import KAFKA_SASL_USER

    user, password = KAFKA_SASL_USER
    night = f"ztf_20261122_programid1_{stream_env.tag}"
    stream_env.extra = {
        "NIGHTJAR_SOURCE_BOOTSTRAP_SERVERS": kafka_broker.sasl_bootstrap,
        "NIGHTJAR_SOURCE_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "NIGHTJAR_SOURCE_SASL_USERNAME": user, "NIGHTJAR_SOURCE_SASL_PASSWORD": password,
        "NIGHTJAR_SOURCE_GROUP_ID": f"{user}-relay-{stream_env.tag}",  # Rubin's rule
        "NIGHTJAR_SOURCE_TOPIC_PATTERN": rf"ztf_\d{{8}}_programid1_{stream_env.tag}",
    }
    packets = list(AlertSimulator(seed=15).packets(200))
    await produce(stream_env.bootstrap, night, [(None, raw) for _, _, raw in packets])
    first = stream_env.cli("relay", "--idle-exit", "4")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "relayed 200 messages" in first.stderr
    relayed = await read_topic(stream_env.bootstrap, stream_env.topic("alerts"), 200, wait_s=30)
    assert sorted(r.value["candid"] for r in relayed) == sorted(c for _, c, _ in packets)
    assert all(r.key == r.value["objectId"].encode() for r in relayed)
    # offsets were committed on the survey's cluster: a restart, once it has joined the
    # group and holds the partitions, forwards nothing again
    again = stream_env.cli("relay", "--idle-exit", "3")
    assert again.returncode == 0 and "relayed 0 messages" in again.stderr, again.stderr[-2000:]
    assert re.search(r";\s+[1-9]\d*\s+source\s+partitions\s+assigned\)", again.stderr), \
        again.stderr[-2000:]


async def test_tls_cluster_with_a_private_ca(stream_env: StreamEnv, kafka_broker: Any,
                                             simulated: list[tuple[str, int, bytes]],
                                             tmp_path: Path) -> None:
    """The SSL settings reach a TLS listener; a client without the CA is refused."""
    ca = kafka_broker.workdir.parent / "tls" / "ca.pem"
    alerts_dir = tmp_path / "alerts"
    alerts_dir.mkdir()
    for oid, candid, raw in simulated[:20]:
        (alerts_dir / f"{oid}_{candid}.avro").write_bytes(raw)
    stream_env.bootstrap = kafka_broker.ssl_bootstrap
    stream_env.extra = {"NIGHTJAR_KAFKA_SECURITY_PROTOCOL": "SSL"}
    untrusted = stream_env.cli("produce", str(alerts_dir), timeout=120)
    assert untrusted.returncode == 3, untrusted.stderr[-2000:]
    stream_env.extra["NIGHTJAR_KAFKA_SSL_CAFILE"] = str(ca)
    produced = stream_env.cli("produce", str(alerts_dir))
    assert produced.returncode == 0, produced.stderr[-2000:]
    assert "sent 20 messages" in produced.stderr
    check = stream_env.cli("reconcile")
    assert check.returncode == 0, check.stderr[-2000:]
    assert json.loads(check.stdout.strip().splitlines()[-1])["stored"] == 20


async def test_stop_while_the_store_is_down_abandons_the_batch_without_committing(
        stream_env: StreamEnv, tmp_path: Path) -> None:
    """SIGTERM while a batch cannot be stored: exit 75 after the grace, nothing committed,
    and a restart stores everything (the path a clean stop cannot take)."""

    from nightjar.store import EmbeddedMongo

    if os.environ.get("MONGODB_URI"):
        pytest.skip("takes its own embedded database down; MONGODB_URI is set")
    packets = list(AlertSimulator(seed=17).packets(1500))
    database = EmbeddedMongo(tmp_path / "db")  # a database this test can take down

    uri = database.start()
    stream_env.batch_size = 100
    stream_env.extra = {"MONGODB_URI": uri, "NIGHTJAR_WORKER_STOP_GRACE": "3"}
    await produce(stream_env.bootstrap, stream_env.topic("alerts"),
                  keyed([raw for _, _, raw in packets]))
    doomed = Worker(stream_env, "doomed")
    try:
        async def some_stored() -> bool:
            return await stored_at(uri, stream_env.database) >= 200
        await wait_for(some_stored, 240, "200 alerts stored")
        before = await stored_at(uri, stream_env.database)
    finally:
        database.stop()  # the store is gone: the batch in flight retries and cannot finish
    assert before < len(packets), "stored everything before the database went down"
    await asyncio.sleep(2)
    code = doomed.stop()
    assert code == 75, doomed.log[-3000:]
    assert "exiting without committing" in doomed.log
    revived = EmbeddedMongo(tmp_path / "db")  # same SQLite file, new port
    uri = revived.start()
    stream_env.extra["MONGODB_URI"] = uri
    second = Worker(stream_env, "second")
    try:
        async def all_stored() -> bool:
            return await stored_at(uri, stream_env.database) >= len(packets)
        await wait_for(all_stored, 300, "every alert stored after the restart")
        assert await stored_candids(uri, stream_env.database) == {c for _, c, _ in packets}
    finally:
        code = second.stop()
        revived.stop()
    assert code == 0, second.log[-3000:]


async def stored_at(uri: str, database: str) -> int:
    """Alerts stored in the database at ``uri`` (a client of its own: the tests take that
    database down and up)."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, serverSelectionTimeoutMS=5000)
    try:
        return await client[database]["detections"].count_documents({"has_stamp": True})
    finally:
        await client.close()


async def stored_candids(uri: str, database: str) -> set[int | str]:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        return {d["_id"] async for d in client[database]["detections"].find(
            {"has_stamp": True}, {"_id": 1})}
    finally:
        await client.close()


def both_surveys(seed: int, n_ztf: int, n_lsst: int) -> list[tuple[str, int | str, bytes]]:
    """Simulated ZTF and LSST alerts interleaved, each survey in time order: (oid, the
    stored key of the alert's detection, bytes). LSST's simulated asteroids are left out
    (their sources make no object: they are stored apart)."""
    from nightjar.surveys.interface import AlertSource
    from nightjar.surveys.lsst.simulate import LsstSimulator
    from nightjar.surveys.registry import AlertParser

    parser, source = AlertParser(), AlertSource("file", path="both")
    ztf = list(AlertSimulator(seed=seed).packets(n_ztf))
    lsst = [(oid, f"LSST:{dia_source}", raw)
            for oid, dia_source, raw in LsstSimulator(seed=seed).packets(n_lsst)
            if parser.parse(raw, source)[0][0].has_object]
    step = max(1, len(ztf) // max(1, len(lsst)))
    mixed: list[tuple[str, int | str, bytes]] = []
    for i, packet in enumerate(ztf):
        mixed.append(packet)
        if i % step == step - 1 and lsst:
            mixed.append(lsst.pop(0))
    return mixed + lsst


async def test_a_database_restart_under_a_steady_stream_loses_and_duplicates_nothing(
        stream_env: StreamEnv, tmp_path: Path) -> None:
    """The database goes away while alerts of both surveys keep arriving and comes back
    at the same address: the worker retries its batch, resumes, and the store ends as a
    clean run's (every alert once); the worker never stopped."""

    from nightjar.store import EmbeddedMongo

    if os.environ.get("MONGODB_URI"):
        pytest.skip("takes its own embedded database down; MONGODB_URI is set")
    packets = both_surveys(19, 1000, 500)
    thirds = [packets[i::3] for i in range(3)]
    database = EmbeddedMongo(tmp_path / "db")
    uri = database.start()

    stream_env.batch_size = 100
    stream_env.extra = {"MONGODB_URI": uri}
    await produce(stream_env.bootstrap, stream_env.topic("alerts"),
                  keyed([raw for _, _, raw in thirds[0]]))
    worker = Worker(stream_env, "steady")
    revived = None
    try:
        async def some_stored() -> bool:
            return await stored_at(uri, stream_env.database) >= 200
        await wait_for(some_stored, 240, "200 alerts stored")
        database.stop()  # down while the stream goes on
        await produce(stream_env.bootstrap, stream_env.topic("alerts"),
                      keyed([raw for _, _, raw in thirds[1]]))
        await asyncio.sleep(5)
        assert worker.proc.poll() is None, worker.log[-3000:]  # waiting, not crashed
        revived = EmbeddedMongo(tmp_path / "db", port=database.port)  # same file, address
        assert revived.start() == uri
        await produce(stream_env.bootstrap, stream_env.topic("alerts"),
                      keyed([raw for _, _, raw in thirds[2]]))

        async def all_stored() -> bool:
            return await stored_at(uri, stream_env.database) >= len(packets)
        await wait_for(all_stored, 300, "every alert stored after the restart")
        assert await stored_candids(uri, stream_env.database) == {c for _, c, _ in packets}
        assert await stored_at(uri, stream_env.database) == len(packets)  # each once
    finally:
        code = worker.stop()
        if revived is not None:
            revived.stop()
        database.stop()
    assert code == 0, worker.log[-3000:]


async def test_a_broker_restart_under_a_steady_stream_loses_and_duplicates_nothing(
        mongo_uri: str, tmp_path: Path) -> None:
    """The Kafka broker stops while alerts of both surveys keep coming and restarts at
    the same address (its own broker: the shared one serves the other tests): the worker
    rides it out and every alert is stored exactly once."""
    from stream.devbroker import DevKafka, KafkaUnavailable, missing_tools

    if missing_tools():
        pytest.skip(f"needs {' and '.join(missing_tools())}")
    broker = DevKafka(tmp_path / "broker", free_port())
    try:
        bootstrap = broker.start()
    except KafkaUnavailable as exc:
        pytest.fail(f"a second broker did not start: {exc}")
    (tmp_path / "env").mkdir()
    env = StreamEnv(bootstrap, mongo_uri, tmp_path / "env")
    env.batch_size = 100
    packets = both_surveys(23, 1000, 500)
    thirds = [packets[i::3] for i in range(3)]
    worker = None
    try:
        await produce(bootstrap, env.topic("alerts"), keyed([raw for _, _, raw in thirds[0]]))
        worker = Worker(env, "through-the-restart")
        await wait_for(lambda: _count_is(env, 200), 240, "200 alerts stored")
        broker.stop()
        await asyncio.sleep(5)
        assert worker.proc.poll() is None, worker.log[-3000:]  # waiting for the broker
        assert broker.start() == bootstrap
        for part in thirds[1:]:
            await produce(bootstrap, env.topic("alerts"), keyed([raw for _, _, raw in part]))
        await wait_for(lambda: _count_is(env, len(packets)), 300,
                       "every alert stored after the broker's restart")
        async with env.store() as store:
            stored = {d["_id"] async for d in store.db["detections"].find(
                {"has_stamp": True}, {"_id": 1})}
        assert stored == {c for _, c, _ in packets}
        assert len(stored) == await _stored_alert_count(env) == len(packets)
    finally:
        code = worker.stop() if worker is not None else 0
        broker.stop()
        await env.drop()
    assert code == 0, worker.log[-3000:] if worker is not None else ""
