"""Live light-curve classification: embedded runner inline, Faust agent on real Kafka."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ml.forecast import HORIZON_DAYS, MODEL_OF_BRANCH
from nightjar.runner.classify import LcClassifierHook, load_anomaly_model, load_model
from nightjar.runner.ingest import BatchProcessor, expand_paths, ingest, iter_inputs
from nightjar.runner.stamp_classify import StampClassifierHook, load_stamp_model
from nightjar.runner.topology import Topology
from nightjar.store import NightjarStore
from nightjar.store.archive import LocalArchive
from nightjar.store.schema import ANOMALY, FEATURES, OBJECTS, PROBABILITIES
from services.gateway.schema import GatewayContext, schema
from stream.localrun import StreamEnv, Worker, read_topic, wait_for

SHIPPED_HOME = Path("/nonexistent-nightjar-home")  # no user models: the shipped default
SHIPPED_ANOMALY_VERSION = "1.2.0"  # the newest shipped anomaly model (ml/models/ztf_anomaly)


def _eligible(rows: list[dict[str, Any]]) -> set[str]:
    """Objects with >= 6 stored detections in g or in r (before rb filtering)."""
    counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for det in rows:
        counts[det["oid"]][det["fid"]] += 1
    return {oid for oid, per_band in counts.items() if max(per_band.values()) >= 6}


def _check_rows(rows: list[dict[str, Any]]) -> None:
    by_classifier: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_classifier[row["classifier_name"]].append(row)
    assert set(by_classifier) == {"lc_classifier", "lc_classifier_top",
                                  "lc_classifier_transient", "lc_classifier_stochastic",
                                  "lc_classifier_periodic"}
    full = by_classifier["lc_classifier"]
    assert len(full) == 15
    assert sum(r["probability"] for r in full) == pytest.approx(1.0, abs=1e-9)
    assert sorted(r["ranking"] for r in full) == list(range(1, 16))
    best = min(full, key=lambda r: r["ranking"])
    assert best["probability"] == max(r["probability"] for r in full)


@pytest.fixture
def classifying_processor(store: NightjarStore, tmp_path: Path) -> BatchProcessor:
    model = load_model(SHIPPED_HOME)
    hooks = {"stamp": [StampClassifierHook(load_stamp_model(SHIPPED_HOME))],
             "classify": [LcClassifierHook(model, load_anomaly_model(SHIPPED_HOME))]}
    return BatchProcessor(store, LocalArchive(tmp_path / "archive"),
                          topology=Topology(hooks=hooks))  # type: ignore[arg-type]


async def _check_anomaly(store: NightjarStore, classified: set[str]) -> list[dict[str, Any]]:
    """Every classified object has scores in [0, 1], the latest on its object document."""
    scores = [d async for d in store.db[ANOMALY].find({})]
    assert {d["oid"] for d in scores} == classified
    for d in scores:
        assert 0.0 <= d["score"] <= 1.0 and 0.0 <= d["raw"] <= 1.0
        assert d["model_name"] == "ztf_anomaly" and d["model_version"] == SHIPPED_ANOMALY_VERSION
        assert len(d["top_features"]) == 3
        assert d["ndet"] >= 6
    latest: dict[str, dict[str, Any]] = {}
    for d in sorted(scores, key=lambda d: d["mjd"]):
        latest[d["oid"]] = d
    objects = {o["_id"]: o async for o in store.db[OBJECTS].find({"_id": {"$in": sorted(
        classified)}})}
    for oid, d in latest.items():
        assert objects[oid]["anomaly"]["score"] == d["score"]
        assert objects[oid]["anomaly"]["mjd"] == d["mjd"]
    return scores


async def test_embedded_pipeline_classifies_real_alerts(
        store: NightjarStore, classifying_processor: BatchProcessor,
        shared_data: Path) -> None:
    files = expand_paths([shared_data / "ztf" / "alerts"])
    # one alert per batch: objects are scored again as their light curves grow
    await ingest(classifying_processor, iter_inputs(files), 1)
    detections = [d async for d in store.db["detections"].find({}, {"oid": 1, "fid": 1})]
    eligible = _eligible(detections)
    every_row = [r async for r in store.db[PROBABILITIES].find({})]
    rows = [r for r in every_row if r["classifier_name"] != "stamp_classifier"]
    classified = {r["oid"] for r in rows}
    assert len(classified) >= 20, "real alerts with >= 6 detections in a band get classified"
    assert classified <= eligible  # nothing below the threshold
    by_oid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_oid[row["oid"]].append(row)
        assert row["classifier_version"] == "1.3.0"  # the shipped model (ml/models)
    for oid_rows in by_oid.values():
        _check_rows(oid_rows)
    features = {d["_id"]: d async for d in store.db[FEATURES].find({})}
    assert set(features) == classified
    some = next(iter(features.values()))
    assert some["values"]["n_det_1"] is not None or some["values"]["n_det_2"] is not None
    assert some["values"]["W1-W2"] is None  # never made up

    scores = await _check_anomaly(store, classified)
    stamp_bogus = {r["oid"]: r["probability"] for r in every_row
                   if r["classifier_name"] == "stamp_classifier" and r["class_name"] == "bogus"}
    gated = [d for d in scores if d["oid"] in stamp_bogus]
    assert gated, "objects with a stamp classification are gated by its P(bogus)"
    assert all(d["bogus"] == stamp_bogus[d["oid"]] for d in gated)
    counts: dict[str, int] = defaultdict(int)
    for d in scores:
        counts[d["oid"]] += 1
    grown = max(counts, key=lambda o: counts[o])
    assert counts[grown] >= 2, "a light curve that grew was scored again"

    # GraphQL serves them
    oid = grown
    result = await schema.execute(
        """query($oid: String!) { object(oid: $oid) {
             probabilities(classifier: "lc_classifier") { classifierName classifierVersion
               className probability ranking }
             features { name value }
             anomaly { score rawScore modelName modelVersion mjd ndet bogus
               branches { branch score } topFeatures { name value contribution }
               history { mjd ndet score rawScore modelVersion } } } }""",
        variable_values={"oid": oid}, context_value=GatewayContext(store))
    assert not result.errors, result.errors
    assert result.data is not None
    probs = result.data["object"]["probabilities"]
    assert len(probs) == 15 and probs[0]["ranking"] == 1
    assert {f["name"] for f in result.data["object"]["features"]} >= {"Multiband_period",
                                                                     "Mean_1", "gal_b"}
    anomaly = result.data["object"]["anomaly"]
    history = sorted((d for d in scores if d["oid"] == oid), key=lambda d: d["mjd"])
    assert [h["mjd"] for h in anomaly["history"]] == [d["mjd"] for d in history]
    assert anomaly["score"] == history[-1]["score"] and anomaly["mjd"] == history[-1]["mjd"]
    assert [b["branch"] for b in anomaly["branches"]] == ["Transient", "Stochastic",
                                                         "Periodic"]
    assert [f["name"] for f in anomaly["topFeatures"]] == [
        f["name"] for f in history[-1]["top_features"]]

    # the listing by anomaly score: most unusual first, page after page, unscored last
    order_query = """query($after: String) { objects(orderBy: {field: ANOMALY}, first: 7,
        after: $after) { edges { node { oid anomaly { score } } }
        pageInfo { hasNextPage endCursor } } }"""
    listed: list[tuple[str, float | None]] = []
    after = None
    while True:
        page = await schema.execute(order_query, variable_values={"after": after},
                                    context_value=GatewayContext(store))
        assert not page.errors, page.errors
        assert page.data is not None
        connection = page.data["objects"]
        listed += [(e["node"]["oid"], (e["node"]["anomaly"] or {}).get("score"))
                   for e in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert len({o for o, _ in listed}) == len(listed) == await store.count(OBJECTS)
    scored = [v for _, v in listed if v is not None]
    assert len(scored) == len(classified)
    assert scored == sorted(scored, reverse=True)
    assert all(v is None for _, v in listed[len(scored):])

    await _check_surprise_and_forecast(store, classified)
    await _users_teach_the_score(store, scores)

    # re-ingesting the same alerts: no duplicate rows, nothing rewritten
    before = await store.count(PROBABILITIES)
    before_scores = await store.count(ANOMALY)
    summary = await ingest(classifying_processor, iter_inputs(files), 100)
    assert summary.new_detections == 0
    assert await store.count(PROBABILITIES) == before
    assert await store.count(ANOMALY) == before_scores
    assert await store.count(FEATURES) == len(classified)


FORECAST = """query($oid: String!, $band: String!, $mjd: [Float!]!) { object(oid: $oid) {
    surprise { value mjd band fid model }
    forecast(band: $band, mjd: $mjd) { band model branch magnitudeKind reason
      points { mjd valid magnitude lower68 upper68 lower95 upper95 } } } }"""


async def _check_surprise_and_forecast(store: NightjarStore, classified: set[str]) -> None:
    """Classified objects carry their latest detection's surprise, under the model of
    their top class; GraphQL forecasts a band with nested intervals, nothing past the
    horizon, and refuses a band the survey does not have."""
    objects = {o["_id"]: o async for o in store.db[OBJECTS].find(
        {"_id": {"$in": sorted(classified)}})}
    with_surprise = {oid: o["surprise"] for oid, o in objects.items() if o.get("surprise")}
    assert len(with_surprise) >= 5, "a forecast was possible before most latest detections"
    rows = [r async for r in store.db[PROBABILITIES].find(
        {"classifier_name": "lc_classifier_top", "ranking": 1})]
    top = {r["oid"]: r["class_name"] for r in rows}
    detections = [d async for d in store.db["detections"].find(
        {"oid": {"$in": sorted(with_surprise)}}, {"oid": 1, "mjd": 1, "fid": 1})]
    for oid, found in with_surprise.items():
        assert found["model"] == MODEL_OF_BRANCH[top[oid]]
        assert math.isfinite(found["value"]) and found["band"] == {1: "g", 2: "r"}[found["fid"]]
        # it is of a stored detection of that band: the latest the classifier read
        assert any(d["oid"] == oid and d["mjd"] == found["mjd"] and d["fid"] == found["fid"]
                   for d in detections)
        assert found["mjd"] <= objects[oid]["lastmjd"]

    oid, found = next(iter(sorted(with_surprise.items())))
    at = [found["mjd"] + 0.5, found["mjd"] + 5.0, found["mjd"] + HORIZON_DAYS + 5.0]
    result = await schema.execute(FORECAST, context_value=GatewayContext(store),
                                  variable_values={"oid": oid, "band": found["band"],
                                                   "mjd": at})
    assert not result.errors, result.errors
    assert result.data is not None
    served = result.data["object"]
    assert served["surprise"] == {k: found[k] for k in ("value", "mjd", "band", "fid",
                                                        "model")}
    predicted = served["forecast"]
    assert predicted["model"] == found["model"] and predicted["branch"] == top[oid]
    assert predicted["magnitudeKind"] == ("DIFFERENCE" if found["model"] == "spm"
                                          else "APPARENT")
    points = predicted["points"]
    assert [p["mjd"] for p in points] == at
    assert points[0]["valid"], predicted  # its last detection was predictable
    for p in points[:2]:
        if p["valid"]:
            assert p["lower95"] < p["lower68"] < p["magnitude"]
            assert p["upper68"] is None or p["magnitude"] < p["upper68"]
            assert p["upper95"] is None or (p["upper68"] or 0) < p["upper95"]
    assert not points[2]["valid"] and points[2]["magnitude"] is None  # past the horizon
    for band, mjd, says in (("y", at, "'y' is not a ZTF band"),
                            (found["band"], [found["mjd"]] * 1001, "1001 forecast times")):
        bad = await schema.execute(FORECAST, context_value=GatewayContext(store),
                                   variable_values={"oid": oid, "band": band, "mjd": mjd})
        assert bad.errors and says in bad.errors[0].message, bad.errors


async def test_classify_agent_on_kafka_classifies_real_alerts(
        kafka_bootstrap: str, mongo_uri: str, tmp_path: Path, shared_data: Path) -> None:
    env = StreamEnv(kafka_bootstrap, mongo_uri, tmp_path,
                    extra={"NIGHTJAR_LC_CLASSIFIER": "true"})
    try:
        alerts_dir = shared_data / "ztf" / "alerts"
        produced = env.cli("produce", str(alerts_dir))
        assert produced.returncode == 0, produced.stderr
        n_files = len(expand_paths([alerts_dir]))
        worker = Worker(env)
        try:
            async def classified() -> int:
                async with env.store() as store:
                    return len(await store.db[PROBABILITIES].distinct(
                        "oid", {"classifier_name": "lc_classifier"}))

            await wait_for(lambda: _at_least(classified, 20), 300, "classified objects")
            records = await read_topic(env.bootstrap, env.topic("classifications"),
                                       expected=n_files + 20, wait_s=120)
            classify_in = worker.metric("nightjar_step_alerts_in_total", step="classify")
        finally:
            assert worker.stop() == 0, worker.log[-3000:]
        lc_records = [r.value for r in records if r.value["trigger"] == "lc_classifier"]
        alert_records = [r.value for r in records if r.value["trigger"] == "alert"]
        assert len(alert_records) == n_files  # one per alert, as before
        assert lc_records, "the classify agent publishes its results"
        assert classify_in >= 20
        for record in lc_records:
            rows = [{**p, "classifier_name": p["classifier"]} for p in record["probabilities"]]
            _check_rows(rows)
            # schema 1.3: the score made with this classification travels with it
            assert record["schemavsn"] == "1.4"
            assert record["anomaly"]["model_name"] == "ztf_anomaly"
            assert 0.0 <= record["anomaly"]["score"] <= 1.0
        # schema 1.4: the latest detection's surprise, where a forecast was possible
        surprised = [r for r in lc_records if r["surprise"] is not None]
        assert surprised, "classified objects carry their forecast surprise"
        for record in surprised:
            assert record["surprise"]["model"] in {"spm", "harmonic", "drw"}
            assert record["surprise"]["mjd"] <= record["mjd"]
        async with env.store() as store:
            rows = [r async for r in store.db[PROBABILITIES].find(
                {"classifier_name": {"$ne": "stamp_classifier"}})]
            by_oid: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in rows:
                by_oid[row["oid"]].append(row)
            for oid_rows in by_oid.values():
                _check_rows(oid_rows)  # exactly one row per classifier and class
            assert {r["oid"] for r in lc_records} <= set(by_oid)
            assert await store.count(FEATURES) == len(by_oid)
            lc_classified = {o for o, rs in by_oid.items()
                             if any(r["classifier_name"] == "lc_classifier" for r in rs)}
            scores = await _check_anomaly(store, lc_classified)
            stored = {(d["oid"], d["mjd"]): d["score"] for d in scores}
            assert all(stored[(r["oid"], r["anomaly"]["mjd"])] == r["anomaly"]["score"]
                       for r in lc_records)
    finally:
        await env.drop()


async def _at_least(count: Any, n: int) -> bool:
    return bool(await count() >= n)


RANKING = "query { myAnomalies(first: 500) { oid score rawScore sharedRawScore } }"
LABEL = """mutation($oid: String!, $label: AnomalyLabel!) {
    labelAnomaly(oid: $oid, label: $label) { oid label user modelVersion labels } }"""


async def _as(store: NightjarStore, user: str | None, query: str,
              **variables: Any) -> dict[str, Any]:
    result = await schema.execute(query, variable_values=variables,
                                  context_value=GatewayContext(store, user=user))
    assert not result.errors, result.errors
    assert result.data is not None
    return result.data


async def _my_order(store: NightjarStore, user: str, flt: dict[str, Any] | None = None,
                    direction: str = "DESC") -> list[str]:
    """Every oid of objects(orderBy: MY_ANOMALY) as ``user``, page by page (7 a page)."""
    query = """query($after: String, $filter: ObjectFilterInput, $dir: OrderDirection) {
        objects(orderBy: {field: MY_ANOMALY, direction: $dir}, filter: $filter, first: 7,
                after: $after) {
          edges { myAnomalyScore node { oid } } totalCount
          pageInfo { hasNextPage endCursor } } }"""
    listed: list[str] = []
    scores: list[float] = []
    after = None
    while True:
        page = (await _as(store, user, query, after=after, filter=flt, dir=direction))
        connection = page["objects"]
        listed += [e["node"]["oid"] for e in connection["edges"]]
        scores += [e["myAnomalyScore"] for e in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert connection["totalCount"] == len(listed) == len(set(listed))
    assert scores == sorted(scores, reverse=direction == "DESC")  # percentiles follow
    return listed


async def _users_teach_the_score(store: NightjarStore, scores: list[dict[str, Any]]) -> None:
    """A user's labels move that user's ranking, and no one else's."""
    latest = {d["oid"]: d for d in sorted(scores, key=lambda d: d["mjd"])}
    before = (await _as(store, "bob", RANKING))["myAnomalies"]
    assert [r["oid"] for r in before] and {r["oid"] for r in before} == set(latest)
    for r in before:  # without labels, a user's ranking is the shared one
        assert r["rawScore"] == pytest.approx(latest[r["oid"]]["raw"], abs=1e-12)
        assert r["sharedRawScore"] == r["rawScore"]
    oids = [r["oid"] for r in before]
    wanted, dull, artefact = oids[len(oids) // 2], oids[0], oids[1]
    for oid, label in ((wanted, "ANOMALY"), (dull, "NOT_ANOMALY"), (artefact, "ARTEFACT")):
        done = (await _as(store, "alice", LABEL, oid=oid, label=label))["labelAnomaly"]
        assert done["user"] == "alice" and done["modelVersion"] == SHIPPED_ANOMALY_VERSION
    assert done["labels"] == 3
    mine = [r["oid"] for r in (await _as(store, "alice", RANKING))["myAnomalies"]]
    assert mine.index(wanted) < oids.index(wanted) // 2
    assert mine.index(dull) > 0 and mine[-1] == artefact
    assert [r["oid"] for r in (await _as(store, "bob", RANKING))["myAnomalies"]] == oids
    # objects(orderBy: MY_ANOMALY) pages through the same ranking, with the filters
    assert await _my_order(store, "alice") == mine
    assert await _my_order(store, "bob") == oids
    ndet = {d["_id"]: d["ndet"] async for d in store.db[OBJECTS].find({}, {"ndet": 1})}
    cut = sorted(ndet[o] for o in oids)[len(oids) // 2]
    assert await _my_order(store, "alice", {"ndet": {"min": cut}}) == [
        o for o in mine if ndet[o] >= cut]
    assert await _my_order(store, "alice", direction="ASC") == mine[::-1]
    anonymous = await schema.execute(
        "{ objects(orderBy: {field: MY_ANOMALY}) { edges { node { oid } } } }",
        context_value=GatewayContext(store))
    assert anonymous.errors and anonymous.errors[0].extensions["code"] == "UNAUTHENTICATED"
    labels = await store.anomaly_labels("alice")
    assert {d["oid"]: d["label"] for d in labels} == {wanted: "ANOMALY", dull: "NOT_ANOMALY",
                                                      artefact: "ARTEFACT"}
    assert all(len(d["probabilities"]) == 15 and d["model_version"] == SHIPPED_ANOMALY_VERSION
               and d["features"] for d in labels)
    # relabelling replaces; no key, no label
    await _as(store, "alice", LABEL, oid=wanted, label="NOT_ANOMALY")
    assert len(await store.anomaly_labels("alice")) == 3
    refused = await schema.execute(LABEL, variable_values={"oid": wanted, "label": "ANOMALY"},
                                   context_value=GatewayContext(store))
    assert refused.errors and refused.errors[0].extensions["code"] == "UNAUTHENTICATED"


async def test_the_classify_agent_never_rewrites_newer_statistics(
        store: NightjarStore, tmp_path: Path, shared_data: Path) -> None:
    from nightjar.runner.classify import classify_history
    from nightjar.surveys.registry import HISTORY_FIELDS

    plain = BatchProcessor(store, LocalArchive(tmp_path / "archive"), topology=Topology())
    await ingest(plain, iter_inputs(expand_paths([shared_data / "ztf" / "alerts"])), 100)
    detections = [d async for d in store.db["detections"].find({}, {"oid": 1, "fid": 1})]
    oid = sorted(_eligible(detections))[0]
    history = (await store.load_histories([oid], HISTORY_FIELDS))[oid]
    # the pipeline agent stores newer statistics after the classify agent read the history
    await store.db[OBJECTS].update_one({"_id": oid}, {"$set": {"ndet": 9999}})
    result = classify_history(load_model(SHIPPED_HOME), history,
                              load_anomaly_model(SHIPPED_HOME))
    assert result is not None
    write, classification = result
    assert write.object_doc is None and set(write.object_set) <= {"anomaly", "surprise"}
    await store.write([write])
    stored = await store.get_object(oid)
    assert stored is not None and stored["ndet"] == 9999
    assert classification.anomaly is not None
    assert stored["anomaly"]["score"] == classification.anomaly["score"]
    assert stored.get("surprise") == classification.surprise


VERDICT = """mutation($oid: String!, $label: AnomalyLabel!) {
    labelAnomaly(oid: $oid, label: $label) { labels artefactVotes flaggedArtefact } }"""


async def test_enough_artefact_votes_make_the_shared_score_call_an_object_bogus(
        store: NightjarStore, classifying_processor: BatchProcessor) -> None:
    from nightjar.surveys.ztf.simulate import AlertSimulator
    from tests.conftest import as_inputs

    packets = list(AlertSimulator(seed=21).packets(500))
    first, later = packets[:300], packets[300:]
    await ingest(classifying_processor, as_inputs(first), 100)
    more = {oid for oid, _, _ in later}
    scored = {d["_id"]: d async for d in store.db[OBJECTS].find({"anomaly.score": {"$gt": 0}})}
    oid = sorted(o for o in scored if o in more)[0]  # scored, and more alerts to come
    shared = scored[oid]["anomaly"]

    async def anomaly_of(o: str) -> dict[str, Any]:
        doc = await store.db[OBJECTS].find_one({"_id": o})
        assert doc is not None
        return dict(doc["anomaly"])

    one = (await _as(store, "alice", VERDICT, oid=oid, label="ARTEFACT"))["labelAnomaly"]
    assert (one["artefactVotes"], one["flaggedArtefact"]) == (1, False)
    assert await anomaly_of(oid) == shared  # one user's word sinks it for that user only
    two = (await _as(store, "bob", VERDICT, oid=oid, label="ARTEFACT"))["labelAnomaly"]
    assert (two["artefactVotes"], two["flaggedArtefact"]) == (2, True)
    assert (await anomaly_of(oid))["score"] == 0.0  # now for everyone
    carol = (await _as(store, "carol", RANKING))["myAnomalies"]  # no labels of her own
    assert carol[-1]["oid"] == oid and carol[-1]["rawScore"] == 0.0
    back = (await _as(store, "alice", VERDICT, oid=oid, label="NOT_ANOMALY"))["labelAnomaly"]
    assert (back["artefactVotes"], back["flaggedArtefact"]) == (1, False)
    restored = await anomaly_of(oid)
    assert restored["score"] == pytest.approx(shared["score"], abs=1e-9)
    assert restored["raw"] == pytest.approx(shared["raw"], abs=1e-12)
    await _as(store, "alice", VERDICT, oid=oid, label="ARTEFACT")
    # the pipeline keeps the verdict and gates every new score of the object by it
    await ingest(classifying_processor, as_inputs(later), 100)
    doc = await store.db[OBJECTS].find_one({"_id": oid})
    assert doc is not None and doc["artefact"] == {"votes": 2, "flagged": True}
    newest = max([d async for d in store.db[ANOMALY].find({"oid": oid})],
                 key=lambda d: d["mjd"])
    assert newest["mjd"] > shared["mjd"]  # scored again on its grown light curve
    assert newest["bogus"] == 1.0 and newest["score"] == 0.0 == doc["anomaly"]["score"]
