"""The gateway on both surveys: LSST objects beside ZTF's through the same API, downloads
and finding chart; counterparts and combined light curves; solar-system objects of both
surveys; introspection by standard clients; GraphiQL served offline.

A live gateway (uvicorn, the four gRPC services) over a store holding Rubin's real
sample alerts (schema 10.0 and 7.1), simulated LSST and ZTF alerts, a ZTF/LSST pair at
one position and a minor planet seen by both surveys.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fastavro
import httpx
import pytest
from astropy.io import fits

from ml.lc_classifier.taxonomy import LSST_CLASSIFIER
from ml.registry import ModelRegistry
from ml.stamp_classifier import LSST_NAME as LSST_STAMP_CLASSIFIER
from nightjar.runner.ingest import RawInput
from nightjar.store.schema import DETECTIONS, OBJECTS
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.lsst.fink import rows, to_record
from nightjar.surveys.lsst.schemas import LsstSchemas
from nightjar.surveys.lsst.simulate import LsstSimulator
from nightjar.surveys.lsst.wire import frame
from nightjar.surveys.registry import AlertParser
from nightjar.surveys.ztf.schema import ALERT_SCHEMA_V4_02
from nightjar.surveys.ztf.simulate import AlertSimulator
from services.gateway.app import GatewayConfig
from services.gateway.schema import GatewayContext, schema
from tests.conftest import ROOT, as_inputs
from tests.gateway_env import API_KEY, API_USER, Deployment, deployment, gql, live_gateway

pytestmark = pytest.mark.shared

ASSETS = ROOT / "tools" / "graphiql" / "node_modules"
PAIR_SEPARATION = 0.7  # [arcsec] between the ZTF and the LSST object of the pair
ASTEROID = "2001 SB97"  # in Rubin's v10 sample as K01S97B; a ZTF alert is made to see it


def _wire(record: dict[str, Any], schema_id: int = 1000) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, LsstSchemas().get(schema_id).parsed, record)
    return frame(schema_id, buf.getvalue())


def _ztf(record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(ALERT_SCHEMA_V4_02), [record])
    return buf.getvalue()


def _inputs(messages: list[bytes]) -> list[RawInput]:
    return [RawInput(m, AlertSource("file", path=f"test/{i}")) for i, m in enumerate(messages)]


@pytest.fixture(scope="module")
async def dep(mongo_uri: str, shared_data: Path,
              tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    folder = shared_data / "lsst" / "fink"
    v10 = rows(folder / "rubin_sample_data_10_0.parquet")
    schema = LsstSchemas().get(1000).parsed
    async with deployment(mongo_uri, tmp_path_factory.mktemp("gateway-lsst")) as d:
        await d.ingest(_inputs([_wire(to_record(r, schema)) for r in v10]))
        await d.ingest(_inputs([_wire(to_record(r, LsstSchemas().get(701).parsed), 701)
                                for r in rows(folder / "or4_lsst7.1.parquet")]))
        await d.ingest(_inputs([raw for _, _, raw in LsstSimulator(seed=5).packets(200)]))
        ztf = list(AlertSimulator(seed=8).packets(150))
        await d.ingest(as_inputs(ztf))
        # a ZTF object and an LSST object 0.7 arcsec apart: two objects, linked
        anchor = AlertParser().parse(ztf[-1][2], AlertSource("file"))[0][0]
        lsst = to_record(next(r for r in v10 if r["prvDiaSources"]), schema)
        for src in (lsst["diaSource"], *lsst["prvDiaSources"]):
            src["ra"] = anchor.detection["ra"]
            src["dec"] = anchor.detection["dec"] + PAIR_SEPARATION / 3600
        lsst["diaSource"]["diaObjectId"] = lsst["diaObject"]["diaObjectId"] = 9 * 10**17 + 1
        for src in (lsst["diaSource"], *lsst["prvDiaSources"]):  # new sources of a new object
            src["diaObjectId"] = 9 * 10**17 + 1
            src["diaSourceId"] += 7
        lsst["diaSourceId"] = lsst["diaSource"]["diaSourceId"]
        await d.ingest(_inputs([_wire(lsst)]))
        # a ZTF alert of the minor planet Rubin's sample calls K01S97B
        sim = AlertSimulator(seed=3)
        obj, index = next((o, i) for o, i in sim.events(400) if o.kind == "asteroid")
        record = sim.alert(obj, index)
        record["candidate"]["ssnamenr"] = "2001SB97"  # ZTF's unspaced form
        await d.ingest(_inputs([_ztf(record)]))
        d.pair = (anchor.oid, "900000000000000001")  # type: ignore[attr-defined]
        d.real_lsst = {str(r["diaSource"].get("diaObjectId"))  # type: ignore[attr-defined]
                       for r in [*v10, *rows(folder / "or4_lsst7.1.parquet")]}
        d.asteroid_candid = record["candid"]  # type: ignore[attr-defined]
        yield d


@pytest.fixture(scope="module")
async def url(dep: Deployment) -> AsyncIterator[str]:
    config = GatewayConfig(api_keys={API_KEY: API_USER}, rate_anonymous=1e6,
                           graphiql_assets=ASSETS)
    async with live_gateway(dep, config) as (base, _):
        yield base


@pytest.fixture
async def client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        yield c


OBJECTS_BY_SURVEY = """query($survey: Survey, $after: String) {
  objects(filter: {survey: $survey}, first: 100, after: $after) {
    totalCount nodes { oid survey } pageInfo { hasNextPage endCursor } } }"""


async def _all(client: httpx.AsyncClient, survey: str | None) -> tuple[list[dict], int]:
    found, after, total = [], None, -1
    while True:
        body = await gql(client, OBJECTS_BY_SURVEY, survey=survey, after=after)
        assert not body.get("errors"), body
        page = body["data"]["objects"]
        total = page["totalCount"] if total < 0 else total
        found += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return found, total
        after = page["pageInfo"]["endCursor"]


async def test_objects_of_each_survey_and_both(client: httpx.AsyncClient,
                                               dep: Deployment) -> None:
    stored = {d["_id"]: d["survey"] async for d in dep.store.db[OBJECTS].find({})}
    for survey in ("LSST", "ZTF"):
        found, total = await _all(client, survey)
        expected = {oid for oid, s in stored.items() if s == survey}
        assert {n["oid"] for n in found} == expected and total == len(expected)
        assert {n["survey"] for n in found} == {survey}
    both, total = await _all(client, None)
    assert len(both) == total == len(stored)
    assert {"ZTF", "LSST"} == set(stored.values())


OBJECT = """query($oid: String!) { object(oid: $oid) {
  oid survey ndet diaObject
  magstats { band fid ndet magmean magmeanCorr }
  counterparts { oid survey separation object { survey ndet } }
  detections { candid survey band fid mjd magpsf sigmapsf isdiffpos psfFlux psfFluxErr
               scienceFlux magpsfCorr corrected reliability withdrawn midpointMjdTai }
  nonDetections { survey band derived diffmaglim }
  forcedPhotometry { pid survey band psfFlux mag }
  probabilities { classifierName classifierVersion }
  stamps { candid kinds url(kind: "science", format: "fits") avroUrl }
  downloads { lightcurveCsv lightcurveVotable lightcurvePng findingChart } } }"""


async def test_an_lsst_object_with_exact_ids_fluxes_and_no_ztf_model_applied(
        client: httpx.AsyncClient, dep: Deployment) -> None:
    doc = await dep.store.db[OBJECTS].find_one({"survey": "LSST", "ndet": {"$gte": 10}})
    body = await gql(client, OBJECT, oid=doc["_id"])
    assert not body.get("errors"), body
    obj = body["data"]["object"]
    assert obj["survey"] == "LSST" and obj["ndet"] == doc["ndet"]
    assert obj["diaObject"]["diaObjectId"] == int(doc["_id"])  # Rubin's summary, as it came
    stored = {d["candid"]: d async for d in dep.store.db[DETECTIONS].find({"oid": doc["_id"]})}
    assert {int(d["candid"]) for d in obj["detections"]} == set(stored)
    for det in obj["detections"]:
        assert isinstance(det["candid"], str) and len(det["candid"]) >= 18  # > 2**53, exact
        mine = stored[int(det["candid"])]
        assert det["survey"] == "LSST" and det["band"] == mine["band"]
        assert det["psfFlux"] == pytest.approx(mine["psfFlux"])
        assert det["magpsf"] == pytest.approx(31.4 - 2.5 * __import__("math").log10(
            abs(mine["psfFlux"])), abs=1e-6)
        assert det["midpointMjdTai"] == mine["midpointMjdTai"]
    # an LSST object is classified by the LSST models only, never by the ZTF ones
    registry = ModelRegistry.default(dep.home)
    lsst_version = registry.get(LSST_CLASSIFIER).version
    stamp_version = registry.get(LSST_STAMP_CLASSIFIER).version
    lc_versions = {p["classifierVersion"] for p in obj["probabilities"]
                   if p["classifierName"] != "stamp_classifier"}
    stamp_versions = {p["classifierVersion"] for p in obj["probabilities"]
                      if p["classifierName"] == "stamp_classifier"}
    assert lc_versions <= {lsst_version} and stamp_versions == {stamp_version}
    assert registry.get("stamp_classifier").card.get("survey", "ZTF") == "ZTF"
    assert obj["stamps"] and all(s["kinds"] == ["science", "template", "difference"]
                                 for s in obj["stamps"])
    classifiers = await gql(client, "{ classifiers { name survey model versions } }")
    listed = classifiers["data"]["classifiers"]
    assert {c["survey"] for c in listed} == {"ZTF", "LSST"}
    lsst_rows = [c for c in listed if c["survey"] == "LSST"]
    assert {c["name"] for c in lsst_rows} == {
        "lc_classifier", "lc_classifier_top", "lc_classifier_transient",
        "lc_classifier_stochastic", "lc_classifier_periodic", "stamp_classifier"}
    assert all(c["model"] == LSST_CLASSIFIER and c["versions"][0] == lsst_version
               for c in lsst_rows if c["name"] != "stamp_classifier")
    assert [(c["model"], c["versions"][0]) for c in lsst_rows
            if c["name"] == "stamp_classifier"] == [(LSST_STAMP_CLASSIFIER, stamp_version)]


async def test_each_survey_is_classified_by_its_own_model(dep: Deployment) -> None:
    """LSST objects with 6 detections in one of their six bands carry the LSST model's
    rows, six-band features and the LSST anomaly score; ZTF objects the ZTF models'; the
    real Rubin and rehearsal objects are among the classified."""
    registry = ModelRegistry.default(dep.home)
    versions = {"LSST": registry.get(LSST_CLASSIFIER).version,
                "ZTF": registry.get("lc_classifier").version}
    assert versions["LSST"] != versions["ZTF"]
    surveys = {d["_id"]: d["survey"] async for d in dep.store.db[OBJECTS].find(
        {}, {"survey": 1})}
    per_band: dict[str, dict[int, int]] = {}
    async for det in dep.store.db[DETECTIONS].find({}, {"oid": 1, "fid": 1, "withdrawn": 1}):
        if not det.get("withdrawn"):
            bands = per_band.setdefault(det["oid"], {})
            bands[det["fid"]] = bands.get(det["fid"], 0) + 1
    rows: dict[str, set[str]] = {}
    async for row in dep.store.db["probabilities"].find(
            {"classifier_name": "lc_classifier_top"}, {"oid": 1, "classifier_version": 1}):
        rows.setdefault(row["oid"], set()).add(row["classifier_version"])
    for oid, found in rows.items():
        assert found == {versions[surveys[oid]]}, (oid, surveys[oid], found)
    lsst_enough = {oid for oid, bands in per_band.items()
                   if surveys.get(oid) == "LSST" and max(bands.values()) >= 6}
    lsst_classified = {oid for oid in rows if surveys[oid] == "LSST"}
    assert lsst_classified == lsst_enough and len(lsst_classified) >= 10
    real = lsst_classified & dep.real_lsst  # type: ignore[attr-defined]
    assert real, "real Rubin / rehearsal objects with 6 detections in a band are classified"
    features = await dep.store.features(sorted(lsst_classified)[0])
    assert features is not None and "Mean_u" in features["values"]
    assert "Mean_1" not in features["values"]  # ZTF's band suffixes never on LSST
    # each survey's objects are scored by its own anomaly model
    names = {d["oid"]: d["model_name"] async for d in dep.store.db["anomaly"].find(
        {}, {"oid": 1, "model_name": 1})}
    assert {o for o, n in names.items() if n == "lsst_anomaly"} == lsst_classified
    assert all(surveys[o] == "ZTF" for o, n in names.items() if n == "ztf_anomaly")
    lsst_doc = await dep.store.db[OBJECTS].find_one({"_id": sorted(lsst_classified)[0]})
    assert 0.0 <= lsst_doc["anomaly"]["score"] <= 1.0
    assert lsst_doc["anomaly"]["model_name"] == "lsst_anomaly"

    # an LSST object's forecast: its class's model, in its commonest band
    oid = max(lsst_classified, key=lambda o: max(per_band[o].values()))
    fid = max(per_band[oid], key=lambda f: per_band[oid][f])
    band = {6: "u", 1: "g", 2: "r", 3: "i", 4: "z", 5: "y"}[fid]
    last = max([d["mjd"] async for d in dep.store.db[DETECTIONS].find(
        {"oid": oid, "fid": fid}, {"mjd": 1})])
    result = await schema.execute(
        """query($oid: String!, $band: String!, $mjd: [Float!]!) { object(oid: $oid) {
             forecast(band: $band, mjd: $mjd) { model branch reason points { valid } } } }""",
        variable_values={"oid": oid, "band": band, "mjd": [last + 1.0]},
        context_value=GatewayContext(dep.store))
    assert not result.errors, result.errors
    assert result.data is not None
    forecast = result.data["object"]["forecast"]
    assert forecast["branch"] in {"Transient", "Stochastic", "Periodic"}
    assert forecast["model"] == {"Transient": "spm", "Stochastic": "drw",
                                 "Periodic": "harmonic"}[forecast["branch"]]


async def test_a_ztf_and_an_lsst_object_are_counterparts_with_a_combined_light_curve(
        client: httpx.AsyncClient, dep: Deployment) -> None:
    ztf_oid, lsst_oid = dep.pair  # type: ignore[attr-defined]
    body = await gql(client, """query($oid: String!) { object(oid: $oid) {
      survey counterparts { oid survey separation object { survey } }
      own: lightcurve { survey }
      both: lightcurve(surveys: [ZTF, LSST]) { survey oid band kind mag flux fluxErr mjd }
      other: lightcurve(surveys: [LSST]) { survey } } }""", oid=ztf_oid)
    assert not body.get("errors"), body
    obj = body["data"]["object"]
    (link,) = obj["counterparts"]
    assert (link["oid"], link["survey"], link["object"]["survey"]) == (lsst_oid, "LSST", "LSST")
    from astropy.coordinates import SkyCoord

    a, b = [await dep.store.db[OBJECTS].find_one({"_id": oid}) for oid in (ztf_oid, lsst_oid)]
    expected = SkyCoord(a["meanra"], a["meandec"], unit="deg").separation(
        SkyCoord(b["meanra"], b["meandec"], unit="deg")).arcsec  # between mean positions
    assert link["separation"] == pytest.approx(expected, abs=1e-6) and expected < 1.5
    assert {p["survey"] for p in obj["own"]} == {"ZTF"}
    assert {p["survey"] for p in obj["other"]} == {"LSST"}
    both = obj["both"]
    assert {(p["survey"], p["oid"]) for p in both} == {("ZTF", ztf_oid), ("LSST", lsst_oid)}
    assert len(both) == len(obj["own"]) + len(obj["other"])
    assert [p["mjd"] for p in both] == sorted(p["mjd"] for p in both)
    for p in both:  # magnitude and flux agree: F = 10**((31.4 - m)/2.5) [nJy]
        if p["kind"] == "difference":
            assert abs(p["flux"]) == pytest.approx(10 ** ((31.4 - p["mag"]) / 2.5), rel=1e-4)
    back = await gql(client, "query($oid: String!) { object(oid: $oid) { counterparts "
                             "{ oid survey } } }", oid=lsst_oid)
    assert back["data"]["object"]["counterparts"] == [{"oid": ztf_oid, "survey": "ZTF"}]
    csv = await client.get(f"/download/lightcurve/{ztf_oid}.csv", params={"surveys": "ZTF,LSST"})
    header, *lines = csv.text.strip().splitlines()
    assert header.split(",")[:2] == ["oid", "survey"] and "flux" in header.split(",")
    assert {line.split(",")[1] for line in lines} == {"ZTF", "LSST"}


async def test_a_minor_planet_seen_by_both_surveys(client: httpx.AsyncClient,
                                                   dep: Deployment) -> None:
    query = """query($d: String!) { solarSystemObject(designation: $d) {
      designation designations ssObjectId orbit
      detections { survey candid oid designation band magpsf mjd } } }"""
    answers = []
    for typed in ("K01S97B", "2001 SB97", "2001SB97"):
        body = await gql(client, query, d=typed)
        assert not body.get("errors"), body
        answers.append(body["data"]["solarSystemObject"])
    assert answers[0] == answers[1] == answers[2]
    found = answers[0]
    assert found["designation"] == ASTEROID and found["ssObjectId"]
    assert found["orbit"]["packed_primary_provisional_designation"] == "K01S97B"
    surveys = {d["survey"]: d for d in found["detections"]}
    assert set(surveys) == {"ZTF", "LSST"}
    assert int(surveys["ZTF"]["candid"]) == dep.asteroid_candid  # type: ignore[attr-defined]
    assert surveys["ZTF"]["oid"] and surveys["LSST"]["oid"] is None  # no LSST object made
    none = await gql(client, query, d="1999 XX999")
    assert none["data"]["solarSystemObject"] is None
    bad = await gql(client, query, d="   ")
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_downloads_and_finding_chart_of_an_lsst_object(client: httpx.AsyncClient,
                                                             dep: Deployment) -> None:
    import pypdfium2

    doc = await dep.store.db[OBJECTS].find_one({"survey": "LSST", "ndet": {"$gte": 3}})
    oid = doc["_id"]
    body = await gql(client, OBJECT, oid=oid)
    obj = body["data"]["object"]
    stamp = obj["stamps"][-1]
    fits_bytes = (await client.get(stamp["url"])).content
    key = f"LSST:{stamp['candid']}"
    assert fits_bytes == dep.archive.get_cutout(key, "science")  # Rubin's MEF, as it came
    with fits.open(io.BytesIO(fits_bytes)) as hdus:
        assert hdus[0].header["BUNIT"] == "nJy" and len(hdus) == 3
    png = await client.get(stamp["url"].replace(".fits", ".png"))
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    avro = await client.get(stamp["avroUrl"])
    records = list(fastavro.reader(io.BytesIO(avro.content)))
    assert records[0]["diaSourceId"] == int(stamp["candid"])
    for link in ("lightcurveCsv", "lightcurveVotable", "lightcurvePng"):
        answer = await client.get(obj["downloads"][link])
        assert answer.status_code == 200 and answer.content
    csv = (await client.get(obj["downloads"]["lightcurveCsv"])).text
    assert ",LSST," in csv
    pdf = await client.get(obj["downloads"]["findingChart"])
    assert pdf.status_code == 200, pdf.text
    document = pypdfium2.PdfDocument(pdf.content)
    text = document[0].get_textpage().get_text_range()
    assert f"LSST {oid}" in text and "LSST template cutout" in text
    assert "orientation from the image's WCS" in text  # CTYPE-less cutouts read as TAN


async def test_standard_introspection_is_answered(client: httpx.AsyncClient,
                                                  url: str) -> None:
    from gql import Client
    from gql.transport.httpx import HTTPXAsyncTransport
    from graphql import build_client_schema, get_introspection_query

    body = await gql(client, get_introspection_query(descriptions=True))
    assert not body.get("errors"), body
    schema = build_client_schema(body["data"])
    assert "solarSystemObject" in schema.query_type.fields
    async with Client(transport=HTTPXAsyncTransport(url=f"{url}/graphql"),
                      fetch_schema_from_transport=True) as session:
        assert session.client.schema is not None
        assert "Survey" in session.client.schema.type_map
    # still bounded: twice the standard query costs more than the limit allows, and
    # introspection nested deeper is refused (graphql-core's introspection-depth rule)
    query = get_introspection_query(descriptions=True)
    body_of = query[query.index("__schema"):query.index("fragment")].rstrip().rstrip("}")
    twice = query.replace("query IntrospectionQuery {", "query Twice { again: " + body_of)
    refused = await gql(client, twice)
    assert refused["errors"][0]["extensions"].get("limit") == "cost", refused
    deep = "{ __schema { types { fields { type { fields { type { fields { type { fields " \
           "{ name } } } } } } } } } }"
    assert (await gql(client, deep))["errors"]


async def test_graphiql_loads_from_the_gateway_with_its_integrity_intact(
        client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    assert "unpkg.com" not in page.text and "https://" not in re.sub(
        r"<!--.*?-->", "", page.text, flags=re.S).split("<script>")[0]
    assets = re.findall(r'(?:src|href)="(/graphiql/assets/[^"]+)"\s+integrity="([^"]+)"',
                        page.text)
    assert len(assets) == 7
    for path, integrity in assets:
        answer = await client.get(path)
        assert answer.status_code == 200, path
        digest = base64.b64encode(hashlib.sha384(answer.content).digest()).decode()
        assert integrity == f"sha384-{digest}", path
    escape = await client.get("/graphiql/assets/graphiql@3.8.3/../../../../etc/passwd")
    assert escape.status_code == 404


def test_ztf_cutouts_stay_gzipped_and_lsst_ones_plain(dep: Deployment) -> None:
    ztf = next(dep.archive.root.glob("[0-9a-f][0-9a-f][0-9a-f]/*.science.fits.gz"))
    assert gzip.decompress(ztf.read_bytes())[:6] == b"SIMPLE"
    lsst = next((dep.archive.root / "lsst").rglob("*.science.fits"))
    assert lsst.read_bytes()[:6] == b"SIMPLE"
    assert copy.copy(lsst.name).endswith(".science.fits")


async def test_live_alerts_filtered_by_survey(dep: Deployment) -> None:
    from services.gateway.live import StoreFeed
    from tests.test_gateway_live import ALERTS, Subscriber, subscribed, until

    lsst = list(LsstSimulator(seed=77).packets(40))
    ztf = list(AlertSimulator(seed=78).packets(40))
    lsst_alerts = ALERTS.replace("missed }", "missed survey band psfFlux }")
    async with live_gateway(dep, feed=StoreFeed(dep.store)) as (url, _), \
            Subscriber.connect(url) as client:
        await client.subscribe("lsst", lsst_alerts, filter={"survey": "LSST"})
        await client.subscribe("ztf", lsst_alerts, filter={"survey": "ZTF"})
        await client.subscribe("lsst_i", lsst_alerts, filter={"survey": "LSST", "band": "i"})
        client.start_reading()
        await subscribed(url, 3)
        await dep.ingest(_inputs([raw for _, _, raw in lsst]) + as_inputs(ztf), batch_size=30)
        solar = sum(1 for _, _, raw in lsst
                    if not AlertParser().parse(raw, AlertSource("x"))[0][0].has_object)
        await until(lambda: len(client.received["lsst"]) >= len(lsst) - solar
                    and len(client.received["ztf"]) >= len(ztf), 60, "both surveys' alerts")
    got = client.received
    assert {int(m["candid"]) for m in got["lsst"]} == {
        c for _, c, raw in lsst if AlertParser().parse(raw, AlertSource("x"))[0][0].has_object}
    assert {m["survey"] for m in got["lsst"]} == {"LSST"}
    assert {int(m["candid"]) for m in got["ztf"]} == {c for _, c, _ in ztf}
    assert all(m["band"] == "i" for m in got["lsst_i"])
    assert {m["candid"] for m in got["lsst_i"]} == {
        m["candid"] for m in got["lsst"] if m["band"] == "i"}
    assert all(isinstance(m["psfFlux"], float) for m in got["lsst"])
