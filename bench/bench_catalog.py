"""Latency of catalogue cone searches and cross-matches, in-process and over gRPC.

Run with ``make bench-catalog`` (or ``uv run python -m bench.bench_catalog``).  Imports
the real SPICY, GCVS, 3HSP and 4LAC catalogues from ``../shared/data/catalogs`` (or,
without them, a synthetic 120,000-row catalogue clustered like SPICY), then times 60″
cones on SPICY and Crossmatch over every catalogue at random catalogue positions.
Target: p99 < 10 ms over gRPC on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nightjar.context.catalogs import CatalogStore, import_catalog
from nightjar.settings import Settings
from nightjar.v1 import catalog_pb2, catalog_pb2_grpc
from services.catalog.servicer import catalog_service
from services.grpc_server import start_server, stop_server

REAL = {"spicy": ("spicy.parquet", None), "gcvs": ("gcvs.parquet", None),
        "3hsp": ("3hsp.csv", "3HSP Source name"), "4lac": ("table-4LAC-DR3-h.fits", "Source_Name")}


def summary(ms: list[float]) -> str:
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return f"p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms, max {max(ms):.2f} ms"


def prepare(root: Path, shared: Path) -> tuple[CatalogStore, np.ndarray]:
    catalogs = shared / "catalogs"
    if (catalogs / "spicy.parquet").exists():
        for name, (file, id_col) in REAL.items():
            import_catalog(catalogs / file, name, root, id_col=id_col)
        table = pq.read_table(catalogs / "spicy.parquet")
        positions = np.c_[table["RAdeg"].to_numpy(), table["DEdeg"].to_numpy()]
        print("catalogues: real SPICY, GCVS, 3HSP, 4LAC from", catalogs)
    else:
        rng = np.random.default_rng(0)
        lon = rng.uniform(0, 360, 120_000)
        lat = rng.normal(0, 2, 120_000)  # a band like the Galactic plane, in equatorial
        pq.write_table(pa.table({"ra": lon, "dec": lat}), root / "synthetic.parquet")
        import_catalog(root / "synthetic.parquet", "spicy", root / "store")
        root = root / "store"
        positions = np.c_[lon, lat]
        print(f"catalogues: synthetic 120,000 rows ({catalogs} not found)")
    return CatalogStore(root), positions


async def timed(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def run(store: CatalogStore, positions: np.ndarray, n: int) -> None:
    rng = np.random.default_rng(1)
    picks = positions[rng.choice(len(positions), n)]
    # small offsets so cones are not centred exactly on a source
    centres = [(float(ra) % 360, float(np.clip(dec + 10 / 3600, -90, 90))) for ra, dec in picks]
    it = itertools.cycle(centres)

    def cone() -> object:
        ra, dec = next(it)
        return store.cone("spicy", ra, dec, 60.0)

    def xmatch_all() -> object:
        ra, dec = next(it)
        return [store.nearest(name, ra, dec, 60.0) for name in store.infos]

    async def sync(fn: Callable[[], object]) -> object:
        return fn()

    print(f"in-process cone 60″ on spicy: {summary(await timed(lambda: sync(cone), n))}")
    print(f"in-process crossmatch all ({len(store.infos)} catalogues, 60″): "
          f"{summary(await timed(lambda: sync(xmatch_all), n))}")
    running = await start_server([catalog_service(store)], "127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)
            await stub.ListCatalogs(catalog_pb2.ListCatalogsRequest())  # connect first

            async def grpc_cone() -> object:
                ra, dec = next(it)
                return [r async for r in stub.ConeSearch(catalog_pb2.ConeSearchRequest(
                    catalog="spicy", ra=ra, dec=dec, radius_arcsec=60.0))]

            async def grpc_all() -> object:
                ra, dec = next(it)
                return await stub.Crossmatch(catalog_pb2.CrossmatchRequest(
                    ra=ra, dec=dec, radius_arcsec=60.0))

            print(f"gRPC ConeSearch 60″ on spicy: {summary(await timed(grpc_cone, n))}")
            print(f"gRPC Crossmatch all, 60″: {summary(await timed(grpc_all, n))}")
    finally:
        await stop_server(running, grace=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="queries per measurement")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  queries per line: {args.n}")
    with tempfile.TemporaryDirectory(prefix="nightjar-bench-cat-") as tmp:
        shared = Settings().shared_data
        store, positions = prepare(Path(tmp), shared)
        asyncio.run(run(store, positions, args.n))


if __name__ == "__main__":
    main()
