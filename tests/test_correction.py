"""Light-curve correction (Förster et al. 2021, Appendix A) on hand-computed cases."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from nightjar.surveys.ztf.correction import (
    BAD_MAGNITUDE,
    correct_light_curve,
    correct_magnitude,
    is_stellar,
)

LOG2 = 2.5 * math.log10(2.0)  # magnitude of a factor-2 flux ratio


def det(candid: int, mjd: float, fid: int = 1, **kw: object) -> dict:
    base = {"candid": candid, "mjd": mjd, "fid": fid, "magpsf": 18.0, "sigmapsf": 0.1,
            "isdiffpos": "t", "distnr": 0.5, "magnr": 17.0, "sigmagnr": 0.05}
    return {**base, **kw}


def test_equal_reference_and_difference_flux_doubles_the_flux() -> None:
    # f_sci = f_ref + f_diff = 2 f_ref; errors: sqrt(0.1^2 - 0.06^2)/2 = 0.04, 0.1/2 = 0.05
    mag, sigma, sigma_ext = correct_magnitude(15.0, 0.1, 15.0, 0.06, +1)
    assert mag == pytest.approx(15.0 - LOG2)
    assert sigma == pytest.approx(0.04)
    assert sigma_ext == pytest.approx(0.05)


def test_negative_difference_halves_the_flux() -> None:
    # f_diff = f_ref / 2 and s = -1: f_sci = f_ref / 2, errors scale by f_diff/f_sci = 1
    mag, sigma, sigma_ext = correct_magnitude(15.0 + LOG2, 0.1, 15.0, 0.0, -1)
    assert mag == pytest.approx(15.0 + LOG2)
    assert sigma == pytest.approx(0.1)
    assert sigma_ext == pytest.approx(0.1)


def test_non_positive_science_flux_gives_100_everywhere() -> None:
    assert correct_magnitude(15.0, 0.1, 16.0, 0.05, -1) == (BAD_MAGNITUDE,) * 3
    assert correct_magnitude(15.0, 0.1, 15.0, 0.05, -1) == (BAD_MAGNITUDE,) * 3  # f_sci = 0


def test_negative_radicand_gives_100_for_sigma_only() -> None:
    # f_ref sigmagnr (1 x 0.5) exceeds f_diff sigmapsf (0.1 x 0.1)
    mag, sigma, sigma_ext = correct_magnitude(17.5, 0.1, 15.0, 0.5, +1)
    assert sigma == BAD_MAGNITUDE
    assert mag < 15.0 and sigma_ext < 0.1


@pytest.mark.parametrize("distnr, magnr", [(None, 17.0), (1.4, 17.0), (2.0, 17.0),
                                           (-999.0, 17.0), (0.3, None)])
def test_not_corrected_without_a_usable_reference_source(distnr: object, magnr: object) -> None:
    (out,) = correct_light_curve([det(1, 1.0, distnr=distnr, magnr=magnr)])
    assert out["corrected"] is False
    assert out["magpsf_corr"] is None and out["sigmapsf_corr"] is None
    assert out["sigmapsf_corr_ext"] is None
    assert out["magpsf"] == 18.0  # the uncorrected photometry is kept


def test_corrected_detection_gets_corrected_magnitudes() -> None:
    (out,) = correct_light_curve([det(1, 1.0, magpsf=15.0, magnr=15.0, sigmagnr=0.06)])
    assert out["corrected"] is True
    assert out["magpsf_corr"] == pytest.approx(15.0 - LOG2)


def test_uncorrected_negative_detection_is_dubious() -> None:
    pos, neg = correct_light_curve([det(1, 1.0, distnr=3.0), det(2, 2.0, distnr=3.0,
                                                                isdiffpos="f")])
    assert not pos["dubious"] and neg["dubious"]


def test_isdiffpos_1_and_0_are_signs_too() -> None:
    (neg,) = correct_light_curve([det(1, 1.0, distnr=3.0, isdiffpos="0")])
    (pos,) = correct_light_curve([det(1, 1.0, distnr=3.0, isdiffpos="1")])
    assert neg["dubious"] and not pos["dubious"]


def test_corrected_flag_differing_from_first_detection_of_band_is_dubious() -> None:
    out = correct_light_curve([
        det(3, 3.0, fid=1, distnr=2.0),   # g, not corrected unlike the first g detection
        det(1, 1.0, fid=1, distnr=0.5),   # first g detection: corrected
        det(2, 2.0, fid=1, distnr=0.6),
        det(4, 1.5, fid=2, distnr=2.0),   # first r detection: not corrected
        det(5, 2.5, fid=2, distnr=2.5),
    ])
    by_candid = {d["candid"]: d["dubious"] for d in out}
    assert by_candid == {1: False, 2: False, 3: True, 4: False, 5: False}


@pytest.mark.parametrize("fields, expected", [
    ({"distnr": 0.5, "distpsnr1": 0.5, "sgscore1": 0.9}, True),
    ({"distnr": 0.5, "distpsnr1": 0.5, "sgscore1": 0.3}, False),
    ({"distnr": 2.0, "distpsnr1": 0.5, "sgscore1": 0.9}, False),
    ({"distnr": 0.5, "distpsnr1": 5.0, "chinr": 1.0, "sharpnr": 0.0}, True),
    ({"distnr": 0.5, "distpsnr1": 5.0, "chinr": 3.0, "sharpnr": 0.0}, False),
    ({"distnr": 0.5, "distpsnr1": 5.0, "chinr": 1.0, "sharpnr": 0.2}, False),
    ({"distnr": 0.5, "distpsnr1": None, "chinr": None, "sharpnr": None}, False),
])
def test_stellar_flag(fields: dict, expected: bool) -> None:
    assert is_stellar(fields) is expected


@pytest.mark.shared
def test_matches_alerces_own_corrected_light_curves(shared_data: Path) -> None:
    """ALeRCE's published correction of 784 real detections (30 SNe), field by field.

    Tolerance 1e-5 mag: ALeRCE's inputs are float32 (about 2e-6 mag at 20 mag).
    """
    import pyarrow.csv as pacsv

    path = (shared_data / "lightcurves" / "alerce-lc-classifier" / "data_examples"
            / "30_sne_detections_corr.csv")
    rows = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={"candid": "int64"})).to_pylist()
    assert len(rows) == 784
    by_object: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_object[row["objectId"]].append({
            "candid": row["candid"], "mjd": row["mjd"], "fid": row["fid"],
            "magpsf": row["magpsf"], "sigmapsf": row["sigmapsf"],
            "isdiffpos": "t" if row["isdiffpos"] > 0 else "f", "distnr": row["distnr"],
            "magnr": row["magnr"], "sigmagnr": row["sigmagnr"], "sgscore1": row["sgscore1"],
            "distpsnr1": row["distpsnr1"], "chinr": row["chinr"], "sharpnr": row["sharpnr"]})
    expected = {row["candid"]: row for row in rows}
    checked = 0
    for detections in by_object.values():
        for ours in correct_light_curve(detections):
            theirs = expected[ours["candid"]]
            assert ours["corrected"] == bool(theirs["corrected"]), ours["candid"]
            assert ours["dubious"] == bool(theirs["dubious"]), ours["candid"]
            for field in ("magpsf_corr", "sigmapsf_corr", "sigmapsf_corr_ext"):
                want = theirs[field]
                if want is None or (isinstance(want, float) and math.isnan(want)):
                    assert ours[field] is None, (ours["candid"], field)
                else:
                    assert ours[field] == pytest.approx(want, abs=1e-5), (ours["candid"], field)
            checked += 1
    assert checked == 784
    assert 0 < sum(bool(r["corrected"]) for r in rows) < 784  # both paths exercised
