"""The GraphQL schema against a real store: names, pagination, validation, operations."""

from __future__ import annotations

from pathlib import Path

from graphql import parse, validate
from nightjar.ingest import BatchProcessor, ingest
from nightjar.store import NightjarStore
from services.gateway.schema import GatewayContext, schema
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
