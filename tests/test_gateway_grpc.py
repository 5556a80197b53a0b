"""The GraphQL gateway answers `tns` and `coneSearch` through the real gRPC services."""

from __future__ import annotations

from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.parquet as pq

from nightjar.context.catalogs import CatalogStore, import_catalog
from nightjar.context.tns import SNAPSHOT, parse_public_objects
from nightjar.runner.ingest import BatchProcessor, ingest
from nightjar.store import NightjarStore
from nightjar.store.archive import LocalArchive
from services.catalog.servicer import catalog_service
from services.gateway.schema import GatewayContext, schema
from services.grpc_server import start_server, stop_server
from services.tns.servicer import tns_service
from tests.conftest import as_inputs
from tests.fake_tns import public_objects_zip

QUERY = """query($oid: String!, $ra: Float!, $dec: Float!) {
  object(oid: $oid) { oid tns { name type redshift distanceArcsec } }
  coneSearch(catalog: "stars", ra: $ra, dec: $dec, radius: 5) { sourceId distanceArcsec columns }
}"""


async def test_tns_and_cone_search_through_grpc(store: NightjarStore, tmp_path: Path,
                                                simulated: list[tuple[str, int, bytes]]) -> None:
    await ingest(BatchProcessor(store, LocalArchive(tmp_path / "a")), as_inputs(simulated), 500)
    oid = simulated[0][0]
    obj = await store.get_object(oid)
    ra, dec = obj["meanra"], obj["meandec"]
    (tmp_path / "tns").mkdir()
    pq.write_table(parse_public_objects(public_objects_zip([{
        "objid": 7, "name_prefix": "SN", "name": "2026abc", "ra": ra, "declination": dec,
        "type": "SN Ia", "redshift": 0.03}])), tmp_path / "tns" / SNAPSHOT)
    pq.write_table(pa.table({"ra": [ra], "dec": [dec + 1 / 3600], "vmag": [15.5]}),
                   tmp_path / "stars.parquet")
    import_catalog(tmp_path / "stars.parquet", "stars", tmp_path / "cats")
    running = await start_server([catalog_service(CatalogStore(tmp_path / "cats")),
                                  tns_service(tmp_path / "tns")], "127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            reply = await schema.execute(QUERY, variable_values={"oid": oid, "ra": ra,
                                                                 "dec": dec},
                                         context_value=GatewayContext(store, channel))
            assert reply.errors is None, reply.errors
            tns = reply.data["object"]["tns"]
            assert (tns["name"], tns["type"], tns["redshift"]) == ("SN 2026abc", "SN Ia", 0.03)
            assert tns["distanceArcsec"] < 0.01
            (star,) = reply.data["coneSearch"]
            assert star["sourceId"] == "0" and abs(star["distanceArcsec"] - 1.0) < 1e-6
            assert star["columns"]["vmag"] == 15.5
            bad = await schema.execute(
                '{ coneSearch(catalog: "nope", ra: 1, dec: 1, radius: 5) { sourceId } }',
                context_value=GatewayContext(store, channel))
            assert bad.errors and bad.errors[0].extensions["code"] == "NOT_FOUND"
            assert "no catalogue" in bad.errors[0].message
    finally:
        await stop_server(running, grace=1)
    unconfigured = await schema.execute(
        '{ coneSearch(catalog: "stars", ra: 1, dec: 1, radius: 5) { sourceId } }',
        context_value=GatewayContext(store))
    assert unconfigured.errors and "no gRPC services" in unconfigured.errors[0].message
