"""The gateway over HTTP: objects filters/orders/pagination, details, labels, downloads,
limits, rate limits, error codes, CORS, metrics — against a live uvicorn server, a real
store holding the real alerts (classified by the shipped models) and the gRPC services."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fastavro
import httpx
import pytest
from astropy.io import fits
from astropy.io.votable import parse_single_table
from PIL import Image

from nightjar.runner.ingest import expand_paths, iter_inputs
from nightjar.sky import separation_deg
from nightjar.store import NightjarStore
from nightjar.surveys.ztf.simulate import AlertSimulator
from services.gateway.app import GatewayConfig
from services.gateway.limits import GatewayLimits
from tests.conftest import as_inputs
from tests.gateway_env import API_KEY, API_USER, Deployment, codes, deployment, gql, live_gateway

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
async def dep(mongo_uri: str, shared_data: Path,
              tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    async with deployment(mongo_uri, tmp_path_factory.mktemp("gateway")) as d:
        await d.ingest(list(iter_inputs(expand_paths([shared_data / "ztf" / "alerts"]))))
        await d.ingest(as_inputs(list(AlertSimulator(seed=21).packets(300))))
        yield d


@pytest.fixture(scope="module")
async def url(dep: Deployment) -> AsyncIterator[str]:
    async with live_gateway(dep) as (base, _):
        yield base


@pytest.fixture
async def client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        yield c


PAGE = """query($filter: ObjectFilterInput, $orderBy: ObjectOrderInput, $first: Int,
                $after: String) {
  objects(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    edges { cursor node { oid ndet firstmjd lastmjd meanra meandec gRMean }
            matchedProbability { probability ranking className } }
    pageInfo { hasNextPage endCursor } } }"""


async def all_pages(client: httpx.AsyncClient, first: int = 7, **variables: Any
                    ) -> tuple[list[dict[str, Any]], int]:
    """Every edge, following cursors; and the totalCount of the first page."""
    edges: list[dict[str, Any]] = []
    after, total = None, -1
    while True:
        body = await gql(client, PAGE, first=first, after=after, **variables)
        assert not body.get("errors"), body
        page = body["data"]["objects"]
        total = page["totalCount"] if total < 0 else total
        edges += page["edges"]
        assert len(page["edges"]) <= first
        if not page["pageInfo"]["hasNextPage"]:
            return edges, total
        after = page["pageInfo"]["endCursor"]


async def objects(store: NightjarStore) -> list[dict[str, Any]]:
    return [d async for d in store.db["objects"].find({})]


async def rows(store: NightjarStore, **query: Any) -> list[dict[str, Any]]:
    return [r async for r in store.db["probabilities"].find(query)]


async def test_every_filter_matches_the_store(client: httpx.AsyncClient, dep: Deployment) -> None:
    docs = await objects(dep.store)
    by_oid = {d["_id"]: d for d in docs}
    some = sorted(by_oid)[::9][:6]
    sn = {r["oid"] for r in await rows(dep.store, classifier_name="stamp_classifier",
                                       class_name="VS", ranking=1)}
    probable = {r["oid"] for r in await rows(dep.store, classifier_name="stamp_classifier",
                                             class_name="VS")
                if r["probability"] >= 0.9}
    mjds = sorted(d["firstmjd"] for d in docs)
    lo, hi = mjds[len(mjds) // 4], mjds[len(mjds) // 2]
    last_lo = sorted(d["lastmjd"] for d in docs)[len(docs) // 3]
    centre = docs[0]
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"oids": some}, set(some)),
        ({"classifier": "stamp_classifier", "className": "VS"}, sn),  # ranking 1 by default
        ({"classifier": "stamp_classifier", "className": "VS", "ranking": 0,
          "probabilityMin": 0.9}, probable),
        ({"ndet": {"min": 3, "max": 10}}, {o for o, d in by_oid.items() if 3 <= d["ndet"] <= 10}),
        ({"firstmjd": {"min": lo, "max": hi}},
         {o for o, d in by_oid.items() if lo <= d["firstmjd"] <= hi}),
        ({"lastmjd": {"min": last_lo}}, {o for o, d in by_oid.items() if d["lastmjd"] >= last_lo}),
        ({"cone": {"ra": centre["meanra"], "dec": centre["meandec"], "radius": 3600 * 9}},
         {o for o, d in by_oid.items() if separation_deg(
             centre["meanra"], centre["meandec"], d["meanra"], d["meandec"]) <= 9}),
    ]
    for flt, expected in cases:
        assert 0 < len(expected) < len(docs), flt  # each case selects, and leaves some out
        edges, total = await all_pages(client, filter=flt)
        got = [e["node"]["oid"] for e in edges]
        assert got == sorted(expected), flt  # default order: oid
        assert total == len(expected), flt
    # several filters together: their intersection
    both = {"classifier": "stamp_classifier", "className": "VS", "ndet": {"min": 3}}
    edges, total = await all_pages(client, filter=both)
    assert {e["node"]["oid"] for e in edges} == {o for o in sn if by_oid[o]["ndet"] >= 3}
    assert total == len(edges)


async def test_every_order_pages_through_everything_once(client: httpx.AsyncClient,
                                                         dep: Deployment) -> None:
    docs = await objects(dep.store)
    for field, key, nullable in (("NDET", "ndet", False), ("FIRSTMJD", "firstmjd", False),
                                 ("MEANDEC", "meandec", False), ("G_R_MEAN", "g_r_mean", True)):
        for direction in ("ASC", "DESC"):
            edges, total = await all_pages(client, first=11,
                                           orderBy={"field": field, "direction": direction})
            got = [e["node"]["oid"] for e in edges]
            desc = direction == "DESC"
            present = [d for d in docs if d.get(key) is not None]
            expected = sorted(present, key=lambda d: (d[key], d["_id"]), reverse=desc)
            if desc:  # ties by oid in the same direction
                expected = sorted(present, key=lambda d: (-d[key], _neg(d["_id"])))
            missing = sorted((d for d in docs if d.get(key) is None), key=lambda d: d["_id"],
                             reverse=desc)
            assert nullable or not missing
            assert got == [d["_id"] for d in expected + missing], (field, direction)
            assert total == len(docs)
    # by the probability of a class, most probable first
    vs = await rows(dep.store, classifier_name="stamp_classifier", class_name="VS", ranking=1)
    edges, total = await all_pages(client, first=5, filter={
        "classifier": "stamp_classifier", "className": "VS"}, orderBy={"field": "PROBABILITY"})
    assert [e["node"]["oid"] for e in edges] == [
        r["oid"] for r in sorted(vs, key=lambda r: (-r["probability"], r["oid"]))]
    assert all(e["matchedProbability"]["className"] == "VS" for e in edges)
    assert total == len(vs) > 5


def _neg(oid: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in oid)


async def test_null_arguments_mean_defaults(client: httpx.AsyncClient) -> None:
    default = await gql(client, "{ objects { nodes { oid } pageInfo { endCursor } } }")
    assert not default.get("errors") and len(default["data"]["objects"]["nodes"]) == 50
    for args in ("filter: null, orderBy: null, first: null, after: null",
                 "filter: {}, orderBy: {}",
                 "filter: {ndet: null, cone: null, className: null, oids: null, "
                 "firstmjd: {min: null, max: null}}",
                 "orderBy: {field: null, direction: null}", "orderBy: {field: OID}"):
        body = await gql(client, f"{{ objects({args}) {{ nodes {{ oid }} "
                                 "pageInfo { endCursor } } }")
        assert not body.get("errors"), (args, body)
        assert body["data"] == default["data"], args
    # variables that are null or absent alike
    body = await gql(client, PAGE, filter=None, orderBy=None, first=None, after=None)
    assert not body.get("errors")
    assert [e["node"]["oid"] for e in body["data"]["objects"]["edges"]] == [
        n["oid"] for n in default["data"]["objects"]["nodes"]]


async def test_pages_stay_stable_while_ingesting(client: httpx.AsyncClient,
                                                 dep: Deployment) -> None:
    before = {d["_id"] for d in await objects(dep.store)}
    new_alerts = as_inputs(list(AlertSimulator(seed=99).packets(200)))
    for order in ({"field": "OID"}, {"field": "FIRSTMJD", "direction": "DESC"}):
        seen: list[str] = []
        after = None
        chunks = [new_alerts[i::4] for i in range(4)] if order["field"] == "OID" else []
        while True:
            if chunks:  # new objects (and new detections of old ones) between pages
                await dep.ingest(chunks.pop(), batch_size=50)
            body = await gql(client, PAGE, first=9, after=after, orderBy=order)
            page = body["data"]["objects"]
            seen += [e["node"]["oid"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert len(seen) == len(set(seen)), order  # no object twice
        assert before <= set(seen), order  # none of those present at the start skipped


async def test_object_details(client: httpx.AsyncClient, dep: Deployment) -> None:
    store = dep.store
    row = next(r for r in await rows(store, classifier_name="lc_classifier", ranking=1))
    oid = row["oid"]
    body = await gql(client, """query($oid: String!) { object(oid: $oid) {
        oid detections { candid magpsf corrected magpsfCorr } nonDetections { mjd }
        forcedPhotometry { mag }
        lightcurve { mjd fid band kind mag magErr unit candid }
        corrected: lightcurve(kinds: [CORRECTED]) { mag }
        probabilities { classifierName classifierVersion className probability ranking }
        lc: probabilities(classifier: "lc_classifier") { className ranking }
        features { name value } labels { label }
        downloads { lightcurveCsv lightcurveVotable lightcurvePng findingChart }
        stamps { candid kinds url(kind: "difference", format: "fits") avroUrl } } }""", oid=oid)
    assert not body.get("errors"), body
    obj = body["data"]["object"]
    kinds = [p["kind"] for p in obj["lightcurve"]]
    dets = obj["detections"]
    assert kinds.count("DIFFERENCE") == len(dets)
    assert kinds.count("CORRECTED") == sum(d["corrected"] for d in dets) == len(obj["corrected"])
    assert kinds.count("UPPER_LIMIT") == len(obj["nonDetections"])
    assert kinds.count("FORCED") == sum(f["mag"] is not None for f in obj["forcedPhotometry"])
    assert {p["unit"] for p in obj["lightcurve"]} == {"mag"}
    assert [p["mjd"] for p in obj["lightcurve"]] == sorted(p["mjd"] for p in obj["lightcurve"])
    corrected = sorted(d["magpsfCorr"] for d in dets if d["corrected"])
    assert sorted(p["mag"] for p in obj["corrected"]) == pytest.approx(corrected)
    stored = await rows(store, oid=oid)
    assert len(obj["probabilities"]) == len(stored)
    assert {p["className"] for p in obj["lc"]} == {
        r["class_name"] for r in stored if r["classifier_name"] == "lc_classifier"}
    assert len(obj["features"]) > 50
    assert obj["downloads"]["lightcurveCsv"] == f"/download/lightcurve/{oid}.csv"
    assert obj["stamps"] and all(isinstance(s["candid"], str) for s in obj["stamps"])

    cls = await gql(client, "{ classifiers { name versions classes parentClass survey } "
                            "taxonomy { name level parent children } }")
    # the light-curve classifiers are listed once per survey; this object is ZTF's
    names = {c["name"]: c for c in cls["data"]["classifiers"] if c["survey"] == "ZTF"}
    assert row["classifier_version"] in names["lc_classifier"]["versions"]
    assert len(names["lc_classifier"]["classes"]) == 15
    assert names["lc_classifier_transient"]["parentClass"] == "Transient"
    assert set(names["stamp_classifier"]["classes"]) == {"AGN", "SN", "VS", "asteroid", "bogus"}
    tops = [n for n in cls["data"]["taxonomy"] if n["level"] == "top"]
    assert sum(len(t["children"]) for t in tops) == 15


async def test_add_label_needs_an_api_key_and_keeps_the_classifiers(
        client: httpx.AsyncClient, dep: Deployment) -> None:
    doc = await dep.store.db["detections"].find_one({"has_stamp": True})
    oid, candid = doc["oid"], str(doc["_id"])
    mutation = """mutation($oid: String!, $candid: BigInt, $label: String!, $comment: String) {
        addLabel(oid: $oid, candid: $candid, label: $label, comment: $comment) {
            oid candid label comment user created } }"""
    before = await rows(dep.store, oid=oid)
    anonymous = await gql(client, mutation, oid=oid, candid=candid, label="BOGUS")
    assert codes(anonymous) == ["UNAUTHENTICATED"] and anonymous["data"] is None
    wrong = await client.post("/graphql", json={"query": mutation, "variables": {
        "oid": oid, "label": "BOGUS"}}, headers={"X-API-Key": "not-a-key"})
    assert wrong.status_code == 401 and codes(wrong.json()) == ["UNAUTHENTICATED"]
    key = {"Authorization": f"Bearer {API_KEY}"}
    added = await gql(client, mutation, key, oid=oid, candid=candid, label="POSSIBLE_SN",
                      comment="rising, host offset")
    assert not added.get("errors"), added
    label = added["data"]["addLabel"]
    assert (label["user"], label["candid"], label["label"]) == (API_USER, candid, "POSSIBLE_SN")
    assert abs(time.time() - _unix(label["created"])) < 60
    await gql(client, mutation, {"X-API-Key": API_KEY}, oid=oid, label="my tag: check")
    listed = await gql(client, "query($oid: String!) { object(oid: $oid) { labels { label "
                               "user comment } } }", oid=oid)
    assert [x["label"] for x in listed["data"]["object"]["labels"]] == ["POSSIBLE_SN",
                                                                        "my tag: check"]
    assert await rows(dep.store, oid=oid) == before  # the classifiers' rows untouched
    other = await dep.store.db["detections"].find_one({"has_stamp": True, "oid": {"$ne": oid}})
    for variables, code in (({"oid": "ZTF00nothing", "label": "BOGUS"}, "NOT_FOUND"),
                            ({"oid": oid, "label": ""}, "BAD_USER_INPUT"),
                            ({"oid": oid, "label": "x" * 65}, "BAD_USER_INPUT"),
                            ({"oid": oid, "label": "BOGUS", "candid": str(other["_id"])},
                             "BAD_USER_INPUT"),
                            ({"oid": oid, "label": "BOGUS", "candid": "12x"}, "BAD_USER_INPUT")):
        assert codes(await gql(client, mutation, key, **variables)) == [code], variables


def _unix(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


ABUSE = "{ " + " ".join(f"a{i}: objects(first: 500) {{ nodes {{ detections {{ mjd }} }} }}"
                        for i in range(30)) + " }"
INTROSPECTION_DEPTH = ("{ __schema { types { fields { type { ofType { ofType { ofType { ofType "
                       "{ ofType { ofType { ofType { name } } } } } } } } } } } }")
#: data nested 14 deep (objects of counterparts of objects...): refused by depth
DATA_DEPTH = ('{ object(oid: "x") { ' + "counterparts { object { " * 6 + "oid"
              + " }" * 13 + " }")


async def test_limits_reject_abusive_queries_before_executing(client: httpx.AsyncClient) -> None:
    heavy = "query($n: Int) { objects(first: $n) { nodes { detections { mjd } nonDetections " \
            "{ mjd } forcedPhotometry { mjd } probabilities { probability } features " \
            "{ value } } } }"
    cases = [
        ({"query": ABUSE}, {"aliases", "cost"}),
        ({"query": heavy, "variables": {"n": 500}}, {"cost"}),  # cost read from variables
        ({"query": DATA_DEPTH}, {"depth"}),
        ({"query": "{ objects { nodes { oid } } }" + " " * 10_001}, {"length"}),
        ({"query": "{ objects(first: 501) { nodes { oid } } }"}, {"page_size"}),
    ]
    for payload, limits in cases:
        start = time.perf_counter()
        response = await client.post("/graphql", json=payload)
        elapsed = time.perf_counter() - start
        body = response.json()
        assert body["data"] is None, payload["query"][:60]
        assert set(codes(body)) == {"QUERY_TOO_COMPLEX"}
        assert {e["extensions"]["limit"] for e in body["errors"]} == limits
        assert elapsed < 0.5, (limits, elapsed)
        assert len(response.content) < 2000
    ok = await client.post("/graphql", json={"query": heavy, "variables": {"n": 100}})
    assert not ok.json().get("errors")
    # introspection reads the schema, not the store: its nesting (GraphiQL's and code
    # generators' TypeRef chains) is bounded by cost, not refused by depth
    typeref = await client.post("/graphql", json={"query": INTROSPECTION_DEPTH})
    assert not typeref.json().get("errors") and typeref.json()["data"]["__schema"]["types"]


async def test_timeout_and_internal_errors_leak_nothing(dep: Deployment) -> None:
    config = GatewayConfig(limits=GatewayLimits(timeout_s=0.001))
    async with live_gateway(dep, config) as (base, _), httpx.AsyncClient(base_url=base) as c:
        body = await gql(c, "{ objects(first: 500) { nodes { oid detections { mjd } } } }")
        assert codes(body) == ["QUERY_TOO_COMPLEX"] and body["errors"][0]["extensions"][
            "limit"] == "timeout"

    class Broken(NightjarStore):
        async def objects_by_id(self, oids: Any) -> Any:
            raise RuntimeError("secret: mongodb://admin:hunter2@db/")

    broken = Deployment(Broken(dep.store.db), dep.archive, dep.home, dep.processor)
    async with live_gateway(broken) as (base, _), httpx.AsyncClient(base_url=base) as c:
        body = await gql(c, '{ object(oid: "ZTF18abxhyqv") { oid } }')
        assert codes(body) == ["INTERNAL"]
        assert "hunter2" not in str(body) and "secret" not in str(body)
        assert body["errors"][0]["extensions"]["errorId"] in body["errors"][0]["message"]
        metrics = (await c.get("/metrics")).text
        assert 'nightjar_gateway_errors_total{code="INTERNAL"} 1.0' in metrics
        # user input is data, never an operator
        injected = await gql(c, '{ objects(filter: {oids: ["{\\"$ne\\": null}"]}) '
                                "{ totalCount nodes { oid } } }")
        assert injected["data"]["objects"] == {"totalCount": 0, "nodes": []}
        typed = await gql(c, '{ objects(filter: {ndet: {min: {$gt: 0}}}) { totalCount } }')
        assert codes(typed) == ["BAD_USER_INPUT"]


async def test_rate_limits_answer_retry_after(dep: Deployment) -> None:
    config = GatewayConfig(api_keys={API_KEY: API_USER}, rate_anonymous=40, rate_api_key=6000)
    query = {"query": "{ taxonomy { name } }"}
    async with live_gateway(dep, config) as (base, _), httpx.AsyncClient(base_url=base) as c:
        answers = [await c.post("/graphql", json=query) for _ in range(12)]
        statuses = [a.status_code for a in answers]
        assert statuses[:10] == [200] * 10 and statuses[-1] == 429  # burst: 40/4 = 10
        limited = answers[-1]
        assert int(limited.headers["Retry-After"]) >= 1
        assert codes(limited.json()) == ["RATE_LIMITED"]
        # another client (an API key) is not held back by the anonymous one
        keyed = [await c.post("/graphql", json=query, headers={"X-API-Key": API_KEY})
                 for _ in range(30)]
        assert {a.status_code for a in keyed} == {200}
        await asyncio.sleep(int(limited.headers["Retry-After"]))
        assert (await c.post("/graphql", json=query)).status_code == 200
        assert (await c.get("/healthz")).status_code == 200  # never limited


async def test_a_count_is_reused_for_its_ttl_not_recounted_per_request(
        dep: Deployment) -> None:
    """totalCount and the status page's counts scan the objects collection: a gateway
    counts each at most once per NIGHTJAR_GATEWAY_COUNT_TTL, and counts again after it."""
    ttl = 1.5
    config = GatewayConfig(api_keys={API_KEY: API_USER}, rate_anonymous=1e6,
                           count_ttl_s=ttl)
    query = """query($f: ObjectFilterInput) { objects(filter: $f, first: 1) { totalCount } }
               """
    flt = {"ndet": {"min": 2}}
    async with live_gateway(dep, config) as (base, _), \
            httpx.AsyncClient(base_url=base, timeout=60) as c:
        async def count(f: dict[str, Any] | None) -> int:
            return int((await gql(c, query, f=f))["data"]["objects"]["totalCount"])

        async def stored(f: dict[str, Any]) -> int:
            return await dep.store.db["objects"].count_documents(f)

        started = time.monotonic()  # both counts are cached from here on
        first, everything = await count(flt), await count(None)
        assert first == await stored({"ndet": {"$gte": 2}})
        assert everything == await stored({})
        # an object appears (written directly: milliseconds, well inside the TTL)
        extra = {"_id": "ZTF99cachetst", "oid": "ZTF99cachetst", "ndet": 3, "survey": "ZTF"}
        await dep.store.db["objects"].insert_one(extra)
        try:
            repeats = [await count(flt) for _ in range(5)] + [await count(None)]
            assert time.monotonic() - started < ttl
            assert repeats == [first] * 5 + [everything]  # the counts were reused
            await asyncio.sleep(ttl)
            assert await count(flt) == first + 1  # counted again after the TTL
            assert await count(None) == everything + 1
        finally:
            await dep.store.db["objects"].delete_one({"_id": extra["_id"]})


async def test_cors_health_and_metrics(dep: Deployment) -> None:
    config = GatewayConfig(cors_origins=("https://tom.example.org",))
    async with live_gateway(dep, config) as (base, _), httpx.AsyncClient(base_url=base) as c:
        preflight = {"Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type"}
        allowed = await c.options("/graphql", headers={"Origin": "https://tom.example.org",
                                                       **preflight})
        assert allowed.headers["access-control-allow-origin"] == "https://tom.example.org"
        other = await c.options("/graphql", headers={"Origin": "https://evil.example",
                                                     **preflight})
        assert "access-control-allow-origin" not in other.headers
        health = await c.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        await gql(c, '{ object(oid: "nope") { oid } }')
        await gql(c, "{ objects(first: 0) { nodes { oid } } }")
        text = (await c.get("/metrics")).text
        assert 'nightjar_gateway_requests_total{route="/graphql",status="200"} 2.0' in text
        assert 'nightjar_gateway_errors_total{code="BAD_USER_INPUT"} 1.0' in text
        assert "nightjar_gateway_request_seconds_bucket" in text
        assert "nightjar_gateway_active_subscriptions" in text
        assert "nightjar_gateway_dropped_messages_total" in text


async def test_downloads(client: httpx.AsyncClient, dep: Deployment) -> None:
    det = await dep.store.db["detections"].find_one({"has_stamp": True, "corrected": True})
    oid, candid = det["oid"], det["_id"]
    body = await gql(client, "query($oid: String!) { object(oid: $oid) { lightcurve { kind mag "
                             "mjd } } }", oid=oid)
    points = body["data"]["object"]["lightcurve"]

    got = await client.get(f"/download/lightcurve/{oid}.csv")
    assert got.headers["content-type"].startswith("text/csv")
    assert f'filename="{oid}_lightcurve.csv"' in got.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(got.text)))
    assert [(r["kind"].upper(), float(r["mag"])) for r in table] == [
        (p["kind"], pytest.approx(p["mag"])) for p in points]

    got = await client.get(f"/download/lightcurve/{oid}.xml")
    assert got.headers["content-type"] == "application/x-votable+xml"
    votable = parse_single_table(io.BytesIO(got.content)).to_table()
    assert len(votable) == len(points) and str(votable["mag"].unit) == "mag"
    assert str(votable["mjd"].unit) == "d"
    assert [math.isclose(float(m), p["mag"]) for m, p in zip(votable["mag"], points,
                                                               strict=True)] == [True] * len(points)

    got = await client.get(f"/download/lightcurve/{oid}.png")
    assert got.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(got.content))
    assert image.format == "PNG" and image.size[0] > 600

    got = await client.get(f"/download/stamp/{oid}/{candid}/science.fits")
    with fits.open(io.BytesIO(got.content)) as hdus:
        assert hdus[0].data.ndim == 2 and min(hdus[0].data.shape) >= 40
    got = await client.get(f"/download/stamp/{oid}/{candid}/difference.png")
    assert got.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(got.content)).format == "PNG"

    got = await client.get(f"/download/avro/{oid}/{candid}.avro")
    assert got.headers["content-type"] == "application/avro"
    assert [r["candid"] for r in fastavro.reader(io.BytesIO(got.content))] == [candid]

    got = await client.get(f"/download/finding-chart/{oid}.pdf")
    assert got.headers["content-type"] == "application/pdf"
    import pypdfium2

    pdf = pypdfium2.PdfDocument(got.content)
    assert len(pdf) == 1 and oid in pdf[0].get_textpage().get_text_range()

    for path in ("/download/lightcurve/ZTF00nothing.csv",
                 f"/download/stamp/{oid}/1/science.fits",
                 "/download/avro/ZTF00nothing/1.avro",
                 "/download/finding-chart/ZTF00nothing.pdf",
                 f"/download/stamp/{oid}/{candid}/sideways.fits"):
        got = await client.get(path)
        assert got.status_code == 404, path
        assert codes(got.json()) == ["NOT_FOUND"], path
