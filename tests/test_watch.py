"""Watchlists and watchmaps: reading, exact great-circle matching, live and retroactive
matches on both surveys, filters that name them, a 10^6-row list, real-format sky maps."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from mocpy import MOC

from nightjar.core.watch import (
    MAX_RADIUS_ARCSEC,
    WatchlistError,
    WatchlistIndex,
    WatchRows,
    hpx29,
    read_watchlist,
)
from nightjar.runner.filters import OPERATOR
from nightjar.runner.ingest import RawInput, expand_paths, iter_inputs
from nightjar.runner.watch import read_watchmap
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.lsst.simulate import LsstSimulator
from tests.conftest import ROOT
from tests.test_filters import Deployment, deployment


# -- reading -------------------------------------------------------------------------------
def test_csv_rows_with_and_without_radius() -> None:
    rows = read_watchlist(b"name,ra,dec,radius\nA,10.5,-3.25,5\nB,359.9,89.99,\n",
                          default_radius=3.0)
    assert rows.names == ["A", "B"]
    assert rows.radius.tolist() == [5.0, 3.0]
    assert rows.ra.tolist() == [10.5, 359.9] and rows.dec.tolist() == [-3.25, 89.99]


def test_a_radius_over_one_degree_is_refused_with_its_row() -> None:
    data = b"name,ra,dec,radius\nA,1,1,2\nB,2,2,3600\nC,3,3,3600.5\n"
    with pytest.raises(WatchlistError) as caught:
        read_watchlist(data)
    assert caught.value.row == 3
    assert "3600.5 arcsec is over the maximum of 3600 arcsec" in str(caught.value)
    assert MAX_RADIUS_ARCSEC == 3600.0


@pytest.mark.parametrize(("data", "row", "words"), [
    (b"name,ra,dec\nA,400,1\n", 1, "outside [0, 360]"),
    (b"name,ra,dec\nA,1,1\nB,1,-91\n", 2, "outside [-90, 90]"),
    (b"name,ra,dec\nA,x,1\n", 1, "numbers in degrees"),
    (b"name,ra,dec,radius\nA,1,1,-2\n", 1, "must be positive"),
    (b"name,dec\nA,1\n", None, "no ra column"),
    (b"", None, "empty"),
])
def test_bad_rows_are_refused_clearly(data: bytes, row: int | None, words: str) -> None:
    with pytest.raises(WatchlistError) as caught:
        read_watchlist(data)
    assert caught.value.row == row and words in str(caught.value)


def test_votable() -> None:
    from astropy.io.votable.tree import Field, Resource, TableElement, VOTableFile

    votable = VOTableFile()
    resource = Resource()
    votable.resources.append(resource)
    table = TableElement(votable)
    resource.tables.append(table)
    table.fields.extend([
        Field(votable, name="src", datatype="char", arraysize="*", ucd="meta.id;meta.main"),
        Field(votable, name="RAJ2000", datatype="double", ucd="pos.eq.ra;meta.main"),
        Field(votable, name="DEJ2000", datatype="double", ucd="pos.eq.dec;meta.main"),
        Field(votable, name="radius", datatype="double")])
    table.create_arrays(2)
    table.array[0] = ("host-1", 150.0, 2.2, 4.0)
    table.array[1] = ("host-2", 0.001, -45.0, 1.5)
    buffer = io.BytesIO()
    votable.to_xml(buffer)
    rows = read_watchlist(buffer.getvalue())
    assert rows.names == ["host-1", "host-2"]
    assert rows.radius.tolist() == [4.0, 1.5] and rows.ra.tolist() == [150.0, 0.001]


# -- matching against an independent computation -----------------------------------------------
def test_matching_equals_astropy_across_ra_zero_and_at_the_poles() -> None:
    rng = np.random.default_rng(3)
    # rows bunched where flat-sky code fails: across RA 0/360 and within a degree of both
    # poles, with radii from 1 arcsec to 1 deg
    n = 3000
    ra = np.concatenate([rng.uniform(359.0, 360.0, n // 3) % 360.0,
                         rng.uniform(0.0, 1.0, n // 3), rng.uniform(0.0, 360.0, n - 2 * (n // 3))])
    dec = np.concatenate([rng.uniform(-10, 10, 2 * (n // 3)),
                          rng.choice([-1, 1], n - 2 * (n // 3)) * rng.uniform(89.0, 90.0,
                                                                              n - 2 * (n // 3))])
    radius = np.exp(rng.uniform(np.log(1.0), np.log(3600.0), n))
    rows = WatchRows([f"r{i}" for i in range(n)], ra, dec, radius)
    index = WatchlistIndex(rows)
    catalogue = SkyCoord(ra * u.deg, dec * u.deg)
    # probes near the rows (within 2 radii) and anywhere in the same regions
    pick = rng.integers(0, n, 400)
    offsets = rng.uniform(0, 2, 400) * radius[pick] / 3600.0
    angles = rng.uniform(0, 360, 400)
    near = catalogue[pick].directional_offset_by(angles * u.deg, offsets * u.deg)
    probes = [*zip(near.ra.deg, near.dec.deg, strict=True),
              (0.0, 0.0), (359.9999, 0.0), (0.0, 90.0), (123.0, -90.0), (180.0, 89.9)]
    # the base pixels' corners, where a pixel has 7 neighbours, not 8
    corner = float(np.degrees(np.arcsin(2 / 3)))
    probes += [(ra_c, dec_c) for ra_c in (0.0, 45.0, 90.0, 315.0)
               for dec_c in (corner, -corner, 0.0)]
    found_any = 0
    margin = 300.0  # beyond what a pixel's neighbours reach for the small radii
    batch = index.matches_many([p[0] for p in probes], [p[1] for p in probes])
    wide = index.matches_many([p[0] for p in probes], [p[1] for p in probes], margin)
    for i, (p_ra, p_dec) in enumerate(probes):
        sep = SkyCoord(p_ra * u.deg, p_dec * u.deg).separation(catalogue).arcsec
        expected = set(np.flatnonzero(sep <= radius).tolist())
        got = {row for row, _ in index.matches(float(p_ra), float(p_dec))}
        assert got == expected, (p_ra, p_dec)
        # the pipeline's batched look-up: the same rows, position by position
        assert set(batch[1][batch[0] == i].tolist()) == expected
        assert set(wide[1][wide[0] == i].tolist()) == set(
            np.flatnonzero(sep <= radius + margin).tolist())
        found_any += bool(expected)
        for row, s in index.matches(float(p_ra), float(p_dec)):
            assert abs(s - sep[row]) < 1e-6
    assert found_any > 150  # the probes did land inside rows


# -- on the stream and over the archive --------------------------------------------------------
def _csv(rows: list[tuple[str, float, float, float]]) -> bytes:
    return ("name,ra,dec,radius\n" + "".join(f"{n},{r!r},{d!r},{rad!r}\n"
                                             for n, r, d, rad in rows)).encode()


def _lsst_at(seed: int, positions: list[tuple[float, float]], start: float = 61000.0
             ) -> list[RawInput]:
    sim = LsstSimulator(seed=seed)
    out = []
    for k, pos in enumerate(positions):
        obj = sim.make_object(sim.field_visits(start, start + 20.0), pos, kind="periodic")
        out += [RawInput(sim.encode(sim.alert(obj, i)), AlertSource("file", path=f"s{k}/{i}"))
                for i, e in enumerate(obj.epochs) if e.detected]
    return out


async def _stored_positions(dep: Deployment, n: int) -> list[tuple[str, float, float]]:
    docs = await dep.store.db.detections.find(
        {"parent_candid": None}, {"oid": 1, "ra": 1, "dec": 1}).sort("_id", 1).limit(
        n).to_list(None)
    return [(d["oid"], d["ra"], d["dec"]) for d in docs]


async def test_live_and_retroactive_matches_agree(mongo_uri: str, tmp_path: Path,
                                                  shared_data: Path) -> None:
    ztf = list(iter_inputs(expand_paths([shared_data / "ztf" / "alerts" / "ztf-avro-alert",
                                         shared_data / "ztf" / "alerts" / "alerce"])))
    lsst_positions = [(0.0004, 1.0), (359.9995, -1.0), (45.0, 89.9)]
    async with deployment(mongo_uri, tmp_path) as probe:  # where the real alerts fall
        await probe.ingest(ztf)
        targets = await _stored_positions(probe, 25)
    rows = [(f"t{i}", ra + 0.5 / 3600, dec, 3.0) for i, (_, ra, dec) in enumerate(targets)]
    rows += [(f"lsst{i}", ra, dec, 5.0) for i, (ra, dec) in enumerate(lsst_positions)]
    rows += [("nothing", 200.0, -60.0, 2.0)]
    data = _csv(rows)
    lsst = _lsst_at(77, lsst_positions)
    async with deployment(mongo_uri, tmp_path / "a") as live:
        made = await live.watch.create_list(OPERATOR, "hosts", data)
        assert made["rows"] == len(rows) and made["state"] == "ready"
        await live.service.create(OPERATOR, "in-hosts", 'in_watchlist("hosts")')
        await live.ingest(ztf + lsst, batch_size=50)
        _, live_found = await live.watch.matches(OPERATOR, "hosts", first=100_000)
        _, filter_found = await live.service.matches(OPERATOR, "in-hosts", first=100_000)
        # the same filter over the archive (its watchlist look-ups batched per chunk)
        await live.service.create(OPERATOR, "in-hosts-again", 'in_watchlist("hosts")')
        await live.service.backfill(OPERATOR, "in-hosts-again")
        _, backfilled = await live.service.matches(OPERATOR, "in-hosts-again", first=100_000)
        assert sorted((m["oid"], m["alert_id"]) for m in backfilled) == sorted(
            (m["oid"], m["alert_id"]) for m in filter_found)
    async with deployment(mongo_uri, tmp_path / "b") as later:
        await later.ingest(ztf + lsst, batch_size=50)
        made = await later.watch.create_list(OPERATOR, "hosts", data)
        assert made["retroactive"]["done"]
        _, retro_found = await later.watch.matches(OPERATOR, "hosts", first=100_000)

    def key(m: dict) -> tuple:
        return (m["row_name"], m["oid"], m["alert_id"], round(m["separation_arcsec"], 6))

    assert sorted(map(key, live_found)) == sorted(map(key, retro_found))
    assert {m["source"] for m in retro_found} == {"retroactive"}
    names = {m["row_name"] for m in live_found}
    assert {"lsst0", "lsst1", "lsst2"} <= names and "nothing" not in names
    assert {f"t{i}" for i in range(25)} <= names
    assert {m["survey"] for m in live_found} == {"ZTF", "LSST"}
    # the filter matched exactly the alerts the list matched
    assert {m["alert_id"] for m in filter_found} == {m["alert_id"] for m in live_found}
    for m in live_found:  # independent check of every separation
        expected = SkyCoord(m["ra"] * u.deg, m["dec"] * u.deg).separation(
            SkyCoord(m["row_ra"] * u.deg, m["row_dec"] * u.deg)).arcsec
        assert abs(expected - m["separation_arcsec"]) < 1e-6
        assert m["separation_arcsec"] <= m["radius_arcsec"]


async def test_rows_added_and_removed(mongo_uri: str, tmp_path: Path) -> None:
    positions = [(10.0, 10.0), (20.0, 20.0)]
    async with deployment(mongo_uri, tmp_path) as dep:
        await dep.ingest(_lsst_at(5, positions))
        await dep.watch.create_list("alice", "mine", _csv([("a", 10.0, 10.0, 4.0)]))
        _, found = await dep.watch.matches("alice", "mine")
        assert {m["row_name"] for m in found} == {"a"}
        grown = await dep.watch.add_rows("alice", "mine", _csv([("b", 20.0, 20.0, 4.0)]))
        assert grown["rows"] == 2
        _, found = await dep.watch.matches("alice", "mine")
        assert {m["row_name"] for m in found} == {"a", "b"}  # retroactive for the new row
        assert await dep.watch.remove_rows("alice", "mine", names=["a"]) == 1
        ids, rows = await dep.watch.rows_of("alice", "mine")
        assert rows.names == ["b"] and ids.tolist() == [1]
        await dep.ingest(_lsst_at(6, [(10.0, 10.0)], start=61100.0))
        _, found = await dep.watch.matches("alice", "mine", first=10_000)
        late = [m for m in found if m["mjd"] > 61099]
        assert not late  # the removed row no longer matches new alerts
        with pytest.raises(PermissionError):
            await dep.watch.matches("bob", "mine")


async def test_a_million_row_watchlist(mongo_uri: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    n = 1_000_000
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    targets = [(33.3, -12.1), (300.2, 45.6)]
    ra[:2] = [t[0] for t in targets]
    dec[:2] = [t[1] for t in targets]
    lines = ["name,ra,dec"] + [f"s{i},{ra[i]:.7f},{dec[i]:.7f}" for i in range(n)]
    data = ("\n".join(lines) + "\n").encode()
    progress: list[tuple[str, int, int]] = []
    async with deployment(mongo_uri, tmp_path) as dep:
        doc = await dep.watch.create_list(
            OPERATOR, "million", data, retroactive=False,
            progress=lambda p: progress.append((p.stage, p.done, p.total)))
        assert doc["rows"] == n and doc["state"] == "ready"
        assert progress[-1] == ("rows", n, n) and len(progress) >= 10
        await dep.ingest(_lsst_at(12, targets))
        _, found = await dep.watch.matches(OPERATOR, "million", first=100_000)
        assert {m["row_name"] for m in found} >= {"s0", "s1"}
        assert all(m["separation_arcsec"] <= 2.0 for m in found)


# -- watchmaps -------------------------------------------------------------------------------
SKYMAP = "skymaps/MS181101ab.multiorder.fits"


def test_skymap_credible_region_agrees_with_mocpy(shared_data: Path) -> None:
    path = shared_data / SKYMAP
    region, meta, kind = read_watchmap(path.read_bytes())
    assert kind == "skymap" and meta["object"] == "MS181101ab"
    assert abs(meta["mjd"] - 58423.93248442635) < 1e-9
    moc90 = MOC.from_multiordermap_fits_file(path, cumul_from=0.0, cumul_to=0.9)
    inside = region.within(0.9)
    assert abs(inside.area_deg2 - moc90.sky_fraction * 41252.96) / inside.area_deg2 < 0.02
    rng = np.random.default_rng(1)
    # probes where the map is: around its densest pixels and across the sky
    centres = [(float(r), float(d)) for r, d in zip(
        rng.uniform(0, 360, 3000), np.degrees(np.arcsin(rng.uniform(-1, 1, 3000))),
        strict=True)]
    agree = disagree = 0
    for ra, dec in centres:
        level = region.level_at(int(hpx29(ra, dec)))
        mine = level is not None and level <= 0.9
        theirs = bool(moc90.contains_lonlat(ra * u.deg, dec * u.deg)[0])
        agree += mine == theirs
        disagree += mine != theirs
    assert disagree <= 0.01 * len(centres)  # mocpy splits pixels at the boundary


def test_moc_files_of_both_encodings(shared_data: Path) -> None:
    for name in ("moc_range_ar_1.fits", "moc_nuniq_sample_area.fits"):
        path = shared_data / "skymaps" / name
        region, _, kind = read_watchmap(path.read_bytes())
        assert kind == "moc"
        moc = MOC.from_fits(path)
        assert abs(region.area_deg2 - moc.sky_fraction * 41252.96) < 1e-6 * 41252.96
        rng = np.random.default_rng(2)
        cells = moc.to_depth29_ranges[:50]
        for lo, hi in cells:  # a point inside each range, and one just outside the MOC
            pixel = int(lo + (hi - lo) // 2)
            assert region.level_at(pixel) == 0.0
        ra, dec = rng.uniform(0, 360, 2000), np.degrees(np.arcsin(rng.uniform(-1, 1, 2000)))
        theirs = moc.contains_lonlat(ra * u.deg, dec * u.deg)
        mine = [region.level_at(int(p)) is not None for p in hpx29(ra, dec)]
        assert mine == theirs.tolist()


def test_a_non_map_is_refused() -> None:
    with pytest.raises(ValueError, match="not a FITS file"):
        read_watchmap(b"name,ra,dec\n")


async def test_in_watchmap_live(mongo_uri: str, tmp_path: Path, shared_data: Path) -> None:
    region, _, _ = read_watchmap((shared_data / SKYMAP).read_bytes())
    densest = int(np.argmin(region.levels))
    import healpy

    ra, dec = healpy.pix2ang(1 << 29, int(region.starts[densest]), nest=True, lonlat=True)
    outside = (float(ra) + 180.0) % 360.0, -float(dec)
    async with deployment(mongo_uri, tmp_path) as dep:
        made = await dep.watch.create_map(OPERATOR, "S181101", (shared_data / SKYMAP).read_bytes(),
                                          since=60999.0, until=61030.0)
        assert made["kind"] == "skymap" and 0 < made["area90_deg2"] < 2000
        await dep.service.create(OPERATOR, "in-gw", 'in_watchmap("S181101", 0.9)')
        await dep.ingest(_lsst_at(20, [(float(ra), float(dec)), outside], start=61000.0))
        await dep.ingest(_lsst_at(21, [(float(ra) + 1e-5, float(dec))], start=61040.0))
        _, found = await dep.service.matches(OPERATOR, "in-gw", first=1000)
        assert found and all(61000.0 <= m["mjd"] <= 61030.0 for m in found)
        assert all(abs(m["dec"] - dec) < 0.01 for m in found)  # none from the far object
        assert all(m["read"]["watchmap_level(" + made["_id"] + ")"] <= 0.9 for m in found)


def test_cli_watchlist_and_watchmap(mongo_uri: str, tmp_path: Path, shared_data: Path) -> None:
    env = {**os.environ, "NIGHTJAR_HOME": str(tmp_path), "MONGODB_URI": mongo_uri,
           "NIGHTJAR_DATABASE": f"nightjar_wcli_{uuid.uuid4().hex[:8]}", "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nightjar.cli", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=300)

    alerts = shared_data / "ztf" / "alerts" / "ztf-avro-alert"
    assert run("ingest", str(alerts)).returncode == 0
    listing = tmp_path / "targets.csv"
    big = tmp_path / "big.csv"
    big.write_text("name,ra,dec,radius\nok,1,1,2\nhuge,2,2,7200\n")
    refused = run("watchlist", "create", "big", str(big))
    assert refused.returncode == 1 and "row 2: radius 7200 arcsec" in refused.stderr
    from fastavro import reader

    first = next(iter(sorted(alerts.glob("*.avro"))))
    with first.open("rb") as fh:
        record = next(reader(fh))
    ra, dec = record["candidate"]["ra"], record["candidate"]["dec"]
    listing.write_text(f"name,ra,dec\ntarget,{ra},{dec}\n")
    made = run("watchlist", "create", "targets", str(listing), "--radius", "3")
    assert made.returncode == 0, made.stderr
    as_json = json.loads(run("watchlist", "matches", "targets", "--format", "json").stdout)
    assert as_json and {m["row_name"] for m in as_json} == {"target"}
    assert str(record["candid"]) in {m["alert_id"] for m in as_json}
    as_csv = run("watchlist", "matches", "targets", "--format", "csv").stdout.splitlines()
    assert as_csv[0].startswith("list_name,row_id,row_name,oid") and len(as_csv) == len(
        as_json) + 1
    made_map = run("watchmap", "create", "gw", str(shared_data / SKYMAP))
    assert made_map.returncode == 0, made_map.stderr
    assert json.loads(made_map.stdout)["kind"] == "skymap"
    uses = run("filter", "create", "gw-f", "-e", 'in_watchmap("gw", 0.9) || '
               'in_watchlist("targets")')
    assert uses.returncode == 0, uses.stderr
