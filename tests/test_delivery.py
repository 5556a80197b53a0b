"""Delivering filter matches: signed webhooks to a real local HTTP server (with a retry
after a 500, Slack's body, the SSRF refusals), e-mail digests to a real local SMTP
server, and each filter's Kafka topic on the real broker."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from nightjar.runner.delivery import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Deliverer,
    DeliveryError,
    SmtpSettings,
    WebhookWorker,
    resolve_webhook,
    validate_delivery,
)
from nightjar.runner.filters import FilterLimits
from nightjar.runner.records import decode
from nightjar.surveys.ztf.simulate import AlertSimulator
from tests.conftest import ROOT, as_inputs
from tests.test_filters import deployment

SECRET = "a-webhook-secret-of-some-length"
LOCAL = ["127.0.0.1/32"]


class Receiver:
    """The webhook receiver (:mod:`tests.webhook_receiver`) in its own process, as a
    subscriber's server is: what it received, with the time."""

    def __init__(self, tmp: Path) -> None:
        from nightjar.processes import free_port

        self.port = free_port()
        self.out = tmp / "received.jsonl"
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.webhook_receiver", str(self.port), str(self.out)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    @property
    def received(self) -> list[tuple[float, dict[str, str], bytes]]:
        if not self.out.exists():
            return []
        rows = [json.loads(line) for line in self.out.read_text().splitlines()]
        return [(r["t"], r["headers"], base64.b64decode(r["body"])) for r in rows]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(tmp_path)
    try:
        yield r
    finally:
        r.close()


