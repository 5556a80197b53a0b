"""The pipeline's xmatch step: new objects get the nearest source per catalogue."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import SkyCoord

from nightjar.context.catalogs import import_catalog
from nightjar.runner.ingest import BatchProcessor
from nightjar.runner.records import classification_messages, decode
from nightjar.runner.topology import configured_topology
from nightjar.settings import Settings
from nightjar.store import NightjarStore
from nightjar.store.archive import LocalArchive
from nightjar.surveys.avro import AlertDecoder
from services.gateway.schema import GatewayContext, schema
from tests.conftest import as_inputs


async def test_new_objects_get_their_nearest_catalogue_source(
        store: NightjarStore, tmp_path: Path, simulated: list[tuple[str, int, bytes]]) -> None:
    decoder = AlertDecoder()
    first: dict[str, tuple[float, float]] = {}
    for oid, _, raw in simulated:
        cand = decoder.decode(raw)[0]["candidate"]
        first.setdefault(oid, (cand["ra"], cand["dec"]))
    oids = sorted(first)
    near, far = oids[0], oids[1]
    # a star 0.4″ north of `near` and one 30″ from `far` (beyond the 2″ default radius)
    stars = {"name": ["star-near", "star-far"],
             "ra": [first[near][0], first[far][0]],
             "dec": [first[near][1] + 0.4 / 3600, first[far][1] + 30 / 3600]}
    pq.write_table(pa.table(stars), tmp_path / "stars.parquet")
    settings = Settings(home=tmp_path / "home")
    import_catalog(tmp_path / "stars.parquet", "stars", settings.catalog_path, id_col="name",
                   default_radius_arcsec=2.0)
    processor = BatchProcessor(store, LocalArchive(tmp_path / "archive"),
                               topology=configured_topology(settings))
    early, late = simulated[:150], simulated[150:]
    result = await processor.process(as_inputs(early))
    doc = await store.get_object(near)
    match = doc["xmatch"]["stars"]
    assert match["source_id"] == "star-near"
    # measured from the object's mean position (which wanders by the astrometric
    # scatter), in arcsec: astropy's separation of the two positions
    expected = SkyCoord(doc["meanra"], doc["meandec"], unit="deg").separation(
        SkyCoord(stars["ra"][0], stars["dec"][0], unit="deg")).arcsec
    assert 0.05 < expected < 2.0  # a real offset, inside the 2" radius
    assert match["distance_arcsec"] == pytest.approx(expected, abs=1e-3)
    assert "xmatch" not in (await store.get_object(far))
    records = [decode(v)[0] for _, v in classification_messages(
        result.alerts, result.objects, result.detections, 0)]
    assert {(r["oid"], x["source_id"]) for r in records for x in r["xmatch"]} >= {
        (near, "star-near")}
    # later alerts keep the match of the stored object (no re-match per alert)
    await processor.process(as_inputs(late))
    assert (await store.get_object(near))["xmatch"] == doc["xmatch"]
    # and GraphQL shows it
    reply = await schema.execute(
        "query($oid: String!) { object(oid: $oid) { xmatch { catalog sourceId } } }",
        variable_values={"oid": near}, context_value=GatewayContext(store))
    assert reply.errors is None
    assert reply.data == {"object": {"xmatch": [{"catalog": "stars", "sourceId": "star-near"}]}}


def test_unknown_configured_catalogue_fails_at_start(tmp_path: Path) -> None:
    pq.write_table(pa.table({"ra": [1.0], "dec": [1.0]}), tmp_path / "c.parquet")
    settings = Settings(home=tmp_path, xmatch_catalogs=["missing"])
    import_catalog(tmp_path / "c.parquet", "c", settings.catalog_path)
    with pytest.raises(KeyError, match="no catalogue 'missing'"):
        configured_topology(settings)
