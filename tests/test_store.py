"""Store queries: cone search over HEALPix ranges, pagination, indexes, shard script."""

from __future__ import annotations

import numpy as np
import pytest

from nightjar.runner.ingest import BatchProcessor, ingest
from nightjar.sky import cone_ranges, hpx_index, separation_deg
from nightjar.store import Cone, NightjarStore, ObjectFilter
from nightjar.store.schema import COLLECTIONS, shard_script
from tests.conftest import as_inputs


async def test_cone_search_matches_brute_force(
        store: NightjarStore, processor: BatchProcessor,
        simulated: list[tuple[str, int, bytes]]) -> None:
    await ingest(processor, as_inputs(simulated), batch_size=100)
    objects = [d async for d in store.db["objects"].find({})]
    for obj in objects[:5]:
        for radius in (2.0, 3600.0 * 5):
            cone = Cone(obj["meanra"], obj["meandec"], radius)
            found = (await store.find_objects(ObjectFilter(cone=cone), limit=500)).docs
            expected = sorted(o["_id"] for o in objects if separation_deg(
                cone.ra, cone.dec, o["meanra"], o["meandec"]) * 3600 <= radius)
            assert sorted(d["_id"] for d in found) == expected
            assert obj["_id"] in expected


async def test_filters_and_pagination_cover_everything_once(
        store: NightjarStore, processor: BatchProcessor,
        simulated: list[tuple[str, int, bytes]]) -> None:
    await ingest(processor, as_inputs(simulated), batch_size=100)
    flt = ObjectFilter(ndet_min=2)
    seen: list[str] = []
    after = None
    while True:
        page = await store.find_objects(flt, after=after, limit=3)
        seen += [d["_id"] for d in page.docs]
        if not page.has_next:
            break
        after = page.keys[-1]
    expected = sorted([d["_id"] async for d in store.db["objects"].find({"ndet": {"$gte": 2}})])
    assert seen == expected and len(expected) > 3


def test_cone_ranges_cover_points_in_the_cone_everywhere() -> None:
    rng = np.random.default_rng(0)
    centres = [(0.0, 89.99), (359.999, 0.0), (0.001, -45.0), (180.0, -89.95)]
    centres += [(float(rng.uniform(0, 360)), float(rng.uniform(-90, 90))) for _ in range(20)]
    for ra, dec in centres:
        radius = float(rng.choice([1 / 3600, 30 / 3600, 0.5, 5.0]))
        ranges = cone_ranges(ra, dec, radius)
        for _ in range(40):
            # random points within the cone, across RA = 0 and the poles
            offset = radius * np.sqrt(rng.uniform(0, 1))
            angle = rng.uniform(0, 2 * np.pi)
            dec2 = float(np.clip(dec + offset * np.sin(angle), -90, 90))
            ra2 = float((ra + offset * np.cos(angle) / max(np.cos(np.radians(dec2)), 1e-3))
                        % 360)
            if separation_deg(ra, dec, ra2, dec2) > radius:
                continue
            pix = hpx_index(ra2, dec2)
            assert any(lo <= pix < hi for lo, hi in ranges), (ra, dec, radius, ra2, dec2)


def test_bad_cones_are_refused() -> None:
    for args in ((float("nan"), 0.0, 1.0), (10.0, 95.0, 1.0), (10.0, 0.0, -1.0)):
        with pytest.raises(ValueError):
            Cone(*args)


async def test_db_init_creates_the_shard_key_and_light_curve_indexes(
        store: NightjarStore) -> None:
    keys = await store.index_keys()
    # written out here, not read from the code's own list: the shard key {hpx: 1, oid: 1}
    # on every sharded collection, and each light curve read by object in time order
    for name in ("objects", "detections", "non_detections", "forced_photometry"):
        assert (("hpx", 1), ("oid", 1)) in keys[name], name
    for name in ("detections", "non_detections", "forced_photometry"):
        assert (("oid", 1), ("mjd", 1)) in keys[name], name
    for name, field in (("objects", "ndet"), ("objects", "firstmjd"),
                        ("objects", "lastmjd"), ("dead_letters", "reason")):
        assert ((field, 1),) in keys[name], (name, field)


def test_shard_script_shards_every_collection_by_hpx_and_oid() -> None:
    script = shard_script("nightjar", ["rs0", "rs1"], zone_order=1)
    for spec in COLLECTIONS:  # the small feed collections stay unsharded (on the primary)
        sharded = f'sh.shardCollection("nightjar.{spec.name}"' in script
        assert sharded == (spec.shard_key is not None), spec.name
    assert script.count('sh.shardCollection("nightjar.detections", {hpx: 1, oid: 1})') == 1
    assert 'sh.addShardToZone("rs1", "sky-1")' in script
    # the zone ranges of one collection tile the order-29 index space without gaps
    lines = [ln for ln in script.splitlines() if "updateZoneKeyRange(\"nightjar.objects\"" in ln]
    assert len(lines) == 2 and "MaxKey" in lines[-1]
