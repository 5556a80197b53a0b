"""Users' filters: the language, its refusals, evaluation, live versus backfill, safety.

Against the real embedded database with the shipped classifiers, on real ZTF and Rubin
alerts and simulated ones of both surveys.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cel
import pytest
from pymongo import AsyncMongoClient

from nightjar.context.catalogs import import_catalog
from nightjar.core.filters.context import (
    ERROR,
    MATCH,
    NO_MATCH,
    UNDEFINED,
    FilterInputs,
    build_context,
    evaluate,
)
from nightjar.core.filters.language import (
    MAX_COST,
    FilterEnvironment,
    FilterError,
    check,
    compile_filter,
)
from nightjar.runner.filters import (
    OPERATOR,
    ActiveFilter,
    FilterAccessError,
    FilterEngine,
    FilterLimits,
    FilterService,
    classifier_classes,
    fields_read,
    object_filter,
    probability_conditions,
)
from nightjar.runner.ingest import BatchProcessor, RawInput, expand_paths, ingest, iter_inputs
from nightjar.runner.topology import configured_topology
from nightjar.runner.watch import WatchIndexes, WatchService
from nightjar.settings import Settings
from nightjar.sky import Cone
from nightjar.store import NightjarStore
from nightjar.store.archive import LocalArchive
from nightjar.store.filters import ACTIVE, MUTED, FilterStore
from nightjar.store.watch import WatchStore
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.lsst.simulate import LsstSimulator
from nightjar.surveys.ztf.simulate import AlertSimulator
from tests.conftest import ROOT, as_inputs

ENV = FilterEnvironment(classifier_classes(), frozenset({"gcvs", "vsx"}),
                        {"my-hosts": "w1", "bob/galaxies": "w2"}, {"S250206dm": "m1"})


# -- the language ------------------------------------------------------------------------
ISSUE_EXAMPLES = [
    'survey == "LSST" && object.ndet >= 3 && prob("lc_classifier", "SNIa") > 0.6 '
    '&& !xmatch.has("gcvs", 2.0)',
    'anomaly.score > 0.99 && alert.band in ["g", "r"]',
    'in_watchlist("my-hosts") && alert.mag_diff < 19.5',
    'in_watchmap("S250206dm", 0.9)',
]


@pytest.mark.parametrize("expression", ISSUE_EXAMPLES)
def test_the_issues_examples_are_accepted(expression: str) -> None:
    checked = check(expression, ENV)
    assert checked.expression == expression


def test_stage_is_where_everything_read_exists() -> None:
    assert check('alert.band == "g" && object.ndet > 2', ENV).stage == "alert"
    assert check('xmatch.has("gcvs", 1.0) && in_watchlist("my-hosts")', ENV).stage == "alert"
    assert check('prob("stamp_classifier", "SN") > 0.5', ENV).stage == "classification"
    assert check("anomaly.score > 0.9", ENV).stage == "classification"
    assert check("surprise.value > 5.0", ENV).stage == "classification"
    assert check('class_of("lc_classifier") == "SNIa"', ENV).stage == "classification"


def test_watchlist_names_become_ids_for_the_evaluator() -> None:
    checked = check('in_watchlist("bob/galaxies") || in_watchmap("S250206dm", 0.5)', ENV)
    assert checked.references.watchlists == {"w2"}
    assert checked.references.watchmaps == {"m1"}
    assert checked.program_source == 'in_watchlist("w2") || in_watchmap("m1", 0.5)'


REFUSALS = [
    # expression, line, column, words the message must contain
    ("object.nde >= 3", 1, 8, ["no field 'nde'", "ndet"]),
    ('object.ndet >= "3"', 1, 1, ["cannot compare int >= string"]),
    ("alert.band > 3", 1, 1, ["cannot compare string > int"]),
    ('prob("lc", "SNIa") > 0.5', 1, 6, ["no classifier 'lc'", "lc_classifier"]),
    ('prob("lc_classifier", "Foo") > 0.5', 1, 23, ["no class 'Foo'", "SNIa"]),
    ('xmatch.has("simbad", 2.0)', 1, 12, ["no catalogue 'simbad'", "gcvs"]),
    ("object.ndet + 1.5 > 3", 1, 1, ["does not convert", "double("]),
    ("object.band.q.ndet > 1", 1, 13, ["no band 'q'"]),
    ("alert.mag", 1, 1, ["must be a condition (bool), not double"]),
    ('in_watchlist("nobody")', 1, 14, ["no watchlist 'nobody'"]),
    ("object.ndet >= ", 1, 16, ["Syntax error"]),
    ("foo.bar == 1", 1, 1, ["unknown name 'foo'"]),
    ('alert.id.matches("(a)\\\\1")', 1, 18, ["backreferences are not supported"]),
    ('alert.id.matches("(?=x)y")', 1, 18, ["look-around"]),
    ("alert.band.matches(alert.id)", 1, 20, ["string literal"]),
    ("object.ndet >= 3 &&\n  alert.snr > \"5\"", 2, 3, ["cannot compare double > string"]),
    ("[1, 2].map(x, [1].map(y, [1].exists(z, z > 0))).size() > 0", 1, 30,
     ["comprehensions nest at most 2"]),
    ("(" * 30 + "true" + ")" * 30, 1, 1, ["nests 31 levels deep"]),
    ("true && " * 300 + "true", 1, 1, ["characters long"]),
    ('timestamp("2020-01-01T00:00:00Z") == timestamp("2020-01-01T00:00:00Z")', 1, 1,
     ["unknown function timestamp()"]),
    ("object{ndet: 1} == object", 1, 1, ["message construction"]),
    ("in_cone(object.ra, 10.0, 60.0)", 1, 9, ["RA of in_cone() is a number written"]),
    ("in_cone(360.0, 10.0, 60.0)", 1, 9, ["RA is in [0, 360)"]),
    ("in_cone(10.0, -91, 60.0)", 1, 15, ["Dec is in [-90, 90]"]),
    ("in_cone(10.0, 10.0, 40000)", 1, 21, ["radius is in (0, 36000]"]),
]


@pytest.mark.parametrize(("expression", "line", "column", "words"), REFUSALS)
def test_refusals_name_the_position_and_the_reason(expression: str, line: int, column: int,
                                                   words: list[str]) -> None:
    with pytest.raises(FilterError) as caught:
        check(expression, ENV)
    error = caught.value
    assert (error.line, error.column) == (line, column), str(error)
    for word in words:
        assert word in str(error), str(error)
    rendered = error.render().splitlines()
    assert rendered[-1].index("^") - 2 == column - 1  # the caret sits under the column


def test_cost_bound_refuses_comprehensions_over_long_literal_lists() -> None:
    items = ", ".join(str(i) for i in range(200))
    inner = f"[{items}].exists(x, [{items}].exists(y, x == y))"
    with pytest.raises(FilterError, match="evaluation steps"):
        check(inner, ENV)
    assert check(f"[{items}].exists(x, x == object.ndet)", ENV).cost < MAX_COST


# -- evaluation ----------------------------------------------------------------------------
def _inputs(**changes: Any) -> FilterInputs:
    detection = {"candid": 123, "mjd": 60500.5, "band": "g", "ra": 10.0, "dec": -5.0,
                 "psfFlux": 5000.0, "psfFluxErr": 500.0, "magpsf": 22.15, "sigmapsf": 0.11,
                 "isdiffpos": "t", "corrected": False}
    stats = {"oid": "LSST-1", "ndet": 4, "firstmjd": 60490.0, "lastmjd": 60500.5,
             "meanra": 10.0, "meandec": -5.0, "g_r_max": None, "stellar": None,
             "magstats": [{"band": "g", "ndet": 3, "firstmjd": 60490.0, "lastmjd": 60500.5,
                           "magfirst": 23.0, "maglast": 22.15, "magmin": 22.15, "magmax": 23.0,
                           "magmean": 22.5, "magsigma": 0.3, "corrected": False}]}
    values: dict[str, Any] = {"survey": "LSST", "detection": detection, "statistics": stats,
                              "xmatch": {"gcvs": {"source_id": "V1", "distance_arcsec": 1.5,
                                                  "columns": {"VarType": "RRAB"}}}}
    values.update(changes)
    return FilterInputs(**values)


def _run(expression: str, inputs: FilterInputs) -> str:
    return evaluate(compile_filter(check(expression, ENV)), build_context(inputs)).result


def test_evaluation_reads_the_typed_context() -> None:
    inputs = _inputs(classifications={"lc_classifier": {"SNIa": 0.7, "SNII": 0.2}},
                     anomaly={"score": 0.995, "model": "lsst_anomaly 1.0.0"},
                     watchlists=frozenset({"w1"}), watchmaps={"m1": 0.42})
    assert _run(ISSUE_EXAMPLES[0].replace("!xmatch", "xmatch"), inputs) == MATCH
    assert _run(ISSUE_EXAMPLES[0], inputs) == NO_MATCH  # a GCVS star within 2 arcsec
    assert _run('!xmatch.has("gcvs", 1.0)', inputs) == MATCH  # it is 1.5 arcsec away
    assert _run(ISSUE_EXAMPLES[1], inputs) == MATCH
    assert _run(ISSUE_EXAMPLES[2], inputs) == NO_MATCH  # mag_diff 22.15
    assert _run('in_watchlist("my-hosts") && alert.mag_diff < 22.5', inputs) == MATCH
    assert _run('in_watchlist("bob/galaxies")', inputs) == NO_MATCH
    assert _run('in_watchmap("S250206dm", 0.5)', inputs) == MATCH
    assert _run('in_watchmap("S250206dm", 0.4)', inputs) == NO_MATCH
    assert _run("alert.snr > 9.9 && alert.snr < 10.1 && alert.positive", inputs) == MATCH
    assert _run('object.band.g.ndet == 3 && !has(object.band.r)', inputs) == MATCH
    assert _run('xmatch.gcvs.type.startsWith("RR")', inputs) == MATCH
    assert _run('class_of("lc_classifier") == "SNIa" && alert.first == false', inputs) == MATCH
    assert _run("object.age > 10.4 && object.age < 10.6", inputs) == MATCH


def test_in_cone_is_exact_across_ra_zero_and_at_the_poles() -> None:
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    cases = [((359.9995, 0.0), (0.0004, 0.0)), ((120.0, 89.9995), (300.0, 89.9996)),
             ((10.0, -30.0), (10.0005, -30.0003)), ((0.0, 0.0), (180.0, 0.0))]
    for (ra, dec), (cra, cdec) in cases:
        sep = float(SkyCoord(ra * u.deg, dec * u.deg).separation(
            SkyCoord(cra * u.deg, cdec * u.deg)).arcsec)
        for radius, inside in ((sep * 1.001, True), (sep * 0.999, False)):
            if radius > 36_000:
                continue
            expression = f"in_cone({cra!r}, {cdec!r}, {radius!r})"
            inputs = _inputs(detection={**_inputs().detection, "ra": ra, "dec": dec})
            assert _run(expression, inputs) == (MATCH if inside else NO_MATCH), (
                expression, ra, dec)
    checked = check("in_cone(10.5, -3, 120) && object.ndet >= 2", ENV)
    assert checked.references.fields >= {"alert.ra", "alert.dec"}
    assert object_filter(checked, None, None).cone == Cone(10.5, -3.0, 125.0)


def test_absent_values_are_undefined_and_or_absorbs_them() -> None:
    inputs = _inputs()
    assert _run("alert.mag < 19.0", inputs) == UNDEFINED  # no apparent magnitude
    assert _run("!(alert.mag < 19.0)", inputs) == UNDEFINED
    assert _run("!has(alert.mag) || alert.mag < 19.0", inputs) == MATCH
    assert _run('prob("lc_classifier", "SNIa") > 0.5', inputs) == UNDEFINED  # not classified
    assert _run('classified("lc_classifier")', inputs) == NO_MATCH
    assert _run("object.g_r_max < 0.0", inputs) == UNDEFINED


def test_arithmetic_faults_are_errors() -> None:
    outcome = evaluate(compile_filter(check("1 / (object.ndet - object.ndet) > 0", ENV)),
                       build_context(_inputs()))
    assert outcome.result == ERROR
    assert "division by zero" in (outcome.error or "")


def test_regular_expressions_run_in_linear_time() -> None:
    # a pattern that backtracks catastrophically in Python's re: (a+)+$ on "a"*n + "b"
    expression = 'alert.id.matches("^(a+)+$")'
    inputs = _inputs(detection={**_inputs().detection, "candid": "a" * 5000 + "b"})
    outcome = evaluate(compile_filter(check(expression, ENV)), build_context(inputs))
    assert outcome.result == NO_MATCH
    assert outcome.seconds < 0.05


# -- a deployment with filters -----------------------------------------------------------------
@dataclass
class Deployment:
    store: NightjarStore
    service: FilterService
    engine: FilterEngine
    watch: WatchService
    processor: BatchProcessor
    home: Path
    archive: LocalArchive

    async def ingest(self, inputs: list[RawInput], batch_size: int = 100) -> None:
        await ingest(self.processor, inputs, batch_size=batch_size)


@contextlib.asynccontextmanager
async def deployment(mongo_uri: str, home: Path,
                     limits: FilterLimits | None = None) -> AsyncIterator[Deployment]:
    limits = limits or FilterLimits()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    name = f"nightjar_flt_{uuid.uuid4().hex[:10]}"
    store = NightjarStore(client[name])
    await store.init()
    indexes = WatchIndexes(WatchStore(store), refresh_s=0.0)
    await indexes.refresh(force=True)
    catalogues = frozenset({"gcvs"}) if (home / "catalogs").exists() else frozenset()

    def env(owner: str) -> FilterEnvironment:
        lists, maps = indexes.names_for(owner)
        return FilterEnvironment(classifier_classes(), catalogues, lists, maps)

    filters = FilterStore(store)
    engine = FilterEngine(filters, env, limits, watch=indexes, refresh_s=0.0)
    service = FilterService(filters, env, limits, watch=indexes)
    archive = LocalArchive(home / "archive")
    processor = BatchProcessor(store, archive,
                               topology=configured_topology(Settings(home=home)),
                               filters=engine)
    try:
        yield Deployment(store, service, engine, WatchService(WatchStore(store), indexes),
                         processor, home, archive)
    finally:
        await client.drop_database(name)
        await client.close()


def real_and_simulated(shared_data: Path) -> list[RawInput]:
    """Real ZTF alerts, Rubin's real v10 sample, and simulated alerts of both surveys."""
    from nightjar.surveys.lsst.fink import rows, wire_messages

    inputs = list(iter_inputs(expand_paths([shared_data / "ztf" / "alerts"])))
    inputs += as_inputs(list(AlertSimulator(seed=41).packets(300)))
    lsst = list(wire_messages(rows(shared_data / "lsst" / "fink" /
                                   "rubin_sample_data_10_0.parquet"), 1000))
    lsst += [raw for _, _, raw in LsstSimulator(seed=42).packets(200)]
    inputs += [RawInput(raw, AlertSource("file", path=f"lsst/{i}")) for i, raw in
               enumerate(lsst)]
    return inputs


