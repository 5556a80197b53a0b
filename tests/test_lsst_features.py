"""LSST light-curve features: six bands, on real Rubin light curves and simulated ones."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest

from ml.features.extract import enough_detections, extract, preprocess
from ml.features.names import FEATURE_NAMES, LSST_BANDS, LSST_FEATURE_NAMES, ZTF_BANDS
from nightjar.core.lightcurve import ObjectHistory, correct_object, merge_alerts
from nightjar.runner.classify import lsst_light_curve_of
from nightjar.surveys.interface import AlertSource, ParsedAlert
from nightjar.surveys.lsst.fink import rows, wire_messages
from nightjar.surveys.lsst.photometry import LsstPhotometry
from nightjar.surveys.registry import AlertParser

LSST_SUFFIXES = ("u", "g", "r", "i", "z", "y")


def test_lsst_feature_names_cover_six_bands_and_adjacent_colours() -> None:
    assert len(set(LSST_FEATURE_NAMES)) == len(LSST_FEATURE_NAMES)
    per_band = [n for n in LSST_FEATURE_NAMES if n.startswith("Amplitude_")]
    assert per_band == [f"Amplitude_{b}" for b in LSST_SUFFIXES]
    colours = sorted({n.split("_")[0] for n in LSST_FEATURE_NAMES if "-" in n})
    assert colours == ["g-r", "i-z", "r-i", "u-g", "z-y"]  # adjacent pairs only
    assert not any(n.startswith(("W1", "W2", "sgscore")) for n in LSST_FEATURE_NAMES)
    assert ZTF_BANDS.names == FEATURE_NAMES  # the ZTF names are ALeRCE's, unchanged


def _real_lsst_objects(shared_data: Path) -> dict[str, list[ParsedAlert]]:
    parser = AlertParser()
    by_object: dict[str, list[ParsedAlert]] = defaultdict(list)
    table = rows(shared_data / "lsst" / "fink" / "rubin_sample_data_10_0.parquet")
    for i, message in enumerate(wire_messages(table, 1000)):
        alerts, dead = parser.parse(message, AlertSource("file", path=f"lsst/{i}"))
        assert not dead
        for alert in alerts:
            if alert.has_object:
                by_object[alert.oid].append(alert)
    return by_object


@pytest.mark.shared
def test_features_of_real_rubin_light_curves(shared_data: Path) -> None:
    """Real deep-drilling light curves: per-band features from the apparent magnitudes
    of each band with detections, NaN with a reason for bands without, SPM on the
    difference fluxes."""
    computed = 0
    bands_seen: set[str] = set()
    for alerts in _real_lsst_objects(shared_data).values():
        state = correct_object(merge_alerts(ObjectHistory(alerts[0].oid), alerts,
                                            LsstPhotometry()))
        lc = lsst_light_curve_of(state.corrected, state.non_detections)
        if not enough_detections(preprocess(lc, LSST_BANDS), LSST_BANDS):
            continue
        computed += 1
        vector = extract(lc, scheme=LSST_BANDS)
        values = vector.values
        assert set(values) == set(LSST_FEATURE_NAMES)
        assert math.isfinite(values["Multiband_period"])
        for band in LSST_SUFFIXES:
            dets = [d for d in state.corrected if d["band"] == band
                    and not d.get("withdrawn") and d.get("scienceFlux", 0) > 0]
            if not dets:
                assert math.isnan(values[f"Mean_{band}"])
                assert vector.missing[f"band {band}"] == "no detections in this band"
                continue
            bands_seen.add(band)
            # apparent magnitudes from scienceFlux, recomputed with astropy's AB units
            apparent = [float((d["scienceFlux"] * u.nJy).to(u.ABmag).value) for d in dets]
            assert values[f"Mean_{band}"] == pytest.approx(np.mean(apparent), abs=1e-3)
            if len(dets) >= 6:
                for name in ("Amplitude", "Std", "IAR_phi", "GP_DRW_tau", "MHPS_low",
                             "SPM_A", "SPM_chi"):
                    assert math.isfinite(values[f"{name}_{band}"]), (name, band)
                # SPM fits the difference flux (mJy), negative values included
                peak = max(d["psfFlux"] for d in dets) / 1e6
                assert peak / 3 <= values[f"SPM_A_{band}"] <= 3 * peak
            else:
                assert math.isnan(values[f"Std_{band}"])
                assert "fewer than 6" in vector.missing[f"band {band} statistics"]
    assert computed >= 2  # the sample holds several objects with >= 6 in one band
    assert len(bands_seen) >= 2


def test_six_band_colours_and_gate() -> None:
    """A synthetic six-band curve: colours between adjacent bands, per-band suffixes,
    and the gate counting detections per band (>= 6 in one band)."""
    from ml.features.extract import LightCurve

    rng = np.random.default_rng(0)
    fids = np.array([6, 1, 2, 3, 4, 5])
    offsets = {6: 21.0, 1: 20.5, 2: 20.2, 3: 20.0, 4: 19.9, 5: 19.85}  # bluer is fainter
    n = 8
    mjd = np.sort(rng.uniform(60000, 60300, n * 6))
    fid = np.tile(fids, n)
    mag = np.array([offsets[f] for f in fid]) + 0.3 * np.sin(2 * np.pi * mjd / 37.0)
    err = np.full(len(mjd), 0.03)
    diff = mag + 1.0 + 0.1 * fid  # difference magnitudes: other colours than apparent
    lc = LightCurve(mjd=mjd, fid=fid, mag=mag, err=err, magpsf=diff, sigmapsf=err,
                    isdiffpos=np.ones(len(mjd)), ra=53.1, dec=-28.1)
    values = extract(lc, scheme=LSST_BANDS).values
    mean = {f: mag[fid == f].mean() for f in fids}
    assert values["u-g_mean_corr"] == pytest.approx(mean[6] - mean[1])
    assert values["z-y_mean_corr"] == pytest.approx(mean[4] - mean[5])
    assert values["g-r_max"] == pytest.approx(diff[fid == 1].min()
                                              - diff[fid == 2].min())
    for band in LSST_SUFFIXES:
        assert math.isfinite(values[f"Std_{band}"])
    assert enough_detections(lc, LSST_BANDS)
    five_each = LightCurve(mjd=mjd[:30], fid=fid[:30], mag=mag[:30], err=err[:30],
                           magpsf=mag[:30], sigmapsf=err[:30], isdiffpos=np.ones(30))
    assert not enough_detections(five_each, LSST_BANDS)  # 30 points, but 5 per band
