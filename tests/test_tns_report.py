"""Reporting to TNS: the AT report built from real ZTF alerts, checked against the raw
packets (read here with fastavro, not through Nightjar's decoder), and the whole round
trip — vet, review the draft, send with the bot's key, TNS's answer recorded on the
object — through the live gateway against the project's fake TNS (tests/fake_tns.py).
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fastavro
import httpx
import pytest
from astropy.time import Time

from nightjar.context.tns import TnsClient
from nightjar.context.tns_report import ReportConfig, TnsReporter, build_at_report
from nightjar.runner.ingest import expand_paths, iter_inputs
from services.gateway.app import GatewayConfig
from tests.fake_tns import FakeTns, at_report_problems
from tests.gateway_env import API_KEY, API_USER, Deployment, deployment, gql, live_gateway

pytestmark = pytest.mark.shared

BOT_ID, BOT_NAME, BOT_KEY = 4242, "nightjar_test_bot", "bot-secret-key-123"
OTHER_KEY, OTHER_USER = "test-key-bob", "bob"
CONFIG = ReportConfig(reporting_group_id=66, discovery_data_source_id=None,
                      reporter="Nightjar test", instruments={"ZTF": 196},
                      filters={"ZTF": {"g": 110, "r": 111, "i": 112}},
                      exposure_s={"ZTF": 30.0})
DRAFT = """query($oid: String!, $remarks: String) { tnsReportDraft(oid: $oid, remarks: $remarks) {
  ready problems report digest target } }"""
SEND = """mutation($oid: String!, $digest: String!, $remarks: String) {
  sendTnsReport(oid: $oid, digest: $digest, remarks: $remarks) {
    reportId status objname messages user target report } }"""
CHECK = """mutation($id: String!) { checkTnsReport(reportId: $id) { reportId status objname } }"""
REPORTS = """query($oid: String!) { object(oid: $oid) { tnsReports { reportId status objname
  user sent } } }"""
VET = """mutation($oid: String!, $label: String!) {
  addLabel(oid: $oid, label: $label) { label } }"""


def raw_light_curves(shared_data: Path) -> dict[str, dict[str, Any]]:
    """Per object, from the raw packets: positive detections (jd, fid, magpsf) by candid
    and non-detections (jd, fid, diffmaglim)."""
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"det": {}, "nd": set()})
    for item in iter_inputs(expand_paths([shared_data / "ztf" / "alerts"])):
        try:
            records = list(fastavro.reader(io.BytesIO(item.raw)))
        except Exception:  # the bad inputs among them; not this test's business
            continue
        for record in records:
            obj = out[record["objectId"]]
            for c in [record["candidate"], *(record.get("prv_candidates") or [])]:
                if c.get("candid") is None:
                    if c.get("diffmaglim") is not None:
                        obj["nd"].add((c["jd"], c["fid"], c["diffmaglim"]))
                elif c["isdiffpos"] in ("t", "1"):
                    obj["det"][c["candid"]] = (c["jd"], c["fid"], c["magpsf"])
    return dict(out)


@pytest.fixture(scope="module")
def raw(shared_data: Path) -> dict[str, dict[str, Any]]:
    return raw_light_curves(shared_data)


def _pick(raw: dict[str, dict[str, Any]], with_limit: bool) -> str:
    """The object with most positive detections that has (or has no) non-detection
    before its first."""
    def limits_before(o: dict[str, Any]) -> int:
        first = min(jd for jd, _, _ in o["det"].values())
        return sum(1 for jd, _, _ in o["nd"] if jd < first)
    eligible = [(len(o["det"]), oid) for oid, o in raw.items()
                if o["det"] and (limits_before(o) > 0) == with_limit]
    return max(eligible)[1]


@pytest.fixture(scope="module")
async def dep(mongo_uri: str, shared_data: Path,
              tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    async with deployment(mongo_uri, tmp_path_factory.mktemp("tns_report")) as d:
        await d.ingest(list(iter_inputs(expand_paths([shared_data / "ztf" / "alerts"]))))
        yield d


async def _draft_from_store(dep: Deployment, oid: str, labels: list[dict[str, Any]]
                            ) -> Any:
    obj = (await dep.store.objects_by_id([oid]))[oid]
    det = (await dep.store.light_curves("detections", [oid]))[oid]
    nd = (await dep.store.light_curves("non_detections", [oid]))[oid]
    return build_at_report(obj, det, nd, labels, CONFIG)


def _same_time(iso: str, jd: float) -> bool:
    return abs((Time(iso, scale="utc") - Time(jd, format="jd", scale="utc")).sec) < 0.002


async def test_the_report_follows_the_raw_alerts(dep: Deployment,
                                                 raw: dict[str, dict[str, Any]]) -> None:
    vetted = [{"label": "POSSIBLE_SN"}]
    for with_limit in (True, False):
        oid = _pick(raw, with_limit)
        expected = raw[oid]
        draft = await _draft_from_store(dep, oid, vetted)
        assert draft.ready, draft.problems
        report = draft.at_report
        assert at_report_problems(report) == []
        first = min(expected["det"].values())
        assert _same_time(report["discovery_datetime"], first[0])
        points = list(report["photometry"]["photometry_group"].values())
        assert len(points) == len(expected["det"])
        by_time = sorted(expected["det"].values())
        for point, (jd, fid, mag) in zip(points, by_time, strict=True):
            assert _same_time(point["obsdate"], jd)
            assert point["filter_value"] == {1: "110", 2: "111", 3: "112"}[fid]
            assert point["flux"] == pytest.approx(mag, abs=1e-3)
            assert point["flux_units"] == "1" and point["instrument_value"] == "196"
        before = [nd for nd in expected["nd"] if nd[0] < first[0]]
        if with_limit:
            jd, fid, limit = max(before)
            assert _same_time(report["non_detection"]["obsdate"], jd)
            assert report["non_detection"]["limiting_flux"] == pytest.approx(limit, abs=1e-3)
            assert report["non_detection"]["filter_value"] == {1: "110", 2: "111",
                                                               3: "112"}[fid]
        else:
            assert not before and "archival_remarks" in report["non_detection"]
        assert report["internal_name"] == oid and report["reporting_group_id"] == "66"


async def test_a_report_is_refused_until_the_object_is_vetted_and_configured(
        dep: Deployment, raw: dict[str, dict[str, Any]]) -> None:
    oid = _pick(raw, True)
    unvetted = await _draft_from_store(dep, oid, [])
    assert not unvetted.ready and any("not vetted" in p for p in unvetted.problems)
    # the latest SN Hunter verdict decides: POSSIBLE_SN then BOGUS is not vetted
    overruled = await _draft_from_store(dep, oid, [{"label": "POSSIBLE_SN"},
                                                   {"label": "BOGUS"}])
    assert any("not vetted" in p for p in overruled.problems)
    obj = (await dep.store.objects_by_id([oid]))[oid]
    lsst = build_at_report({**obj, "survey": "LSST"}, [], [], [{"label": "POSSIBLE_SN"}],
                           ReportConfig(None, None, "x", {"ZTF": 196}, {}, {}))
    assert any("NIGHTJAR_TNS_INSTRUMENTS" in p for p in lsst.problems)
    assert any("NIGHTJAR_TNS_REPORTING_GROUP_ID" in p for p in lsst.problems)
    assert any("no positive detection" in p for p in lsst.problems)


async def test_vet_review_send_and_the_answer_is_recorded(
        dep: Deployment, raw: dict[str, dict[str, Any]]) -> None:
    oid = _pick(raw, True)
    fake = FakeTns(BOT_ID, BOT_NAME, BOT_KEY, pending_polls=1)
    config = GatewayConfig(api_keys={API_KEY: API_USER, OTHER_KEY: OTHER_USER},
                           rate_anonymous=1e6, tns_reporters=(API_USER,))
    alice, bob = {"x-api-key": API_KEY}, {"x-api-key": OTHER_KEY}
    async with fake.serve() as tns_url, httpx.AsyncClient() as tns_http:
        reporter = TnsReporter(TnsClient(tns_http, BOT_ID, BOT_NAME, BOT_KEY), CONFIG,
                               f"{tns_url}/api", reply_interval_s=0.05)
        async with live_gateway(dep, config, tns=reporter) as (base, _), \
                httpx.AsyncClient(base_url=base, timeout=30) as client:
            draft = (await gql(client, DRAFT, oid=oid))["data"]["tnsReportDraft"]
            assert not draft["ready"] and any("not vetted" in p for p in draft["problems"])
            assert draft["target"] == f"{tns_url}/api"
            await gql(client, VET, headers=alice, oid=oid, label="POSSIBLE_SN")
            draft = (await gql(client, DRAFT, oid=oid, remarks="young SN?"))["data"][
                "tnsReportDraft"]
            assert draft["ready"] and draft["problems"] == []
            at = draft["report"]["at_report"]["0"]
            assert at["remarks"] == "young SN?"

            async def send(headers: dict[str, str] | None, **variables: Any) -> Any:
                return await gql(client, SEND, headers=headers,
                                 **{"oid": oid, "digest": draft["digest"],
                                    "remarks": "young SN?", **variables})

            refused = await send(None)
            assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            refused = await send(bob)
            assert "may not send" in refused["errors"][0]["message"]
            # a draft reviewed with other remarks is not what would be sent
            refused = await send(alice, remarks="something else")
            assert "changed since it was reviewed" in refused["errors"][0]["message"]
            assert fake.reports == {}

            sent = (await send(alice))["data"]["sendTnsReport"]
            # TNS got exactly the reviewed report, and took it
            assert list(fake.reports.values()) == [at]
            assert sent["reportId"] in fake.reports
            assert sent["status"] == "ACCEPTED" and sent["objname"] == "2026aaa"
            assert sent["user"] == API_USER and sent["report"] == draft["report"]
            assert fake.polls[sent["reportId"]] == 2  # one "still processing", one answer
            # recorded on the object
            stored = (await gql(client, REPORTS, oid=oid))["data"]["object"]["tnsReports"]
            assert [(r["reportId"], r["status"], r["objname"]) for r in stored] == [
                (sent["reportId"], "ACCEPTED", "2026aaa")]
            again = await send(alice)
            assert "already reported" in again["errors"][0]["message"]
            assert len(fake.reports) == 1


async def test_a_slow_answer_is_asked_again_and_a_refused_bot_is_reported_plainly(
        dep: Deployment, raw: dict[str, dict[str, Any]]) -> None:
    oid = _pick(raw, False)
    fake = FakeTns(BOT_ID, BOT_NAME, BOT_KEY, pending_polls=100)
    alice = {"x-api-key": API_KEY}
    async with fake.serve() as tns_url, httpx.AsyncClient() as tns_http:
        wrong = TnsReporter(TnsClient(tns_http, BOT_ID, BOT_NAME, "not-the-key"), CONFIG,
                            f"{tns_url}/api")
        async with live_gateway(dep, tns=wrong) as (base, _), \
                httpx.AsyncClient(base_url=base, timeout=30) as client:
            await gql(client, VET, headers=alice, oid=oid, label="POSSIBLE_SN")
            draft = (await gql(client, DRAFT, oid=oid))["data"]["tnsReportDraft"]
            refused = await gql(client, SEND, headers=alice, oid=oid,
                                digest=draft["digest"], remarks=None)
            error = refused["errors"][0]
            assert error["extensions"]["code"] == "UNAVAILABLE"
            assert "refused the bot's credentials" in error["message"]
            assert "not-the-key" not in str(refused) and fake.reports == {}
        reporter = TnsReporter(TnsClient(tns_http, BOT_ID, BOT_NAME, BOT_KEY), CONFIG,
                               f"{tns_url}/api", reply_attempts=2, reply_interval_s=0.05)
        async with live_gateway(dep, tns=reporter) as (base, _), \
                httpx.AsyncClient(base_url=base, timeout=30) as client:
            sent = (await gql(client, SEND, headers=alice, oid=oid, digest=draft["digest"],
                              remarks=None))["data"]["sendTnsReport"]
            assert sent["status"] == "SUBMITTED" and sent["objname"] is None
            assert "archival_remarks" in fake.reports[sent["reportId"]]["non_detection"]
            fake.pending_polls = 0  # TNS has processed it now
            checked = (await gql(client, CHECK, headers=alice, id=sent["reportId"]))[
                "data"]["checkTnsReport"]
            assert checked["status"] == "ACCEPTED" and checked["objname"]
            stored = (await gql(client, REPORTS, oid=oid))["data"]["object"]["tnsReports"]
            assert stored[0]["status"] == "ACCEPTED"
