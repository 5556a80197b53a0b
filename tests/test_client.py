"""The Python client (client/, nightjar-client) against a live gateway serving the real
alerts: every facade method, the formats, automatic pagination, the exceptions, retries,
subscriptions fed by a separate ingest process, the generated layer's drift check, and
installing the client alone.

The facade's methods block; the gateway runs in the test's event loop, so the tests call
them from a worker thread (``call``).
"""

from __future__ import annotations

import asyncio
import gzip
import io
import math
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nightjar_client
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.io.votable import parse_single_table
from nightjar_client import APIError, Nightjar, ObjectNotFoundError, ParseError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nightjar.context.catalogs import import_catalog
from nightjar.context.tns import SNAPSHOT, parse_public_objects
from nightjar.processes import free_port
from nightjar.runner.ingest import RawInput, expand_paths, iter_inputs
from nightjar.sky import separation_deg
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.ztf.simulate import AlertSimulator
from services.gateway.app import GatewayConfig
from tests.asgi import serve_asgi
from tests.conftest import ROOT, as_inputs
from tests.fake_tns import public_objects_zip
from tests.gateway_env import API_KEY, API_USER, Deployment, deployment, live_gateway
from tests.test_gateway_live import metric
from tools import gen_client

pytestmark = pytest.mark.shared
T = TypeVar("T")

# S And (SN 1885 in M31), the first row of GCVS, type SNI
S_AND = (10.6795833, 41.2680556)


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(function, *args, **kwargs)


