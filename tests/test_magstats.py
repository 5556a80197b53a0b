"""Per-band and per-object statistics on small hand-computed light curves."""

from __future__ import annotations

import math

import pytest

from nightjar.core.magstats import band_statistics, object_statistics
from nightjar.surveys.ztf.correction import correct_light_curve


def det(candid: int, mjd: float, mag: float, fid: int = 1, **kw: object) -> dict:
    base = {"candid": candid, "mjd": mjd, "fid": fid, "band": "gri"[fid - 1], "magpsf": mag,
            "sigmapsf": 0.1,
            "isdiffpos": "t", "distnr": 5.0, "magnr": None, "sigmagnr": None,
            "ra": 10.0, "dec": 20.0, "rfid": 1}
    return {**base, **kw}


def test_band_statistics_of_three_detections() -> None:
    dets = correct_light_curve([det(3, 3.0, 20.0), det(1, 1.0, 18.0), det(2, 2.0, 19.0)])
    g = {"fid": 1, "band": "g"}
    nds = [{"mjd": 0.8, **g, "diffmaglim": 25.0},   # within 0.5 d: ignored
           {"mjd": 0.0, **g, "diffmaglim": 20.0},   # dt 1: dmdt (18.1-20)/1 = -1.9
           {"mjd": -1.0, **g, "diffmaglim": 19.5}]  # dt 2: dmdt (18.1-19.5)/2 = -0.7
    s = band_statistics("g", dets, nds)
    assert s["ndet"] == 3 and s["ndubious"] == 0 and s["nrfid"] == 1
    assert s["magmean"] == pytest.approx(19.0) and s["magmedian"] == pytest.approx(19.0)
    assert s["magmax"] == 20.0 and s["magmin"] == 18.0
    assert s["magsigma"] == pytest.approx(math.sqrt(2 / 3))  # population std
    assert s["magfirst"] == 18.0 and s["maglast"] == 20.0
    assert s["firstmjd"] == 1.0 and s["lastmjd"] == 3.0
    assert s["dmdt_first"] == pytest.approx(-1.9)
    assert s["dm_first"] == pytest.approx(-2.0)
    assert s["sigmadm_first"] == pytest.approx(0.1 - 20.0)
    assert s["dt_first"] == pytest.approx(1.0)
    # nothing corrected: the _corr statistics and the saturation rate are null
    assert s["magmean_corr"] is None and s["saturation_rate"] is None
    assert s["corrected"] is False


def test_corr_statistics_use_corrected_detections_only() -> None:
    dets = correct_light_curve([
        det(1, 1.0, 15.0, distnr=0.5, magnr=15.0, sigmagnr=0.0),  # corrected: 15 - 2.5 log 2
        det(2, 2.0, 16.0, distnr=0.5, magnr=13.0, sigmagnr=0.0),  # corrected, saturated
        det(3, 3.0, 17.0),                                        # not corrected (dubious)
    ])
    s = band_statistics("g", dets, [])
    m1 = 15.0 - 2.5 * math.log10(2.0)
    m2 = -2.5 * math.log10(10 ** (-0.4 * 13.0) + 10 ** (-0.4 * 16.0))
    assert s["magmean_corr"] == pytest.approx((m1 + m2) / 2)
    assert s["magfirst_corr"] == pytest.approx(m1) and s["maglast_corr"] == pytest.approx(m2)
    assert s["saturation_rate"] == pytest.approx(0.5)
    assert s["ndubious"] == 1
    assert s["magmean"] == pytest.approx(16.0)  # uncorrected statistics use all three


def test_no_dmdt_without_earlier_limits() -> None:
    s = band_statistics("g", correct_light_curve([det(1, 1.0, 18.0)]),
                        [{"mjd": 5.0, "fid": 1, "band": "g", "diffmaglim": 20.0}])
    assert s["dmdt_first"] is None and s["dt_first"] is None


def test_object_statistics_across_ra_zero_and_colours() -> None:
    arcsec = 1 / 3600
    dets = correct_light_curve([
        det(1, 1.0, 18.0, fid=1, ra=360.0 - arcsec, dec=0.0),
        det(2, 2.0, 17.5, fid=2, ra=arcsec, dec=0.0, rfid=2),
        det(3, 4.0, 18.4, fid=1, ra=arcsec, dec=0.0),
        det(4, 5.0, 17.9, fid=2, ra=360.0 - arcsec, dec=0.0, rfid=3),
    ])
    obj = object_statistics("ZTF24aaaaaaa", dets, [])
    assert obj["ndet"] == 4 and obj["firstmjd"] == 1.0 and obj["lastmjd"] == 5.0
    assert obj["deltajd"] == 4.0
    assert min(obj["meanra"], 360.0 - obj["meanra"]) < 1e-9  # not 180
    assert obj["sigmara"] == pytest.approx(1.0, rel=1e-6)  # arcsec
    assert obj["g_r_max"] == pytest.approx(18.0 - 17.5)
    assert obj["g_r_mean"] == pytest.approx(18.2 - 17.7)
    assert obj["reference_change"] is True  # two references in r
    assert [m["fid"] for m in obj["magstats"]] == [1, 2]
    assert [m["band"] for m in obj["magstats"]] == ["g", "r"]


def test_bands_are_keyed_by_name_in_survey_order() -> None:
    # LSST bands (fid by ALeRCE's convention, u = 6) come in u g r i z y order
    dets = [{"candid": i, "mjd": float(i), "band": band, "fid": fid, "magpsf": 20.0,
             "sigmapsf": 0.1, "ra": 1.0, "dec": 1.0, "corrected": False, "dubious": False,
             "stellar": False, "magpsf_corr": None}
            for i, (band, fid) in enumerate([("y", 5), ("u", 6), ("r", 2), ("g", 1)])]
    obj = object_statistics("1", dets, [])
    assert [m["band"] for m in obj["magstats"]] == ["u", "g", "r", "y"]
    assert [m["fid"] for m in obj["magstats"]] == [6, 1, 2, 5]
    assert obj["g_r_mean"] == pytest.approx(0.0)