@pytest.mark.parametrize(("url", "words"), [
    ("http://127.0.0.1:9/x", "loopback"),
    ("http://localhost/x", "loopback"),
    ("http://10.1.2.3/x", "private"),
    ("http://192.168.0.7/x", "private"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[::1]/x", "loopback"),
    ("http://[::ffff:127.0.0.1]/x", "loopback"),
    ("http://0.0.0.0/x", "private"),
    ("ftp://example.org/x", "http:// or https://"),
    ("http://user:pw@example.org/x", "no credentials"),
])
def test_webhooks_to_private_addresses_are_refused(url: str, words: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        resolve_webhook(url, resolver=lambda host, port: ["127.0.0.1"]
                        if host == "localhost" else [host.strip("[]")])
    assert words.split()[0] in str(caught.value)


def test_a_name_that_resolves_to_a_private_address_is_refused() -> None:
    # what DNS says decides, not how the URL looks
    with pytest.raises(DeliveryError, match=r"resolves to 10\.0\.0\.5"):
        resolve_webhook("https://hooks.example.org/x", resolver=lambda h, p: ["10.0.0.5"])
    pinned, host = resolve_webhook("https://hooks.example.org:8443/a?b=1",
                                   resolver=lambda h, p: ["93.184.216.34"])
    assert pinned == "https://93.184.216.34:8443/a?b=1" and host == "hooks.example.org"


def test_the_allow_list_lets_an_operator_reach_a_local_receiver() -> None:
    pinned, _ = resolve_webhook("http://127.0.0.1:8080/hook", LOCAL)
    assert pinned == "http://127.0.0.1:8080/hook"
    with pytest.raises(DeliveryError):
        resolve_webhook("http://127.0.0.2:8080/hook", LOCAL)


def test_delivery_settings_are_checked() -> None:
    with pytest.raises(DeliveryError, match="16 characters"):
        validate_delivery({"webhook_url": "http://127.0.0.1/x", "webhook_secret": "short"},
                          LOCAL)
    with pytest.raises(DeliveryError, match="one e-mail address"):
        validate_delivery({"email": "a@b.org, c@d.org"})
    stored = validate_delivery({"kafka": True, "email": "a@b.org", "digest_minutes": 15})
    assert stored == {"kafka": True, "email": {"to": "a@b.org", "digest_minutes": 15}}


async def test_signed_webhook_with_a_retry_after_a_500(mongo_uri: str, tmp_path: Path,
                                                       receiver: Receiver) -> None:
    workers = WebhookWorker(LOCAL, attempts=4, backoff_s=0.05)
    async with deployment(mongo_uri, tmp_path) as dep:
        dep.service.webhook_allow = LOCAL
        deliverer = Deliverer(dep.service.filters, webhooks=workers)
        dep.engine.deliverer = deliverer
        dep.service.webhook_allow = []  # without the operator's allow-list: refused
        with pytest.raises(DeliveryError, match="loopback"):
            await dep.service.create("alice", "refused-hook", "true", delivery={
                "webhook_url": receiver.url, "webhook_secret": SECRET})
        dep.service.webhook_allow = LOCAL
        made = await dep.service.create("alice", "hook", "object.ndet >= 1", delivery={
            "webhook_url": receiver.url, "webhook_secret": SECRET})
        retried = await dep.service.create("alice", "retried", "object.ndet >= 1", delivery={
            "webhook_url": receiver.url.replace("/hook", "/retry"), "webhook_secret": SECRET})
        await dep.service.create("alice", "slack", "object.ndet >= 1", delivery={
            "webhook_url": receiver.url, "webhook_secret": SECRET, "slack": True})
        for seed in range(4):  # four batches, as a stream brings them
            await dep.ingest(as_inputs(list(AlertSimulator(seed=60 + seed).packets(15))), 15)
        await deliverer.drain()
        _, matches = await dep.service.matches("alice", "hook", first=10_000)
        assert len(matches) == 60
        stored_at = {m["alert_id"]: m["created"].timestamp() for m in matches}

        async def outcomes(filter_id: str) -> list[dict[str, Any]]:
            return [m["delivery"]["webhook"] for m in await dep.store.db.filter_matches.find(
                {"filter_id": filter_id}).to_list(None)]
        assert all(o["ok"] and o["attempts"] == 1 for o in await outcomes(made["_id"]))
        # each first try got a 500 (a retry may also meet the connection the receiver
        # closed after it): every one delivered, none on its first try
        assert all(o["ok"] and o["attempts"] >= 2 for o in await outcomes(retried["_id"]))
    plain = [(t, h, b) for t, h, b in receiver.received
             if b.startswith(b'{"filter"') and json.loads(b)["filter"]["id"] == made["_id"]]
    slack = [(t, h, b) for t, h, b in receiver.received if b.startswith(b'{"text"')]
    assert len(plain) == 60 and len(slack) == 60
    assert len([b for _, _, b in receiver.received if retried["_id"].encode() in b]) == 60
    latencies = []
    for received_at, headers, body in plain:
        expected = "sha256=" + hmac.new(SECRET.encode(), headers[TIMESTAMP_HEADER].encode()
                                        + b"." + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
        payload = json.loads(body)
        assert payload["filter"]["version"] == 1
        assert isinstance(payload["match"]["alert_id"], str)
        assert payload["match"]["permalink"].endswith(payload["match"]["oid"])
        latencies.append(received_at - stored_at[payload["match"]["alert_id"]])
    latencies.sort()
    p50, p95 = latencies[len(latencies) // 2], latencies[int(0.95 * len(latencies))]
    print(f"webhook latency p50 {p50:.3f} p95 {p95:.3f} s")
    assert latencies[int(0.95 * len(latencies))] < 1.0, latencies[-5:]
    workers.close()
    text = json.loads(slack[0][2])["text"]
    assert "Nightjar filter *slack* (v1) matched ZTF object </explorer/object/ZTF" in text
    assert SECRET not in json.dumps([h for _, h, _ in receiver.received])


async def test_email_digest(mongo_uri: str, tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller

    from nightjar.processes import free_port

    class Inbox:
        def __init__(self) -> None:
            self.messages: list[Any] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
            return "250 OK"

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        async with deployment(mongo_uri, tmp_path) as dep:
            deliverer = Deliverer(dep.service.filters,
                                  smtp=SmtpSettings("127.0.0.1", port, "broker@nightjar.test"))
            made = await dep.service.create("alice", "digest", "object.ndet >= 2", delivery={
                "email": "alice@example.org", "digest_minutes": 5})
            await dep.ingest(as_inputs(list(AlertSimulator(seed=70).packets(60))), 60)
            assert await deliverer.send_digests() == 1
            assert await deliverer.send_digests() == 0  # not due again for 5 minutes
            (to, message), = inbox.messages
            _, stored = await dep.service.matches("alice", "digest", first=10_000)
            assert to == ["alice@example.org"]
            assert message["Subject"] == f"Nightjar: {len(stored)} new matches of digest"
            text = message.get_payload()
            assert all(m["alert_id"] in text and m["permalink"] in text for m in stored)
            doc = await dep.service.get("alice", made["_id"])
            assert doc["delivery"]["email"]["last_seq"] == stored[-1]["seq"]
        # a filter that keeps failing is muted, and its owner hears of it by e-mail
        async with deployment(mongo_uri, tmp_path / "muted", FilterLimits(max_errors=5)) as dep:
            dep.engine.deliverer = Deliverer(dep.service.filters, smtp=SmtpSettings(
                "127.0.0.1", port, "broker@nightjar.test"))
            await dep.service.create("alice", "broken", "1 / (object.ndet - object.ndet) > 0",
                                     delivery={"email": "alice@example.org"})
            await dep.ingest(as_inputs(list(AlertSimulator(seed=71).packets(60))), 30)
            assert (await dep.service.get("alice", "broken"))["state"] == "muted"
        (to, notice), = inbox.messages[1:]
        assert to == ["alice@example.org"]
        assert notice["Subject"] == "Nightjar: your filter broken is muted"
        assert "division by zero" in notice.get_payload(decode=True).decode()
    finally:
        controller.stop()


async def test_each_filter_has_its_kafka_topic(mongo_uri: str, tmp_path: Path,
                                               kafka_bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        async with deployment(mongo_uri, tmp_path) as dep:
            async def send(topic: str, key: bytes | None, value: bytes) -> Any:
                return await producer.send_and_wait(topic, value, key=key)

            dep.engine.deliverer = Deliverer(dep.service.filters, send,
                                             topic_prefix="nightjar-filter-test-")
            made = await dep.service.create("alice", "kafka", "alert.snr > 5.0",
                                            delivery={"kafka": True})
            quiet = await dep.service.create("alice", "no-kafka", "alert.snr > 5.0")
            await dep.ingest(as_inputs(list(AlertSimulator(seed=80).packets(50))), 25)
            _, stored = await dep.service.matches("alice", "kafka", first=10_000)
            topic = f"nightjar-filter-test-{made['_id']}"
            consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap,
                                        auto_offset_reset="earliest", group_id=None)
            await consumer.start()
            try:
                records: list[tuple[bytes, dict[str, Any]]] = []
                deadline = time.monotonic() + 30
                while len(records) < len(stored) and time.monotonic() < deadline:
                    batch = await consumer.getmany(timeout_ms=1000)
                    for messages in batch.values():
                        records += [(m.key, decode(m.value)[0]) for m in messages]
            finally:
                await consumer.stop()
            assert stored and len(records) == len(stored)
            assert [r["seq"] for _, r in records] == [m["seq"] for m in stored]
            for key, record in records:
                assert key == record["oid"].encode() and record["filter_id"] == made["_id"]
                assert json.loads(record["read_json"])["alert.snr"] > 5.0
            topics = await producer.client.fetch_all_metadata()
            assert f"nightjar-filter-test-{quiet['_id']}" not in topics.topics()
    finally:
        await producer.stop()


async def test_filters_on_the_kafka_worker_deliver_both_stages(
        kafka_bootstrap: str, mongo_uri: str, tmp_path: Path, shared_data: Path,
        receiver: Receiver) -> None:
    """A real ``nightjar worker``: an alert-stage filter answers after the store, a
    light-curve one after the classify agent's classification; each publishes on its own
    topic and webhook, and a backfill over the same store gives the same matches."""
    from stream.localrun import StreamEnv, Worker, read_topic, wait_for

    env = StreamEnv(kafka_bootstrap, mongo_uri, tmp_path, extra={
        "NIGHTJAR_LC_CLASSIFIER": "true", "NIGHTJAR_WEBHOOK_ALLOW": json.dumps(LOCAL)})
    prefix = f"flt-{env.tag}-"
    env.extra["NIGHTJAR_FILTER_TOPIC_PREFIX"] = prefix
    filters = {"bright": "alert.snr > 10.0 && object.ndet >= 2",
               "classified": 'classified("lc_classifier") && anomaly.score >= 0.0'}
    made: dict[str, dict[str, Any]] = {}
    try:
        for name, expression in filters.items():
            out = env.cli("filter", "create", name, "--expression", expression, "--kafka",
                          "--webhook", receiver.url, "--webhook-secret", SECRET)
            assert out.returncode == 0, out.stderr
            made[name] = json.loads(out.stdout)
        assert made["classified"]["stage"] == "classification"
        assert made["bright"]["stage"] == "alert"
        alerts_dir = shared_data / "ztf" / "alerts"
        produced = env.cli("produce", str(alerts_dir))
        assert produced.returncode == 0, produced.stderr
        worker = Worker(env)
        try:
            async def enough() -> bool:
                async with env.store() as store:
                    counts = [await store.db["filter_matches"].count_documents(
                        {"filter_id": made[name]["id"]}) for name in filters]
                return min(counts) >= 10

            await wait_for(enough, 300, "matches of both filters")
            await asyncio.sleep(3)  # the classify agent's batch in flight
        finally:
            assert worker.stop() == 0, worker.log[-3000:]
        stored = {name: json.loads(env.cli("filter", "matches", name, "--format", "json",
                                           "--first", "100000").stdout) for name in filters}
        # the stamp-only objects (never light-curve classified) match nothing
        async with env.store() as store:
            lc_classified = set(await store.db["probabilities"].distinct(
                "oid", {"classifier_name": "lc_classifier"}))
        assert {m["oid"] for m in stored["classified"]} <= lc_classified
        for name, matches in stored.items():
            records = await read_topic(env.bootstrap, prefix + made[name]["id"],
                                       expected=len(matches), wait_s=60)
            assert sorted(r.value["alert_id"] for r in records) == sorted(
                m["alert_id"] for m in matches)
            hooked = [json.loads(b) for _, _, b in receiver.received
                      if json.loads(b)["filter"]["id"] == made[name]["id"]]
            assert sorted(h["match"]["alert_id"] for h in hooked) == sorted(
                m["alert_id"] for m in matches)
        # what a backfill over the same store gives: the live matches exactly
        expression = filters["classified"]
        assert env.cli("filter", "create", "again", "--expression", expression).returncode == 0
        backfilled = env.cli("filter", "backfill", "again")
        assert backfilled.returncode == 0, backfilled.stderr
        again = json.loads(env.cli("filter", "matches", "again", "--format", "json",
                                   "--first", "100000").stdout)

        def key(m: dict[str, Any]) -> tuple[str, str, str]:
            return m["oid"], m["alert_id"], json.dumps(m["read"], sort_keys=True)
        assert sorted(map(key, again)) == sorted(map(key, stored["classified"]))
    finally:
        await env.drop()