@pytest.fixture(scope="module")
async def dep(mongo_uri: str, shared_data: Path,
              tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    home = tmp_path_factory.mktemp("client")
    import_catalog(shared_data / "catalogs" / "gcvs.parquet", "gcvs", home / "catalogs")
    async with deployment(mongo_uri, home) as d:
        await d.ingest(list(iter_inputs(expand_paths([shared_data / "ztf" / "alerts"]))))
        ztf = list(AlertSimulator(seed=33).packets(300))
        await d.ingest(as_inputs(ztf))
        await d.ingest(_lsst_inputs(shared_data, ztf))
        yield d


def _lsst_inputs(shared_data: Path, ztf: list[tuple[str, int, bytes]]) -> list[RawInput]:
    """Simulated LSST alerts, Rubin's real v10 sample (with three asteroids) and one LSST
    object at the position of a simulated ZTF object (its counterpart)."""
    from nightjar.surveys.lsst.fink import rows, wire_messages
    from nightjar.surveys.lsst.simulate import LsstSimulator
    from nightjar.surveys.registry import AlertParser

    packets = [raw for _, _, raw in LsstSimulator(seed=34).packets(150)]
    packets += wire_messages(rows(shared_data / "lsst" / "fink" /
                                  "rubin_sample_data_10_0.parquet"), 1000)
    anchor = AlertParser().parse(ztf[-1][2], AlertSource("file"))[0][0]
    sim = LsstSimulator(seed=35)
    twin = sim.make_object(sim.field_visits(61000.0, 61040.0),
                           (anchor.detection["ra"], anchor.detection["dec"]), kind="periodic")
    packets += [sim.encode(sim.alert(twin, i)) for i, e in enumerate(twin.epochs)
                if e.detected]
    return [RawInput(raw, AlertSource("file", path=f"lsst/{i}"))
            for i, raw in enumerate(packets)]


@pytest.fixture(scope="module")
async def url(dep: Deployment) -> AsyncIterator[str]:
    async with live_gateway(dep) as (base, _):
        yield base


@pytest.fixture(scope="module")
def nj(url: str) -> Any:
    client = Nightjar(url, timeout=60)
    yield client
    client.close()


async def real_object(dep: Deployment) -> str:
    """A real ZTF object with detections, upper limits and light-curve features."""
    best, most = None, -1
    async for doc in dep.store.db["features"].find({}, {"_id": 1}):
        n = await dep.store.count("non_detections", {"oid": doc["_id"]})
        if doc["_id"].startswith("ZTF") and n > most:
            best, most = doc["_id"], n
    assert best is not None and most > 0
    return best


async def real_objects_with_stamps(dep: Deployment) -> list[str]:
    return sorted({d["oid"] async for d in dep.store.db["detections"].find(
        {"has_stamp": True}, {"oid": 1}) if d["oid"].startswith("ZTF1")})


# ---------------------------------------------------------------------- query_objects

async def test_both_surveys_through_the_same_methods(dep: Deployment, nj: Nightjar) -> None:
    lsst = {d["_id"] async for d in dep.store.db["objects"].find({"survey": "LSST"})}
    frame = await call(nj.query_objects, survey="lsst", max_results=10_000, page_size=200)
    assert set(frame["oid"]) == lsst and set(frame["survey"]) == {"LSST"}
    ztf = await call(nj.query_objects, survey="ztf", max_results=10_000, page_size=200)
    assert not set(ztf["oid"]) & lsst
    oid = max(lsst, key=len)
    curve = await call(nj.query_lightcurve, oid, format="pandas")
    assert set(curve["survey"]) == {"LSST"} and set(curve["band"]) <= set("ugrizy")
    diff = curve[curve["kind"] == "DIFFERENCE"]
    assert len(diff) and ((diff["flux"].abs() - 10 ** ((31.4 - diff["mag"]) / 2.5)).abs()
                          < 1e-3 * diff["flux"].abs()).all()
    json_curve = await call(nj.query_lightcurve, oid)
    assert {d["survey"] for d in json_curve["detections"]} == {"LSST"}
    assert all(isinstance(d["psf_flux"], float) for d in json_curve["detections"])
    # the simulated LSST object placed on a ZTF object: counterparts, combined curve
    (twin,) = [c for o in lsst for c in await call(nj.query_counterparts, o)]
    assert twin["survey"] == "ZTF" and twin["separation"] < 1.5
    (link,) = await call(nj.query_counterparts, twin["oid"])
    combined = await call(nj.query_lightcurve, twin["oid"], format="pandas",
                          surveys=["ztf", "lsst"])
    assert set(combined["survey"]) == {"ZTF", "LSST"}
    assert set(combined["oid"]) == {twin["oid"], link["oid"]}
    asteroid = await call(nj.query_solar_system, "2001 SB97")
    assert asteroid["designation"] == "2001 SB97"
    assert [d["survey"] for d in asteroid["detections"]] == ["LSST"]
    with pytest.raises(ObjectNotFoundError):
        await call(nj.query_solar_system, "2099 ZZ999")
    with pytest.raises(ParseError):
        await call(nj.query_objects, survey="gaia")


async def test_query_objects_pages_through_every_match_in_order(dep: Deployment,
                                                                 nj: Nightjar) -> None:
    rows = {(r["oid"], r["probability"]) async for r in dep.store.db["probabilities"].find(
        {"classifier_name": "stamp_classifier", "class_name": "VS", "ranking": 1})}
    assert len(rows) > 15
    frame = await call(nj.query_objects, classifier="stamp_classifier", class_name="VS",
                       order_by="probability", order_mode="DESC", page_size=7)
    # more than two pages of 7, each object once, exactly those the store holds
    assert len(frame) == len(rows) and frame.oid.is_unique
    assert set(zip(frame.oid, frame.probability, strict=True)) == rows
    assert list(frame.probability) == sorted(frame.probability, reverse=True)
    assert set(frame["class"]) == {"VS"} and set(frame.ranking) == {1}
    assert {"oid", "ndet", "firstmjd", "meanra", "meandec", "g_r_mean_corr",
            "classifier_version"} <= set(frame.columns)
    # the second page alone, and max_results stopping early with a warning
    second = await call(nj.query_objects, classifier="stamp_classifier", class_name="VS",
                        order_by="probability", page_size=7, page=2)
    assert list(second.oid) == list(frame.oid[7:14])
    with pytest.warns(UserWarning, match="max_results=10"):
        first10 = await call(nj.query_objects, classifier="stamp_classifier",
                             class_name="VS", order_by="probability", page_size=4,
                             max_results=10)
    assert list(first10.oid) == list(frame.oid[:10])
    assert await call(nj.count_objects, classifier="stamp_classifier",
                      class_name="VS") == len(rows)


async def test_query_objects_filters_match_the_store(dep: Deployment, nj: Nightjar) -> None:
    objects = [d async for d in dep.store.db["objects"].find({})]
    want = {d["_id"] for d in objects if 3 <= d["ndet"] <= 10 and d["firstmjd"] >= 58800}
    frame = await call(nj.query_objects, ndet=[3, 10], firstmjd=[58800, None],
                       max_results=5000, page_size=100)
    assert set(frame.oid) == want and list(frame.oid) == sorted(want)  # oid order
    # a cone: radius in arcsec, against the exact separations
    centre = next(d for d in objects if d["_id"].startswith("ZTF"))
    ra, dec = centre["meanra"], centre["meandec"]
    inside = {d["_id"] for d in objects
              if separation_deg(ra, dec, d["meanra"], d["meandec"]) * 3600 <= 7200}
    cone = await call(nj.query_objects, ra=ra, dec=dec, radius=7200, order_by="ndet",
                      order_mode="desc", format="json")
    assert {r["oid"] for r in cone} == inside and centre["_id"] in inside
    assert [r["ndet"] for r in cone] == sorted((r["ndet"] for r in cone), reverse=True)
    by_oid = await call(nj.query_objects, oid=[centre["_id"], "ZTF00nothere"],
                        format="json")
    assert [r["oid"] for r in by_oid] == [centre["_id"]]


async def test_output_formats_carry_the_same_rows(nj: Nightjar) -> None:
    filters = {"classifier": "stamp_classifier", "class_name": "SN", "order_by": "oid",
               "max_results": 30}
    rows = await call(nj.query_objects, format="json", **filters)
    frame = await call(nj.query_objects, format="pandas", index="oid", sort="ndet",
                       **filters)
    assert rows and frame.index.name == "oid" and list(frame.ndet) == sorted(frame.ndet)
    assert set(frame.index) == {r["oid"] for r in rows}
    text = await call(nj.query_objects, format="csv", **filters)
    assert list(pd.read_csv(io.StringIO(text)).oid) == [r["oid"] for r in rows]
    table = await call(nj.query_objects, format="votable", **filters)
    written = io.BytesIO()
    table.write(written, format="votable")
    parsed = parse_single_table(io.BytesIO(written.getvalue())).to_table()
    assert list(parsed["oid"]) == [r["oid"] for r in rows]
    assert str(parsed["meanra"].unit) == "deg" and str(parsed["sigmara"].unit) == "arcsec"
    assert np.allclose(parsed["probability"], [r["probability"] for r in rows])


# ---------------------------------------------------------------------- one object

async def test_object_methods_return_what_the_store_holds(dep: Deployment,
                                                          nj: Nightjar) -> None:
    oid = await real_object(dep)
    stored = await dep.store.get_object(oid)
    obj = await call(nj.query_object, oid)
    assert obj["oid"] == oid and obj["ndet"] == stored["ndet"]
    assert math.isclose(obj["meanra"], stored["meanra"])
    one_row = await call(nj.query_object, oid, format="pandas")
    assert list(one_row.oid) == [oid]

    detections = await dep.store.light_curve("detections", oid)
    frame = await call(nj.query_detections, oid, format="pandas", sort="mjd")
    # 19-digit candids stay exact (a float column would round them)
    assert sorted(frame.candid.tolist()) == sorted(d["_id"] for d in detections)
    assert frame.candid.dtype == "Int64"
    assert np.allclose(frame.magpsf, [d["magpsf"] for d in detections])
    upper = await dep.store.light_curve("non_detections", oid)
    nondet = await call(nj.query_non_detections, oid)
    assert [r["diffmaglim"] for r in nondet] == [d["diffmaglim"] for d in upper]
    forced = await dep.store.light_curve("forced_photometry", oid)
    assert len(await call(nj.query_forced_photometry, oid)) == len(forced)

    curve = await call(nj.query_lightcurve, oid)
    assert (len(curve["detections"]), len(curve["non_detections"])) == (
        len(detections), len(upper))
    points = await call(nj.query_lightcurve, oid, format="pandas")
    counts = points.kind.value_counts().to_dict()
    assert counts["DIFFERENCE"] == len(detections)
    assert counts["UPPER_LIMIT"] == len(upper)
    assert counts.get("CORRECTED", 0) == sum(d.get("magpsf_corr") is not None
                                             for d in detections)
    assert list(points.mjd) == sorted(points.mjd)

    magstats = await call(nj.query_magstats, oid, format="pandas", index="fid")
    for band in stored["magstats"]:
        assert magstats.loc[band["fid"], "ndet"] == band["ndet"]

    probabilities = await dep.store.probabilities(oid)
    got = await call(nj.query_probabilities, oid)
    assert {(r["classifier_name"], r["class_name"], r["probability"]) for r in got} == {
        (p["classifier_name"], p["class_name"], p["probability"]) for p in probabilities}
    top = await call(nj.query_probabilities, oid, classifier="lc_classifier_top",
                     format="pandas")
    assert set(top.classifier_name) == {"lc_classifier_top"} and len(top) == 3

    features = (await dep.store.features(oid))["values"]
    table = await call(nj.query_features, oid, format="pandas", index="name")
    assert set(table.index) == set(features)
    name = next(k for k, v in features.items() if v is not None)
    (feature,) = await call(nj.query_feature, oid, name)
    assert feature == {"name": name, "value": features[name]}

    history = (await dep.store.anomaly_history([oid]))[oid]
    assert history, "a classified object of a default deployment is scored"
    anomaly = await call(nj.query_anomaly, oid)
    assert anomaly is not None
    assert anomaly["score"] == history[-1]["score"] and 0 <= anomaly["score"] <= 1
    assert anomaly["model_name"] == "ztf_anomaly"
    assert [f["name"] for f in anomaly["top_features"]] == [
        f["name"] for f in history[-1]["top_features"]]
    past = await call(nj.query_anomaly_history, oid, format="pandas")
    assert list(past.mjd) == [d["mjd"] for d in history]
    scored = set(await dep.store.db["anomaly"].distinct("oid"))
    objects = [d["_id"] async for d in dep.store.db["objects"].find({}, {"_id": 1})]
    unscored = next(o for o in objects if o not in scored)
    assert await call(nj.query_anomaly, unscored) is None


async def test_forecast_and_surprise_over_http(dep: Deployment, nj: Nightjar) -> None:
    surprised = [d async for d in dep.store.db["objects"].find(
        {"survey": "ZTF"}, {"_id": 1, "surprise": 1}) if d.get("surprise")]
    assert surprised, "classified objects of a default deployment carry a surprise"
    doc = surprised[0]
    got = await call(nj.query_surprise, doc["_id"])
    assert got == {k: doc["surprise"][k] for k in ("value", "mjd", "band", "fid", "model")}
    at = [doc["surprise"]["mjd"] + d for d in (0.5, 3.0, 400.0)]
    table = await call(nj.query_forecast, doc["_id"], doc["surprise"]["band"], at,
                       format="pandas")
    assert list(table.mjd) == at and set(table.model) == {doc["surprise"]["model"]}
    assert table.valid.tolist()[:1] == [True] and not table.valid.iloc[2]
    first = table.iloc[0]
    assert first.lower_95 < first.lower_68 < first.magnitude < first.upper_68 < first.upper_95
    classified = {d["_id"] async for d in dep.store.db["features"].find({}, {"_id": 1})}
    unclassified = next(o for o in [d["_id"] async for d in dep.store.db["objects"].find(
        {"survey": "ZTF"}, {"_id": 1})] if o not in classified)
    rows = await call(nj.query_forecast, unclassified, "g", at)
    assert {r["model"] for r in rows} == {"none"} and not any(r["valid"] for r in rows)
    assert "not classified" in rows[0]["reason"]
    with pytest.raises(ObjectNotFoundError):
        await call(nj.query_forecast, "ZTF00nothere", "g", at)


async def test_unknown_objects_raise_object_not_found(nj: Nightjar) -> None:
    for method in (nj.query_object, nj.query_lightcurve, nj.query_detections,
                   nj.query_non_detections, nj.query_forced_photometry, nj.query_magstats,
                   nj.query_probabilities, nj.query_features, nj.query_anomaly,
                   nj.get_stamps, nj.get_avro):
        with pytest.raises(ObjectNotFoundError, match="ZTF00nothere"):
            await call(method, "ZTF00nothere")
    with pytest.raises(ObjectNotFoundError):
        await call(nj.query_tns, "ZTF00nothere")


# ---------------------------------------------------------------------- classifiers

async def test_classifiers_and_classes(nj: Nightjar) -> None:
    classifiers = await call(nj.query_classifiers)
    by_name = {c["classifier_name"]: c for c in classifiers}
    stamp = by_name["stamp_classifier"]
    assert stamp["classes"] == ["AGN", "SN", "VS", "asteroid", "bogus"]
    assert by_name["lc_classifier_transient"]["parent_class"] == "Transient"
    classes = await call(nj.query_classes, "lc_classifier",
                         by_name["lc_classifier"]["classifier_version"])
    assert len(classes) == 15 and "SNIa" in classes
    with pytest.raises(ObjectNotFoundError):
        await call(nj.query_classes, "stamp_classifier", "0.0.0-none")


# ---------------------------------------------------------------------- catalogues, TNS

async def test_catalogue_searches_find_a_known_star(nj: Nightjar) -> None:
    cone = await call(nj.catshtm_conesearch, *S_AND, 2.0, catalog_name="gcvs")
    assert list(cone.VarType) == ["SNI"] and cone.distance_arcsec[0] < 2.0
    every = await call(nj.catshtm_conesearch, *S_AND, 2.0)
    assert list(every) == ["gcvs"] and list(every["gcvs"].VarType) == ["SNI"]
    match = await call(nj.catshtm_crossmatch, *S_AND, 2.0, format="json")
    assert [m["catalog"] for m in match["gcvs"]] == ["gcvs"]
    assert await call(nj.catshtm_crossmatch, 200.0, -60.0, 1.0) == {}
    (catalog,) = await call(nj.query_catalogs)
    assert (catalog["name"], catalog["row_count"]) == ("gcvs", 59_099)


async def test_tns_by_object_and_position(dep: Deployment, nj: Nightjar) -> None:
    oid = await real_object(dep)
    obj = await dep.store.get_object(oid)
    (dep.home / "tns").mkdir(exist_ok=True)
    pq.write_table(parse_public_objects(public_objects_zip([{
        "objid": 7, "name_prefix": "SN", "name": "2026clnt", "ra": obj["meanra"],
        "declination": obj["meandec"], "type": "SN Ia", "redshift": 0.03}])),
        dep.home / "tns" / SNAPSHOT)
    (near,) = await call(nj.query_tns, oid)
    assert (near["name"], near["type"]) == ("SN 2026clnt", "SN Ia")
    by_position = await call(nj.query_tns, ra=obj["meanra"], dec=obj["meandec"] + 5 / 3600,
                             radius=10, format="pandas")
    assert list(by_position.name) == ["SN 2026clnt"]
    assert await call(nj.query_tns, ra=obj["meanra"], dec=obj["meandec"] + 5 / 3600) == []


# ---------------------------------------------------------------------- stamps, files

def cutout(packet: dict[str, Any], key: str) -> bytes:
    data: bytes = (packet.get(key) or {}).get("stampData") or b""
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def fits_cutouts(packet: dict[str, Any]) -> bool:
    return cutout(packet, "cutoutScience").startswith(b"SIMPLE")


async def test_stamps_packet_and_finding_chart(dep: Deployment, nj: Nightjar,
                                               tmp_path: Path) -> None:
    oid = await real_object(dep)
    packet = await call(nj.get_avro, oid)
    assert packet["objectId"] == oid
    if not fits_cutouts(packet):
        # a few early alerts in ../shared carry JPEG bytes as cutouts: a clear error
        with pytest.raises(APIError, match="not FITS"):
            await call(nj.get_stamps, oid)
        for oid in await real_objects_with_stamps(dep):
            packet = await call(nj.get_avro, oid)
            if fits_cutouts(packet):
                break
    first = min((d for d in await dep.store.light_curve("detections", oid) if d["has_stamp"]),
                key=lambda d: d["mjd"])
    assert packet["candid"] == first["_id"]  # default: the first alert with cutouts
    hdus = await call(nj.get_stamps, oid)
    assert [h.header["EXTNAME"] for h in hdus] == ["SCIENCE", "TEMPLATE", "DIFFERENCE"]
    for hdu, key in zip(hdus, ("cutoutScience", "cutoutTemplate", "cutoutDifference"),
                        strict=True):
        with fits.open(io.BytesIO(cutout(packet, key))) as original:
            assert np.array_equal(hdu.data, original[0].data, equal_nan=True)
    arrays = await call(nj.get_stamps, oid, first["_id"], "numpy")
    assert [a.shape for a in arrays] == [h.data.shape for h in hdus]
    raw = await call(nj.get_avro, oid, first["_id"], "bytes")
    assert raw[:4] == b"Obj\x01"
    with pytest.raises(ObjectNotFoundError):
        await call(nj.get_stamps, oid, 12345)

    import matplotlib
    matplotlib.use("Agg")
    figure = await call(nj.plot_stamps, oid)
    assert [a.get_title() for a in figure.axes] == ["science", "template", "difference"]

    import pypdfium2
    chart = await call(nj.get_finding_chart, oid, tmp_path / "chart.pdf")
    pdf = pypdfium2.PdfDocument(chart)
    assert len(pdf) >= 1 and oid in pdf[0].get_textpage().get_text_range()


# ---------------------------------------------------------------------- labels, errors

async def test_add_label_needs_the_api_key(dep: Deployment, url: str, nj: Nightjar) -> None:
    oid = await real_object(dep)
    with pytest.raises(APIError) as refused:
        await call(nj.add_label, oid, "POSSIBLE_SN")
    assert refused.value.code == "UNAUTHENTICATED"
    keyed = Nightjar(url, api_key=API_KEY)
    try:
        # a 19-digit candid travels exactly (the BigInt scalar)
        candid = max(d["_id"] for d in await dep.store.light_curve("detections", oid))
        label = await call(keyed.add_label, oid, "POSSIBLE_SN", candid=candid,
                           comment="rising fast")
        assert (label["oid"], label["candid"], label["user"], label["comment"]) == (
            oid, candid, API_USER, "rising fast")
        (stored,) = [lb async for lb in dep.store.db["labels"].find({"oid": oid})]
        assert stored["candid"] == candid
        assert [lb["label"] for lb in await call(nj.query_labels, oid)] == ["POSSIBLE_SN"]
    finally:
        keyed.close()


async def test_a_user_teaches_their_anomaly_ranking(dep: Deployment, url: str,
                                                    nj: Nightjar) -> None:
    with pytest.raises(APIError) as refused:
        await call(nj.query_my_anomalies)
    assert refused.value.code == "UNAUTHENTICATED"
    keyed = Nightjar(url, api_key=API_KEY)
    try:
        before = await call(keyed.query_my_anomalies, 500, format="pandas")
        assert list(before.raw_score) == list(before.shared_raw_score)
        wanted = before.oid.iloc[len(before) // 2]
        with pytest.raises(ParseError):
            await call(keyed.label_anomaly, wanted, "INTERESTING")
        done = await call(keyed.label_anomaly, wanted, "anomaly")
        assert (done["oid"], done["label"], done["user"], done["labels"]) == (
            wanted, "ANOMALY", API_USER, 1)
        assert (done["artefact_votes"], done["flagged_artefact"]) == (0, False)
        after = await call(keyed.query_my_anomalies, 500, format="pandas")
        assert list(after.oid).index(wanted) < list(before.oid).index(wanted)
        (stored,) = await dep.store.anomaly_labels(API_USER)
        assert stored["oid"] == wanted and stored["label"] == "ANOMALY"
    finally:
        keyed.close()


async def test_key_and_url_come_from_the_environment(url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NIGHTJAR_URL", url)
    monkeypatch.setenv("NIGHTJAR_API_KEY", "not-a-key")
    with Nightjar(max_retries=0) as from_env:
        assert from_env.url == url
        with pytest.raises(APIError) as refused:  # the gateway saw the (unknown) key
            await call(from_env.query_classifiers)
    assert refused.value.code == "UNAUTHENTICATED"


async def test_bad_arguments_raise_parse_error(nj: Nightjar) -> None:
    for kwargs in ({"format": "xlsx"}, {"colour": "red"}, {"ra": 10.0, "dec": 5.0},
                   {"ndet": [1, 2, 3]}, {"order_by": "brightness"},
                   {"order_by": "probability"}, {"order_mode": "up"}, {"page_size": 0},
                   {"probability": "high"}):
        with pytest.raises(ParseError):
            await call(nj.query_objects, **kwargs)
    # refused by the gateway, with its code
    with pytest.raises(ParseError) as too_big:
        await call(nj.query_objects, page_size=5000)
    assert too_big.value.code == "QUERY_TOO_COMPLEX"
    with pytest.raises(ParseError):
        await call(nj.get_stamps, "ZTF18abcdefg", format="jpeg")


async def test_unreachable_gateway_is_an_api_error_after_retries() -> None:
    port = free_port()
    with Nightjar(f"http://127.0.0.1:{port}", max_retries=2, backoff=0.05) as nj:
        start = time.monotonic()
        with pytest.raises(APIError) as failed:
            await call(nj.query_classifiers)
    assert failed.value.code == "UNAVAILABLE" and "3 attempts" in failed.value.message
    assert time.monotonic() - start >= 0.05 * 1.5 * 0.5  # two backoff waits


class Flaky:
    """A proxy to the gateway that first answers each path with canned failures."""

    def __init__(self, upstream: str, failures: list[tuple[int, dict[str, str]]]):
        self.upstream, self.failures = upstream, failures
        self.seen: list[tuple[float, int]] = []
        self.agents: set[str] = set()

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.agents.add(request.headers.get("user-agent", ""))
        if self.failures:
            status, headers = self.failures.pop(0)
            self.seen.append((time.monotonic(), status))
            return JSONResponse({"errors": [{"message": "try later", "extensions": {
                "code": "RATE_LIMITED" if status == 429 else "UNAVAILABLE"}}]},
                status_code=status, headers=headers)
        async with httpx.AsyncClient() as http:
            answer = await http.post(f"{self.upstream}/graphql", content=body,
                                     headers={"content-type": "application/json",
                                              **({"x-api-key": request.headers["x-api-key"]}
                                                 if "x-api-key" in request.headers else {})})
        self.seen.append((time.monotonic(), answer.status_code))
        return Response(answer.content, answer.status_code,
                        media_type="application/json")


async def test_transient_errors_are_retried_with_backoff(dep: Deployment, url: str) -> None:
    oid = await real_object(dep)
    flaky = Flaky(url, [(503, {})])
    app = Starlette(routes=[Route("/graphql", flaky.handle, methods=["POST"])])
    async with serve_asgi(app) as proxy:
        with Nightjar(proxy, backoff=0.05) as nj:
            assert (await call(nj.query_object, oid))["oid"] == oid
            assert [s for _, s in flaky.seen] == [503, 200]
            assert flaky.agents == {f"nightjar-client/{nightjar_client.__version__}"}
            # a rate limit's Retry-After is honoured
            flaky.failures, flaky.seen = [(429, {"Retry-After": "1"})], []
            assert (await call(nj.query_object, oid))["oid"] == oid
            (t429, _), (t200, s200) = flaky.seen
            assert s200 == 200 and t200 - t429 >= 1.0
        # a mutation is not repeated after a 503 (it may have been applied)
        flaky.failures, flaky.seen = [(503, {}), (503, {})], []
        with Nightjar(proxy, api_key=API_KEY, backoff=0.05) as keyed, \
                pytest.raises(APIError) as failed:
            await call(keyed.add_label, oid, "BOGUS")
        assert failed.value.code == "UNAVAILABLE" and len(flaky.seen) == 1
        # retries run out
        flaky.failures, flaky.seen = [(503, {})] * 3, []
        with Nightjar(proxy, max_retries=2, backoff=0.05) as nj, \
                pytest.raises(APIError) as exhausted:
            await call(nj.query_object, oid)
        assert exhausted.value.code == "UNAVAILABLE" and len(flaky.seen) == 3


async def rate_limited_answers(url: str) -> float:
    return await metric(url, "nightjar_gateway_errors_total", code="RATE_LIMITED")


async def test_the_gateways_rate_limit_is_waited_out(dep: Deployment) -> None:
    # 60 requests a minute: a burst of 15, then one a second (Retry-After: 1)
    async with live_gateway(dep, GatewayConfig(rate_anonymous=60)) as (url, _):
        with Nightjar(url, max_retries=0) as impatient:
            with pytest.raises(APIError) as limited:
                for _ in range(20):
                    await call(impatient.query_classifiers)
            assert limited.value.code == "RATE_LIMITED"
        refused = await rate_limited_answers(url)
        with Nightjar(url, max_retries=3, backoff=0.05) as patient:
            start = time.monotonic()
            for _ in range(4):  # each waits for the next token
                assert await call(patient.query_classifiers)
        assert time.monotonic() - start >= 2.0
        assert await rate_limited_answers(url) >= refused + 3


# ---------------------------------------------------------------------- subscriptions
# (fed by their own deployments: tests/test_client_live.py)

async def test_a_subscription_gives_up_after_max_reconnects() -> None:
    with Nightjar(f"http://127.0.0.1:{free_port()}", backoff=0.05) as nj:
        stream = nj.subscribe_alerts(max_reconnects=2)
        start = time.monotonic()
        with pytest.raises(APIError) as lost:
            await asyncio.wait_for(anext(stream), 30)
    assert lost.value.code == "UNAVAILABLE" and "after 2 reconnects" in lost.value.message
    assert time.monotonic() - start >= 0.05 * 0.5 + 0.1 * 0.5  # two backoff waits


def test_a_bad_subscription_filter_raises_parse_error() -> None:
    with Nightjar("http://127.0.0.1:1") as nj:  # refused before connecting
        for kwargs in ({"ra": 10.0}, {"probability": "high"}, {"ranking": -1}):
            with pytest.raises(ParseError):
                nj.subscribe_classifications(**kwargs)
        with pytest.raises(ParseError):
            nj.subscribe_alerts(magpsf=[18, 19, 20])


# ---------------------------------------------------------------------- packaging

def test_generated_layer_is_current_and_follows_the_operations(tmp_path: Path) -> None:
    fresh = gen_client.generate(tmp_path / "fresh")
    committed = ROOT / "client" / gen_client.GENERATED
    names = sorted(p.name for p in fresh.iterdir())
    assert names == sorted(p.name for p in committed.iterdir() if p.is_file())
    for name in names:
        assert (fresh / name).read_text() == (committed / name).read_text(), name
    # an edited operation changes the generated code (the check would fail)
    edited = tmp_path / "graphql"
    shutil.copytree(ROOT / "graphql", edited)
    ops = edited / "operations" / "tns.graphql"
    ops.write_text(ops.read_text().replace("redshift ", ""))
    regenerated = gen_client.generate(tmp_path / "edited", graphql=edited) / "tns_search.py"
    assert "redshift" in (committed / "tns_search.py").read_text()
    assert "redshift" not in regenerated.read_text()


async def test_the_client_installs_and_works_alone(url: str, tmp_path: Path) -> None:
    uv = gen_client.uv()
    venv = tmp_path / "venv"
    make = await asyncio.create_subprocess_exec(*uv, "venv", "--quiet", "--python",
                                                sys.executable, str(venv))
    assert await make.wait() == 0
    python = venv / "bin" / "python"
    # `uv pip install` resolves ./client exactly as pip does (its pyproject), faster
    install = await asyncio.create_subprocess_exec(
        *uv, "pip", "install", "--quiet", "--python", str(python), str(ROOT / "client"),
        stderr=asyncio.subprocess.PIPE)
    _, err = await install.communicate()
    assert install.returncode == 0, err.decode()[-2000:]
    script = (
        "import importlib.util, sys\n"
        "from nightjar_client import Nightjar\n"
        "assert importlib.util.find_spec('nightjar') is None, 'server package present'\n"
        "assert importlib.util.find_spec('strawberry') is None\n"
        "nj = Nightjar(sys.argv[1])\n"
        "print(len(nj.query_objects(classifier='stamp_classifier', class_name='SN')))\n")
    run = await asyncio.create_subprocess_exec(
        str(python), "-c", script, url, cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await run.communicate()
    assert run.returncode == 0, err.decode()[-2000:]
    assert int(out) > 0


async def test_the_example_tour_runs(url: str, tmp_path: Path) -> None:
    run = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "client" / "examples" / "tour.py"), "--url", url,
        "--listen", "1", cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await run.communicate()
    assert run.returncode == 0, err.decode()[-3000:]
    text = out.decode()
    assert "SN candidates with P(SN) >= 0.5" in text and "classifications received" in text
    for figure in ("tour-lightcurve.png", "tour-stamps.png"):
        assert (tmp_path / figure).read_bytes().startswith(b"\x89PNG")
