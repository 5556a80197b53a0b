"""Filters, watchlists and watchmaps through the live gateway: GraphQL over real HTTP and
WebSocket connections, and the Python client, with alerts ingested while subscribed."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from nightjar_client import Nightjar
from nightjar_client.errors import APIError

from nightjar.runner.filters import OPERATOR
from nightjar.surveys.ztf.simulate import AlertSimulator
from services.gateway.app import GatewayConfig
from services.gateway.live import StoreFeed
from tests.conftest import as_inputs
from tests.gateway_env import API_KEY, API_USER, gql, live_gateway
from tests.test_filters import Deployment, deployment
from tests.test_gateway_live import Subscriber, subscribed, until
from tests.test_watch import _lsst_at

BOB_KEY, BOB = "test-key-bob", "bob"
CREATE = """mutation($input: FilterInput!) { createFilter(input: $input) {
  id name owner version stage state expression } }"""
MATCHES = """subscription($filter: ID!) { filterMatches(filter: $filter) {
  seq filterId version oid survey alertId mjd ra dec stage source permalink
  read { path value } } }"""


@pytest.fixture
async def gateway(mongo_uri: str, tmp_path: Path) -> AsyncIterator[tuple[str, Deployment]]:
    async with deployment(mongo_uri, tmp_path) as dep:
        config = GatewayConfig(api_keys={API_KEY: API_USER, BOB_KEY: BOB}, rate_anonymous=1e6)
        async with live_gateway(dep, config, feed=StoreFeed(dep.store, poll_s=0.02),
                                filters=dep.service, watch=dep.watch) as (url, _):
            yield url, dep


def _headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def test_create_refused_and_owned(gateway: tuple[str, Deployment]) -> None:
    url, _ = gateway
    async with httpx.AsyncClient(base_url=url) as client:
        anonymous = await gql(client, CREATE, input={"name": "x", "expression": "true"})
        assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        refused = await gql(client, CREATE, _headers(API_KEY),
                            input={"name": "x", "expression": "object.ndet >= \"3\""})
        error = refused["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert (error["extensions"]["line"], error["extensions"]["column"]) == (1, 1)
        assert "cannot compare int >= string" in error["message"]
        made = await gql(client, CREATE, _headers(API_KEY), input={
            "name": "mine", "expression": 'prob("stamp_classifier", "SN") > 0.5'})
        created = made["data"]["createFilter"]
        assert created["owner"] == API_USER and created["stage"] == "classification"
        fid = created["id"]
        read = """query($id: ID!) { filter(id: $id) { name owner state } }"""
        assert (await gql(client, read, _headers(API_KEY), id=fid))["data"]["filter"][
            "owner"] == API_USER
        for headers in (_headers(BOB_KEY), None):  # private: nobody else sees it
            answer = await gql(client, read, headers, id=fid)
            assert answer["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        edit = """mutation($id: ID!) { updateFilter(id: $id, input: {state: PAUSED}) {
          state } }"""
        assert (await gql(client, edit, _headers(BOB_KEY), id=fid))["errors"][0][
            "extensions"]["code"] == "NOT_FOUND"
        assert (await gql(client, edit, _headers(API_KEY), id=fid))["data"]["updateFilter"][
            "state"] == "PAUSED"
        listed = await gql(client, "{ filters { name owner } }", _headers(BOB_KEY))
        assert listed["data"]["filters"] == []
        dry = await gql(client, """query { dryRunFilter(expression: "object.ndet >") {
          valid error { message line column } } }""")
        assert dry["data"]["dryRunFilter"]["valid"] is False
        assert dry["data"]["dryRunFilter"]["error"]["column"] == 14


async def test_matches_reach_a_subscriber_within_a_second(
        gateway: tuple[str, Deployment], shared_data: Path) -> None:
    url, dep = gateway
    nj = Nightjar(url, api_key=API_KEY, timeout=60)
    try:
        made = await asyncio.to_thread(nj.create_filter, "bright",
                                       "alert.mag_diff < 20.5 && object.ndet >= 1")
        fid = made["id"]
        async with Subscriber.connect(url, API_KEY) as sub:
            await sub.subscribe("m", MATCHES, filter=fid)
            sub.start_reading()
            await subscribed(url, 1)
            latencies: list[float] = []
            for seed in range(3):  # three batches, as a stream brings them
                packets = list(AlertSimulator(seed=90 + seed).packets(40))
                before = len(sub.received["m"])
                await dep.ingest(as_inputs(packets), batch_size=40)
                stored_at = time.time()
                stored = (await dep.service.filters.count_matches(fid))
                await until(lambda s=stored: len(sub.received["m"]) >= s, 5.0,
                            "the batch's matches on the subscription")
                latencies.append(time.time() - stored_at)
                assert len(sub.received["m"]) > before
            print(f"subscription: a batch's last match {max(latencies):.3f} s after the "
                  f"batch was stored (worst of {len(latencies)})")
            assert max(latencies) < 1.0, latencies
        got = sub.received["m"]
        assert {m["filterId"] for m in got} == {fid} and {m["version"] for m in got} == {1}
        assert all(isinstance(m["alertId"], str) and m["permalink"].endswith(m["oid"])
                   for m in got)
        # the paged query gives the same matches, and the client pages them all
        rows = await asyncio.to_thread(nj.filter_matches, fid)
        assert [r["seq"] for r in rows] == sorted(m["seq"] for m in got)
        assert rows[0]["read"]["alert.mag_diff"] < 20.5
        tail = await asyncio.to_thread(nj.filter_matches, fid, rows[10]["seq"])
        assert [r["seq"] for r in tail] == [r["seq"] for r in rows[11:]]
        csv_text = await asyncio.to_thread(nj.filter_matches, fid, 0, "csv")
        assert csv_text.splitlines()[0].startswith("seq,filter_name,version,oid")
        # the client's own subscription, with the API key on its WebSocket
        stream = nj.subscribe_filter(fid)
        first = asyncio.ensure_future(stream.__anext__())
        await subscribed(url, 1)
        await asyncio.sleep(0.3)
        await dep.ingest(as_inputs(list(AlertSimulator(seed=99).packets(10))), 10)
        message = await asyncio.wait_for(first, 10)
        assert message.filter_id == fid
        await stream.aclose()  # type: ignore[attr-defined]
    finally:
        nj.close()


async def test_client_filters_watchlists_and_watchmaps(gateway: tuple[str, Deployment],
                                                       shared_data: Path,
                                                       tmp_path: Path) -> None:
    url, dep = gateway
    nj = Nightjar(url, api_key=API_KEY, timeout=60)
    try:
        with pytest.raises(APIError) as refused:
            await asyncio.to_thread(nj.create_filter, "bad", "object.nope > 1")
        assert refused.value.code == "BAD_USER_INPUT" and "1:8" in str(refused.value)
        listing = tmp_path / "hosts.csv"
        listing.write_text("name,ra,dec,radius\nnear-pole,45.0,89.9,5\nacross-zero,0.0004,1.0,"
                           "5\n")
        made = await asyncio.to_thread(nj.create_watchlist, "hosts", listing)
        assert made["owner"] == API_USER and made["rows_total"] == 2

        async def ready() -> bool:
            lists = await asyncio.to_thread(nj.watchlists)
            return any(w["name"] == "hosts" and w["state"] == "ready" for w in lists)
        await until(ready, 10.0, "the watchlist to load in the background")
        too_big = "name,ra,dec,radius\na,1,1,1\nb,2,2,4000\n"
        with pytest.raises(APIError, match="row 2"):
            await asyncio.to_thread(nj.create_watchlist, "big", too_big)
        mapped = await asyncio.to_thread(nj.create_watchmap, "gw", shared_data / "skymaps" /
                                         "MS181101ab.multiorder.fits", 60999.0, 61100.0)
        assert mapped["kind"] == "skymap" and mapped["event"] == "MS181101ab"
        flt = await asyncio.to_thread(nj.create_filter, "watched",
                                      'in_watchlist("hosts") || in_watchmap("gw", 0.9)')
        dry = await asyncio.to_thread(nj.dry_run_filter, 'in_watchlist("hosts")')
        assert dry["valid"] and dry["stage"] == "alert"
        await dep.ingest(_lsst_at(31, [(45.0, 89.9), (0.0004, 1.0), (120.0, -30.0)]))
        rows = await asyncio.to_thread(nj.filter_matches, flt["id"])
        assert rows and all(r["survey"] == "LSST" for r in rows)
        assert {round(r["dec"]) for r in rows} == {90, 1}
        lists = await asyncio.to_thread(nj.watchlists)
        assert next(w["matches"] for w in lists if w["name"] == "hosts") == len(rows)
        paused = await asyncio.to_thread(nj.update_filter, flt["id"], state="paused")
        assert paused["state"] == "PAUSED"
        assert await asyncio.to_thread(nj.delete_filter, flt["id"])
        assert [f["name"] for f in await asyncio.to_thread(nj.list_filters)] == []
    finally:
        nj.close()


async def test_public_filters_are_a_gallery(gateway: tuple[str, Deployment]) -> None:
    url, dep = gateway
    async with httpx.AsyncClient(base_url=url) as client:
        shared = await gql(client, CREATE, _headers(BOB_KEY), input={
            "name": "bob-public", "expression": "object.ndet >= 5", "public": True})
        fid = shared["data"]["createFilter"]["id"]
        for headers in (_headers(API_KEY), None):
            listed = await gql(client, "{ filters { id name owner public } }", headers)
            assert [f["id"] for f in listed["data"]["filters"]] == [fid]
        await dep.ingest(as_inputs(list(AlertSimulator(seed=3).packets(60))), 60)
        page = await gql(client, """query($f: ID!) { filterMatches(filter: $f, first: 5) {
          items { seq oid } endCursor hasNextPage } }""", f=fid)
        items = page["data"]["filterMatches"]
        assert len(items["items"]) == 5 and items["hasNextPage"]
        assert items["endCursor"] == str(items["items"][-1]["seq"])
    seqs = [m["seq"] for m in await dep.service.filters.matches(fid, first=1000)]
    assert statistics.mean(seqs) > 0 and seqs == sorted(seqs)
    # copied from the gallery: the copy is the caller's own, private, and names its source
    nj = Nightjar(url, API_KEY)
    try:
        copied = await asyncio.to_thread(nj.copy_filter, fid, "from-bob")
        assert copied["owner"] == API_USER and copied["expression"] == "object.ndet >= 5"
        assert not copied["public"] and "bob/bob-public v1" in copied["description"]
        private = await dep.service.create(BOB, "bob-private", "object.ndet >= 9")
        with pytest.raises(APIError) as refused:
            await asyncio.to_thread(nj.copy_filter, private["_id"], "not-mine")
        assert refused.value.code == "NOT_FOUND"
    finally:
        nj.close()
    assert (await dep.service.get(OPERATOR, "bob/bob-public"))["_id"] == fid


async def test_delivery_settings_through_graphql(gateway: tuple[str, Deployment]) -> None:
    """Delivery is set and read through GraphQL; a webhook to a private address is
    refused; the secret is never shown, and the addresses only to the owner."""
    url, dep = gateway
    delivery = "delivery { kafkaTopic webhookUrl slack email digestMinutes }"
    create = CREATE.replace("expression } }", f"expression {delivery} }} }}")
    async with httpx.AsyncClient(base_url=url) as client:
        refused = await gql(client, create, _headers(BOB_KEY), input={
            "name": "ssrf", "expression": "true", "delivery": {
                "webhookUrl": "http://169.254.169.254/latest/meta-data",
                "webhookSecret": "s" * 20}})
        assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "link-local" in refused["errors"][0]["message"]
        made = await gql(client, create, _headers(BOB_KEY), input={
            "name": "delivered", "expression": "object.ndet >= 2", "public": True,
            "delivery": {"kafka": True, "email": "bob@example.org", "digestMinutes": 30}})
        created = made["data"]["createFilter"]
        assert created["delivery"] == {
            "kafkaTopic": f"nightjar-filter-{created['id']}", "webhookUrl": None,
            "slack": False, "email": "bob@example.org", "digestMinutes": 30}
        seen = await gql(client, f"{{ filters {{ id {delivery} }} }}", _headers(API_KEY))
        (other,) = seen["data"]["filters"]  # the gallery shows the filter, not its e-mail
        assert other["id"] == created["id"] and other["delivery"]["email"] is None
    doc = await dep.service.get(BOB, created["id"])
    assert doc["delivery"]["email"] == {"to": "bob@example.org", "digest_minutes": 30}