LIVE_FILTERS = {
    "bright-gr": ('object.ndet >= 3 && alert.mag_diff < 19.5 && alert.band in ["g", "r"]',
                  "every"),
    "lsst-young": ('survey == "LSST" && object.age < 5.0 && alert.snr > 5.0', "every"),
    "stamp-sn": ('prob("stamp_classifier", "SN") > 0.4', "first"),
    "periodic": ('classified("lc_classifier_top") && class_of("lc_classifier_top") == '
                 '"Periodic"', "class_change"),
    "unusual": ("anomaly.score > 0.8", "every"),
    "gcvs": ('xmatch.has("gcvs", 2.0)', "every"),
}


@pytest.fixture(scope="module")
async def live(mongo_uri: str, shared_data: Path,
               tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    """A deployment whose filters saw every alert live, ingested in small batches."""
    home = tmp_path_factory.mktemp("filters")
    import_catalog(shared_data / "catalogs" / "gcvs.parquet", "gcvs", home / "catalogs")
    async with deployment(mongo_uri, home) as dep:
        for name, (expression, notify) in LIVE_FILTERS.items():
            await dep.service.create(OPERATOR, name, expression, notify=notify)
        await dep.ingest(real_and_simulated(shared_data), batch_size=60)
        yield dep


async def _matches(dep: Deployment, name: str) -> list[tuple[str, str, Any]]:
    _, found = await dep.service.matches(OPERATOR, name, first=100_000)
    return sorted((m["oid"], m["alert_id"], json.dumps(m["read"], sort_keys=True))
                  for m in found)


@pytest.mark.parametrize("name", sorted(LIVE_FILTERS))
async def test_backfill_gives_exactly_the_live_matches(live: Deployment, name: str) -> None:
    expression, notify = LIVE_FILTERS[name]
    copy = f"{name}-backfill"
    await live.service.create(OPERATOR, copy, expression, notify=notify)
    report = await live.service.backfill(OPERATOR, copy)
    live_matches = await _matches(live, name)
    assert live_matches, f"{name} matched nothing live: the comparison would prove nothing"
    assert await _matches(live, copy) == live_matches
    assert report.stored == len(live_matches) and report.done
    dry = await live.service.dry_run(OPERATOR, expression, max_objects=100_000)
    if notify == "every":
        assert dry.matched_alerts == len(live_matches)
    # backfilling the live filter itself stores nothing twice
    again = await live.service.backfill(OPERATOR, name)
    assert again.stored == 0
    assert await _matches(live, name) == live_matches


async def test_both_surveys_and_both_stages_matched_live(live: Deployment) -> None:
    surveys = {m[0].startswith("ZTF") for m in await _matches(live, "bright-gr")}
    assert True in surveys
    lsst = await _matches(live, "lsst-young")
    assert lsst and all(not oid.startswith("ZTF") for oid, _, _ in lsst)
    first = await _matches(live, "stamp-sn")
    assert len({oid for oid, _, _ in first}) == len(first)  # first per object only
    doc = await live.service.get(OPERATOR, "stamp-sn")
    assert doc["stage"] == "classification" and doc["stats"]["evaluations"] > len(first)


async def test_reingesting_adds_no_match(live: Deployment, shared_data: Path) -> None:
    before = {name: await _matches(live, name) for name in LIVE_FILTERS}
    await live.ingest(list(iter_inputs(expand_paths([shared_data / "ztf" / "alerts"]))))
    assert {name: await _matches(live, name) for name in LIVE_FILTERS} == before


async def test_a_match_records_what_the_filter_read(live: Deployment) -> None:
    _, found = await live.service.matches(OPERATOR, "bright-gr", first=5)
    match = found[0]
    assert set(match["read"]) == {"object.ndet", "alert.mag_diff", "alert.band"}
    assert match["read"]["object.ndet"] >= 3 and match["read"]["alert.mag_diff"] < 19.5
    assert isinstance(match["alert_id"], str) and match["permalink"].endswith(match["oid"])
    assert match["version"] == 1 and match["source"] == "live"


async def test_an_edit_is_a_new_version_and_matches_name_it(live: Deployment,
                                                           shared_data: Path) -> None:
    await live.service.create(OPERATOR, "versioned", "object.ndet >= 100")
    doc = await live.service.update(OPERATOR, "versioned", expression="object.ndet >= 2")
    assert doc["version"] == 2 and [v["version"] for v in doc["versions"]] == [1, 2]
    await live.service.backfill(OPERATOR, "versioned")
    _, found = await live.service.matches(OPERATOR, "versioned")
    assert found and {m["version"] for m in found} == {2}
    with pytest.raises(FilterError):
        await live.service.update(OPERATOR, "versioned", expression="object.ndet >=")
    assert (await live.service.get(OPERATOR, "versioned"))["version"] == 2


async def test_backfill_resumes_after_an_interruption(live: Deployment) -> None:
    expression = "object.ndet >= 1 && alert.snr > 3.0"
    await live.service.create(OPERATOR, "resumable", expression)

    class Stop(Exception):
        pass

    def stop_after_first(report: Any) -> None:
        if report.objects >= 50:
            raise Stop

    with pytest.raises(Stop):
        await live.service.backfill(OPERATOR, "resumable", progress=stop_after_first)
    doc = await live.service.get(OPERATOR, "resumable")
    partial = doc["stats"]["stored"]
    assert doc["backfill"]["done"] is False and partial > 0
    report = await live.service.backfill(OPERATOR, "resumable")
    assert report.resumed_after == doc["backfill"]["last_oid"] and report.done
    await live.service.create(OPERATOR, "resumable-once", expression)
    await live.service.backfill(OPERATOR, "resumable-once")
    assert [m[:2] for m in await _matches(live, "resumable")] == [
        m[:2] for m in await _matches(live, "resumable-once")]


async def test_time_range_backfill(live: Deployment) -> None:
    _, every = await live.service.matches(OPERATOR, "bright-gr", first=100_000)
    mjds = sorted(m["mjd"] for m in every)
    since, until = mjds[len(mjds) // 4], mjds[3 * len(mjds) // 4]
    await live.service.create(OPERATOR, "bright-gr-range", LIVE_FILTERS["bright-gr"][0])
    await live.service.backfill(OPERATOR, "bright-gr-range", since=since, until=until)
    expected = sorted((m["oid"], m["alert_id"]) for m in every if since <= m["mjd"] <= until)
    assert [m[:2] for m in await _matches(live, "bright-gr-range")] == expected


# -- safety -------------------------------------------------------------------------------------
async def test_a_failing_filter_is_muted_with_a_notice_and_the_others_go_on(
        mongo_uri: str, tmp_path: Path) -> None:
    async with deployment(mongo_uri, tmp_path, FilterLimits(max_errors=5)) as dep:
        await dep.service.create("alice", "broken", "1 / (object.ndet - object.ndet) > 0")
        await dep.service.create("alice", "fine", "object.ndet >= 1")
        await dep.ingest(as_inputs(list(AlertSimulator(seed=5).packets(200))), 50)
        broken = await dep.service.get("alice", "broken")
        assert broken["state"] == MUTED
        assert "division by zero" in broken["state_reason"]
        assert broken["notices"][-1]["state"] == MUTED
        fine = await dep.service.get("alice", "fine")
        assert fine["state"] == ACTIVE and fine["stats"]["stored"] == 200
        # the owner resumes it after fixing it: a new version, active again
        await dep.service.update("alice", "broken", expression="object.ndet > 0")
        resumed = await dep.service.set_state("alice", "broken", ACTIVE)
        assert resumed["state"] == ACTIVE


async def test_an_overrunning_filter_is_muted(mongo_uri: str, tmp_path: Path) -> None:
    # a budget no evaluation can meet stands in for a filter that is too slow
    async with deployment(mongo_uri, tmp_path,
                          FilterLimits(budget_ms=1e-6, max_overruns=3)) as dep:
        await dep.service.create("alice", "slow", "object.ndet >= 1")
        await dep.ingest(as_inputs(list(AlertSimulator(seed=6).packets(40))), 20)
        doc = await dep.service.get("alice", "slow")
        assert doc["state"] == MUTED and "budget" in doc["state_reason"]


async def test_quotas(mongo_uri: str, tmp_path: Path) -> None:
    async with deployment(mongo_uri, tmp_path,
                          FilterLimits(matches_per_day=30, max_filters_per_user=2)) as dep:
        await dep.service.create("alice", "all", "object.ndet >= 1")
        await dep.service.create("alice", "all-too", "alert.snr > 0.0")
        with pytest.raises(ValueError, match="2 filters"):
            await dep.service.create("alice", "third", "object.ndet >= 1")
        await dep.ingest(as_inputs(list(AlertSimulator(seed=7).packets(100))), 50)
        docs = [await dep.service.get("alice", n) for n in ("all", "all-too")]
        stored = sum(d["stats"].get("stored", 0) for d in docs)
        assert stored == 30  # the user's daily quota, over both filters
        assert all(d["state"] == MUTED and "quota" in d["state_reason"] for d in docs)


async def test_expiry(mongo_uri: str, tmp_path: Path) -> None:
    import datetime as dt

    async with deployment(mongo_uri, tmp_path) as dep:
        old = dt.datetime.now(dt.UTC) - dt.timedelta(days=200)
        await dep.service.create("alice", "old", "object.ndet >= 1", now=old)
        await dep.ingest(as_inputs(list(AlertSimulator(seed=8).packets(20))), 20)
        doc = await dep.service.get("alice", "old")
        assert doc["state"] == "expired" and not doc["stats"]
        renewed = await dep.service.set_state("alice", "old", ACTIVE)
        assert renewed["expires"] > dt.datetime.now(dt.UTC) + dt.timedelta(days=179)


async def test_ownership(mongo_uri: str, tmp_path: Path) -> None:
    async with deployment(mongo_uri, tmp_path) as dep:
        private = await dep.service.create("bob", "secret", "object.ndet >= 2")
        await dep.service.create("bob", "shared", "object.ndet >= 3", public=True)
        for ref in ("secret", private["_id"]):
            with pytest.raises(FilterAccessError):
                await dep.service.get("alice", ref)
            with pytest.raises(FilterAccessError):
                await dep.service.update("alice", ref, expression="true")
            with pytest.raises(FilterAccessError):
                await dep.service.delete("alice", ref)
            with pytest.raises(FilterAccessError):
                await dep.service.matches("alice", ref)
        shared = (await dep.service.filters.by_name("bob", "shared"))
        assert shared is not None
        assert (await dep.service.get("alice", shared["_id"]))["name"] == "shared"
        with pytest.raises(FilterAccessError):  # public means readable, not editable
            await dep.service.set_state("alice", shared["_id"], "paused")
        names = {d["name"] for d in await dep.service.visible("alice")}
        assert names == {"shared"}
        copy = await dep.service.copy("alice", shared["_id"], "my-copy")
        assert copy["owner"] == "alice" and copy["expression"] == "object.ndet >= 3"
        assert (await dep.service.get(OPERATOR, "secret"))["owner"] == "bob"


# -- the CLI -----------------------------------------------------------------------------------
def _cli(home: Path, mongo_uri: str, database: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NIGHTJAR_HOME": str(home), "MONGODB_URI": mongo_uri,
           "NIGHTJAR_DATABASE": database, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "nightjar.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli(mongo_uri: str, tmp_path: Path, shared_data: Path) -> None:
    database = f"nightjar_cli_{uuid.uuid4().hex[:8]}"

    def run(*args: str) -> subprocess.CompletedProcess:
        return _cli(tmp_path, mongo_uri, database, *args)

    refused = run("filter", "create", "bad", "--expression", "object.ndett >= 3")
    assert refused.returncode == 1
    assert "1:8: Object has no field 'ndett'" in refused.stderr
    assert "  object.ndett >= 3\n         ^" in refused.stderr
    made = run("filter", "create", "bright", "-e", 'alert.mag_diff < 19.0 && object.ndet >= 2')
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["owner"] == OPERATOR
    ingest_run = run("ingest", str(shared_data / "ztf" / "alerts" / "ztf-avro-alert"))
    assert ingest_run.returncode == 0, ingest_run.stderr
    dry = json.loads(run("filter", "dry-run", "-e",
                         'alert.mag_diff < 19.0 && object.ndet >= 2').stdout)
    as_json = json.loads(run("filter", "matches", "bright", "--format", "json").stdout)
    assert dry["matched_alerts"] == len(as_json) > 0
    as_csv = run("filter", "matches", "bright", "--format", "csv").stdout.splitlines()
    assert as_csv[0].startswith("seq,filter_name,version,oid") and len(as_csv) == len(
        as_json) + 1
    assert run("filter", "pause", "bright").returncode == 0
    listed = json.loads(run("filter", "list", "--format", "json").stdout)
    assert [(f["name"], f["state"]) for f in listed] == [("bright", "paused")]
    assert run("filter", "resume", "bright").returncode == 0
    backfill = json.loads(run("filter", "backfill", "bright").stdout)
    assert backfill["stored"] == 0 and backfill["done"]  # live already has them all
    assert run("filter", "delete", "bright").returncode == 0
    assert json.loads(run("filter", "list", "--format", "json").stdout) == []
    unknown = run("filter", "list", "--api-key", "nope")
    assert unknown.returncode == 2


async def test_the_indexable_part_narrows_the_backfill_in_the_database(live: Deployment) -> None:
    """survey, detections and a class's probability narrow the objects a backfill reads
    (a query over objects and classification events); the rest runs on those only."""
    expression = 'survey == "ZTF" && prob("stamp_classifier", "SN") > 0.4 && object.ndet >= 1'
    checked = live.service.check(OPERATOR, expression)
    assert probability_conditions(checked) == [("stamp_classifier", "SN", ">", 0.4)]
    report = await live.service.dry_run(OPERATOR, expression, max_objects=100_000)
    objects = {d["_id"]: d async for d in live.store.db.objects.find({})}
    likely = {e["oid"] async for e in live.store.db.classification_events.find({})
              if (e.get("classifiers", {}).get("stamp_classifier", {}).get("probabilities", {})
                  .get("SN", 0.0)) > 0.4}
    expected = {o for o in likely if objects[o].get("survey") == "ZTF"}
    assert 0 < len(expected) < len(objects)
    assert report.objects == len(expected)  # only those were read and evaluated
    assert report.matched_objects <= expected


def test_the_evaluator_gets_only_what_the_filters_read() -> None:
    """A context pruned to the filters' references (a key known only at run time as
    ``*``) gives each filter the result it gives on the whole context."""
    from nightjar.core.filters.context import pruned

    tree = {"survey": "ZTF", "alert": {"snr": 5.0, "mag": 18.0},
            "object": {"ndet": 4, "band": {"g": {"ndet": 2, "mag_min": 17.0},
                                           "r": {"ndet": 6, "mag_min": 18.0}}}}
    env = FilterEnvironment(classifier_classes(), frozenset(), {}, {})
    each = 'object.band.exists(b, object.band[b].ndet >= 5) && alert.snr > 4.0'
    keys = 'object.band.exists(b, b == "g")'
    fields = check(each, env).references.fields
    assert "object.band.*.ndet" in fields
    assert pruned(tree, fields) == {"alert": {"snr": 5.0}, "object": {
        "band": {"g": {"ndet": 2}, "r": {"ndet": 6}}}}
    checked = [check(e, env) for e in (each, keys)]
    both = fields_read([ActiveFilter({"_id": str(i)}, c, compile_filter(c))
                        for i, c in enumerate(checked)])
    # one filter iterates the map, so it is handed whole although the other reads less
    assert pruned(tree, both)["object"]["band"] == tree["object"]["band"]
    mixed = frozenset({"object", "object.band", "object.band.g", "object.band.g.ndet",
                       "object.band.*", "object.band.*.mag_min"})
    assert pruned(tree, mixed)["object"]["band"] == {"g": {"ndet": 2, "mag_min": 17.0},
                                                     "r": {"mag_min": 18.0}}
    for expression in (each, keys):
        program = compile_filter(check(expression, env))
        whole = program.execute(cel.Context({"anomaly": {}, "surprise": {}, "tns": {},
                                             "xmatch": {}, **tree}))
        assert program.execute(cel.Context({"anomaly": {}, "surprise": {}, "tns": {},
                                            "xmatch": {}, "alert": {}, "object": {},
                                            **pruned(tree, both)})) == whole


async def test_a_cone_narrows_the_backfill_and_matches_exactly(live: Deployment) -> None:
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    alerts = [d async for d in live.store.db.detections.find({"parent_candid": None})]
    centre = next(d for d in alerts if str(d["oid"]).startswith("ZTF"))
    ra, dec, radius = float(centre["ra"]), float(centre["dec"]), 1800.0
    name = "cone-backfill"
    await live.service.create(OPERATOR, name, f"in_cone({ra!r}, {dec!r}, {radius!r})")
    report = await live.service.backfill(OPERATOR, name)
    _, found = await live.service.matches(OPERATOR, name, first=100_000)
    positions = SkyCoord([float(d["ra"]) for d in alerts] * u.deg,
                         [float(d["dec"]) for d in alerts] * u.deg)
    inside = positions.separation(SkyCoord(ra * u.deg, dec * u.deg)).arcsec <= radius
    expected = {(str(d["oid"]), str(d["_id"])) for d, ok in zip(alerts, inside, strict=True)
                if ok}
    assert expected and {(m["oid"], m["alert_id"]) for m in found} == expected
    total = await live.store.db.objects.count_documents({})
    assert report.objects < total  # only the objects in the cone were read
