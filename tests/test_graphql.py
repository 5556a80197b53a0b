"""The GraphQL schema against a real store: names, pagination, validation, operations."""

from __future__ import annotations

from pathlib import Path

from graphql import parse, validate

from nightjar.runner.ingest import BatchProcessor, ingest
from nightjar.store import NightjarStore
from nightjar.surveys.ztf.simulate import AlertSimulator
from services.gateway.schema import MAX_PAGE, GatewayContext, schema
from tests.conftest import as_inputs

ROOT = Path(__file__).resolve().parents[1]


async def _run(store: NightjarStore, query: str, **variables: object) -> dict:
    result = await schema.execute(query, variable_values=variables or None,
                                  context_value=GatewayContext(store))
    return {"data": result.data, "errors": [e.message for e in result.errors or []]}


async def test_object_uses_alerce_names_and_store_values(
        store: NightjarStore, processor: BatchProcessor,
        simulated: list[tuple[str, int, bytes]]) -> None:
    await ingest(processor, as_inputs(simulated), batch_size=100)
    doc = await store.db["objects"].find_one({"ndet": {"$gte": 3}})
    out = await _run(store, """query($oid: String!) { object(oid: $oid) {
        oid ndet gRMean magstats { magmeanCorr magsigma saturationRate }
        detections { candid magpsfCorr sigmapsfCorr sigmapsfCorrExt parentCandid } } }""",
                     oid=doc["_id"])
    assert not out["errors"]
    obj = out["data"]["object"]
    assert obj["ndet"] == doc["ndet"] and obj["gRMean"] == doc["g_r_mean"]
    assert [m["magmeanCorr"] for m in obj["magstats"]] == [
        m["magmean_corr"] for m in doc["magstats"]]
    stored = {d["_id"]: d async for d in store.db["detections"].find({"oid": doc["_id"]})}
    for det in obj["detections"]:
        assert det["magpsfCorr"] == stored[int(det["candid"])]["magpsf_corr"]
    missing = await _run(store, '{ object(oid: "ZTF99zzzzzzz") { oid } }')
    assert missing["data"]["object"] is None and not missing["errors"]


async def test_cursor_pagination_and_filters(
        store: NightjarStore, processor: BatchProcessor,
        simulated: list[tuple[str, int, bytes]]) -> None:
    await ingest(processor, as_inputs(simulated), batch_size=100)
    query = """query($after: String) { objects(ndetMin: 1, first: 4, after: $after) {
        edges { cursor node { oid ndet firstmjd } } pageInfo { hasNextPage endCursor } } }"""
    oids: list[str] = []
    after = None
    while True:
        page = (await _run(store, query, after=after))["data"]["objects"]
        oids += [e["node"]["oid"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert oids == sorted([d["_id"] async for d in store.db["objects"].find({})])
    some = await store.db["objects"].find_one({})
    lo = some["firstmjd"]
    window = await _run(store, """query($lo: Float!) { objects(firstmjdMin: $lo,
        firstmjdMax: $lo, first: 500) { nodes { oid firstmjd } } }""", lo=lo)
    nodes = window["data"]["objects"]["nodes"]
    assert some["_id"] in [n["oid"] for n in nodes] and all(n["firstmjd"] == lo for n in nodes)


async def test_bad_arguments_are_graphql_errors(store: NightjarStore) -> None:
    for args in ("cone: {ra: 10, dec: 95, radius: 1}", "cone: {ra: 10, dec: 5, radius: -1}",
                 "first: 0", 'after: "%%%"'):
        out = await _run(store, f"{{ objects({args}) {{ nodes {{ oid }} }} }}")
        assert out["errors"], args


def test_committed_operations_validate_against_the_schema() -> None:
    graphql_schema = schema._schema
    files = sorted((ROOT / "graphql" / "operations").glob("*.graphql"))
    assert files
    for path in files:
        errors = validate(graphql_schema, parse(path.read_text()))
        assert not errors, (path.name, errors)


class ClusteredSimulator(AlertSimulator):
    """The simulator with every object within ~0.1 deg of (150, 2): cones that page."""

    def _position(self) -> tuple[float, float]:
        return (150.0 + float(self.rng.normal(0, 0.05)), 2.0 + float(self.rng.normal(0, 0.05)))


async def test_cone_pages_with_after_ndet_max_and_the_page_size_limit(
        store: NightjarStore, processor: BatchProcessor) -> None:
    import numpy as np
    from astropy.coordinates import SkyCoord

    packets = list(ClusteredSimulator(seed=11).packets(300))
    await ingest(processor, as_inputs(packets), batch_size=100)
    docs = [d async for d in store.db["objects"].find({})]
    positions = SkyCoord([d["meanra"] for d in docs], [d["meandec"] for d in docs],
                         unit="deg")
    # a cone around one object reaching just past its 6th nearest neighbour
    centre = positions[0]
    distances = centre.separation(positions).arcsec
    radius = float(np.sort(distances)[min(6, len(docs) - 1)]) + 0.5
    inside = sorted(d["_id"] for d, r in zip(docs, distances, strict=True) if r <= radius)
    assert 3 < len(inside) < len(docs)  # a cone that selects, pages and leaves some out
    query = """query($ra: Float!, $dec: Float!, $r: Float!, $after: String) {
        objects(cone: {ra: $ra, dec: $dec, radius: $r}, first: 2, after: $after) {
        nodes { oid } pageInfo { hasNextPage endCursor } } }"""
    seen: list[str] = []
    after = None
    while True:
        out = await _run(store, query, ra=centre.ra.deg, dec=centre.dec.deg, r=radius,
                         after=after)
        assert not out["errors"], out["errors"]
        page = out["data"]["objects"]
        assert len(page["nodes"]) <= 2
        seen += [n["oid"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == inside  # each object once, none skipped, in oid order

    # the smallest detection count present (a few-detection object: bogus, asteroid, ...)
    ndet_max = min(d["ndet"] for d in docs)
    few = sorted(d["_id"] for d in docs if d["ndet"] <= ndet_max)
    assert few and len(few) < len(docs)
    out = await _run(store, f"{{ objects(ndetMax: {ndet_max}, first: 500) "
                            "{ nodes { oid ndet } } }")
    assert [n["oid"] for n in out["data"]["objects"]["nodes"]] == few

    too_many = await _run(store, f"{{ objects(first: {MAX_PAGE + 1}) {{ nodes {{ oid }} }} }}")
    assert too_many["data"] is None and f"largest page is {MAX_PAGE}" in too_many["errors"][0]
    most = await _run(store, f"{{ objects(first: {MAX_PAGE}) {{ nodes {{ oid }} }} }}")
    assert not most["errors"] and len(most["data"]["objects"]["nodes"]) == min(len(docs),
                                                                               MAX_PAGE)


def test_breaking_change_check_tells_breaking_from_additive() -> None:
    from tools.graphql_breaking import check

    sdl = (ROOT / "graphql" / "schema.graphql").read_text()
    assert check(sdl, sdl) == ([], [])
    added = sdl.replace("type Query {", "type Query {\n  ping: String")
    assert check(sdl, added)[0] == []
    removed = sdl.replace("  gRMean: Float\n", "", 1)
    assert any("gRMean" in b for b in check(sdl, removed)[0])
    narrowed = sdl.replace("first: Int = null, after", "first: Int!, after", 1)
    assert any("first" in b for b in check(sdl, narrowed)[0])
