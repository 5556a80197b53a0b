"""Catalogue import and cone search: exactness against astropy, poles, RA wrap, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nightjar.context.catalogs import (
    CatalogError,
    CatalogStore,
    UnknownCatalog,
    import_catalog,
)


def _random_sky(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform on the sphere, plus dense clumps at both poles and across RA = 0/360."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    k = n // 8
    ra[:k] = rng.uniform(0, 360, k)
    dec[:k] = 90 - rng.uniform(0, 0.05, k)  # north pole clump
    ra[k:2 * k] = rng.uniform(0, 360, k)
    dec[k:2 * k] = -90 + rng.uniform(0, 0.05, k)  # south pole clump
    ra[2 * k:3 * k] = np.mod(rng.normal(0, 0.01, k), 360)  # straddling RA 0/360
    dec[2 * k:3 * k] = rng.normal(12, 0.01, k)
    return ra, dec


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[CatalogStore, SkyCoord]:
    root = tmp_path_factory.mktemp("cats")
    ra, dec = _random_sky(40_000, seed=3)
    path = root / "synthetic.parquet"
    pq.write_table(pa.table({"name": [f"s{i}" for i in range(len(ra))], "RAJ2000": ra,
                             "DEJ2000": dec, "mag": np.linspace(10, 20, len(ra))}), path)
    info, dropped = import_catalog(path, "synthetic", root / "store", id_col="name",
                                   default_radius_arcsec=5.0)
    assert dropped == 0 and info.row_count == len(ra)
    return CatalogStore(root / "store"), SkyCoord(ra * u.deg, dec * u.deg)


centres = st.one_of(
    st.tuples(st.floats(0, 360, exclude_max=True), st.floats(-90, 90)),
    st.tuples(st.floats(0, 360, exclude_max=True), st.floats(89.9, 90)),  # north pole
    st.tuples(st.floats(0, 360, exclude_max=True), st.floats(-90, -89.9)),  # south pole
    st.tuples(st.one_of(st.floats(0, 0.02), st.floats(359.98, 360, exclude_max=True)),
              st.floats(11.98, 12.02)),  # across RA 0/360
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(centre=centres, radius=st.floats(0.5, 3600))
def test_cone_equals_brute_force_astropy_separation(
        synthetic: tuple[CatalogStore, SkyCoord], centre: tuple[float, float],
        radius: float) -> None:
    store, sky = synthetic
    ra, dec = centre
    found = store.cone("synthetic", ra, dec, radius)
    sep = sky.separation(SkyCoord(ra * u.deg, dec * u.deg)).arcsec
    # rows within a hair of the edge may fall either way by rounding; exclude them
    inside = {f"s{i}" for i in np.flatnonzero(sep < radius - 1e-6)}
    edge = {f"s{i}" for i in np.flatnonzero(np.abs(sep - radius) <= 1e-6)}
    got = {s.source_id for s in found}
    assert inside <= got and got <= inside | edge
    distances = [s.distance_arcsec for s in found]
    assert distances == sorted(distances)
    for s in found[:20]:
        assert s.distance_arcsec == pytest.approx(sep[int(s.source_id[1:])], abs=1e-6)


def test_nearest_uses_the_default_radius(synthetic: tuple[CatalogStore, SkyCoord]) -> None:
    store, sky = synthetic
    target = sky[12345]
    near = store.nearest("synthetic", target.ra.deg, target.dec.deg)
    assert near is not None and near.distance_arcsec < 1e-6
    assert near.columns["mag"] == pytest.approx(10 + 10 * 12345 / (len(sky) - 1))
    offset = target.directional_offset_by(0 * u.deg, 6 * u.arcsec)  # beyond the default 5″
    alone = store.cone("synthetic", offset.ra.deg, offset.dec.deg, 5.0)
    assert store.nearest("synthetic", offset.ra.deg, offset.dec.deg) == (alone[0] if alone
                                                                          else None)


@pytest.mark.parametrize(("ra", "dec", "radius", "message"), [
    (float("nan"), 0.0, 10.0, "finite"),
    (10.0, float("inf"), 10.0, "finite"),
    (360.0, 0.0, 10.0, "outside \\[0, 360\\)"),
    (-1.0, 0.0, 10.0, "outside \\[0, 360\\)"),
    (10.0, 91.0, 10.0, "outside \\[-90, 90\\]"),
    (10.0, 0.0, 0.0, "radius"),
    (10.0, 0.0, -5.0, "radius"),
    (10.0, 0.0, 3601.0, "radius"),
])
def test_bad_cones_are_refused(synthetic: tuple[CatalogStore, SkyCoord], ra: float,
                               dec: float, radius: float, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        synthetic[0].cone("synthetic", ra, dec, radius)


def test_unknown_catalogue(synthetic: tuple[CatalogStore, SkyCoord]) -> None:
    with pytest.raises(UnknownCatalog, match=r"no catalogue 'nope'.*synthetic"):
        synthetic[0].cone("nope", 1.0, 1.0, 1.0)


def test_import_errors_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1.0], "y": [2.0]}), path)
    with pytest.raises(CatalogError, match="which column holds ra"):
        import_catalog(path, "t", tmp_path / "store")
    with pytest.raises(CatalogError, match="no column 'lon'"):
        import_catalog(path, "t", tmp_path / "store", ra_col="lon", dec_col="y")
    with pytest.raises(CatalogError, match="catalogue name"):
        import_catalog(path, "Bad Name", tmp_path / "store", ra_col="x", dec_col="y")
    off_sky = tmp_path / "off.parquet"
    pq.write_table(pa.table({"ra": [10.0, 400.0, float("nan")], "dec": [0.0, 0.0, 1.0]}),
                   off_sky)
    info, dropped = import_catalog(off_sky, "off", tmp_path / "store")
    assert (info.row_count, dropped) == (1, 2)


# ---------------------------------------------------------------- the real catalogues
REAL = {  # file, name, id column, rows (from ../shared/data/README.md)
    "gcvs": ("gcvs.parquet", None, 59_099),
    "spicy": ("spicy.parquet", None, 117_446),
    "3hsp": ("3hsp.csv", "3HSP Source name", 2_013),
    "4lac": ("table-4LAC-DR3-h.fits", "Source_Name", 3_407),
    "4lac-low": ("table-4LAC-DR3-l.fits", "Source_Name", 407),
}


@pytest.fixture(scope="module")
def real_catalogs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> CatalogStore:
    root = tmp_path_factory.mktemp("real-cats")
    for name, (file, id_col, rows) in REAL.items():
        info, dropped = import_catalog(shared_data / "catalogs" / file, name, root,
                                       id_col=id_col)
        assert (info.row_count, dropped) == (rows, 0), name
    return CatalogStore(root)


def test_real_catalogues_import_with_units_and_find_known_sources(
        real_catalogs: CatalogStore) -> None:
    # S And, the 1885 supernova in M31, is GCVS's first row: type SNI
    (s_and,) = real_catalogs.cone("gcvs", 10.6795833, 41.2680556, 2.0)
    assert s_and.columns["VarType"] == "SNI"
    # 3HSP positions are sexagesimal strings; the name encodes J000116.4+293534
    name_pos = SkyCoord("00h01m16.4s +29d35m34s")
    hits = real_catalogs.cone("3hsp", name_pos.ra.deg, name_pos.dec.deg, 3.0)
    assert [h.source_id for h in hits] == ["3HSPJ000116.4+293534"]
    units = {c.name: c.unit for c in real_catalogs.info("4lac").columns}
    assert units["RAJ2000"] == "deg" and units["DEJ2000"] == "deg"
    # SPICY is concentrated in the Galactic plane: a finer partition than GCVS
    assert real_catalogs.info("spicy").healpix_order > real_catalogs.info("gcvs").healpix_order


def test_real_cone_matches_astropy_on_spicy(real_catalogs: CatalogStore,
                                            shared_data: Path) -> None:
    table = pq.read_table(shared_data / "catalogs" / "spicy.parquet")
    sky = SkyCoord(table["RAdeg"].to_numpy() * u.deg, table["DEdeg"].to_numpy() * u.deg)
    rng = np.random.default_rng(5)
    for i in rng.choice(len(sky), 25, replace=False):
        centre = sky[i]
        got = {int(s.source_id) for s in real_catalogs.cone(
            "spicy", centre.ra.deg, centre.dec.deg, 120.0)}
        assert got == set(np.flatnonzero(sky.separation(centre).arcsec <= 120.0).tolist())
