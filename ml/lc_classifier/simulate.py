"""Labelled ZTF-like light curves for the 15 classes of ALeRCE's light-curve classifier.

Real labelled light curves are scarce here (see the model card), so the shipped model
is trained mostly on these.  Each simulated object is a physical model of its class
observed on a *real* ZTF cadence when one is available:

* cadences (epochs, bands, 5-sigma limiting magnitudes) are taken from real ZTF light
  curves with their upper limits (ALeRCE's examples), shifted in time; without real
  data a ZTF-like cadence (3-night g/r revisits, seasonal gaps) is generated;
* the photometric error follows the ZTF relation between magnitude and limiting
  magnitude (5 sigma at the limit, 0.01 mag floor);
* as in difference imaging, a point is a detection when the *difference* flux against
  the reference exceeds 5 sigma; detections carry the difference magnitude
  (``magpsf``, ``isdiffpos``) and, for sources present in the reference (stars, AGN,
  and supernovae on a bright host: :data:`SN_HOST_FRACTION`), the corrected apparent
  magnitude (``magpsf_corr``); the rest are upper limits;
* most supernovae are cut at a random time after their sixth detection in a band
  (:data:`SN_TRUNCATE_FRACTION`): the classifier meets them while they evolve.

Class models (magnitudes in ZTF g; r from a class colour): supernovae from the
Villar et al. (2019) parametric model with type-dependent rise, plateau and decline
times and peak magnitudes; RR Lyrae, Cepheids, delta Scuti, eclipsing binaries, LPVs
and other periodic variables from period/amplitude/shape distributions of the
literature (OGLE, ZTF periodic catalogue); QSO/AGN/Blazar as damped random walks with
class-dependent tau and sigma (MacLeod et al. 2010; blazars faster and larger);
YSOs as dippers and bursters on red noise; CVs as dwarf-nova outbursts or classical
novae.  Positions: Galactic classes near the plane, extragalactic ones at high |b|.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml.features.models import spm_flux
from ml.lc_classifier.taxonomy import CLASSES

FloatArray = np.ndarray
ModelFn = Callable[[FloatArray, FloatArray], FloatArray]  #: (t days, fid) -> magnitude


@dataclass(frozen=True)
class Cadence:
    """Epochs (MJD), bands and 5-sigma limiting magnitudes of one real or synthetic field."""

    mjd: FloatArray
    fid: FloatArray
    limit: FloatArray


#: fraction of simulated objects without a PS1 counterpart (sgscore1 unknown)
MISSING_SGSCORE = 0.15
#: fraction of simulated supernovae on a host bright in the reference image, so that the
#: survey marks them corrected (ZTF: a reference source within 1.4 arcsec) and sends an
#: apparent magnitude of host + SN: 7 of ALeRCE's 30 real SNe (23 %) are corrected
SN_HOST_FRACTION = 0.25
#: fraction of simulated supernovae cut at a random time after their sixth detection in
#: a band: the pipeline classifies a supernova as it rises and fades, not only once it
#: has faded, and ALeRCE's real SN light curves span a median of ~30 days
SN_TRUNCATE_FRACTION = 0.7
SUPERNOVAE = ("SNIa", "SNIbc", "SNII", "SLSN")


def synthetic_cadence(rng: np.random.Generator) -> Cadence:
    """A ZTF-like public-survey cadence: g and r every ~3 nights, 8-month seasons."""
    start = 58200.0 + rng.uniform(0, 365)
    span = rng.uniform(150, 900)
    nights = np.arange(start, start + span, 1.0)
    season = np.mod(nights - start + rng.uniform(0, 365), 365.0) < 240
    visited = season & (rng.random(len(nights)) < rng.uniform(0.25, 0.5))
    mjd, fid = [], []
    for night in nights[visited]:
        for band in (1, 2):
            if rng.random() < 0.85:
                mjd.append(night + 0.15 + rng.uniform(0, 0.25) + (band - 1) * 0.02)
                fid.append(band)
    limit = rng.normal(20.4, 0.45, len(mjd)) - 0.2 * (np.array(fid) == 2)
    return Cadence(np.array(mjd), np.array(fid, dtype=float), limit)


def real_cadences(shared_data: Path) -> list[Cadence]:
    """Cadences of real ZTF light curves (detections and upper limits) in the shared data."""
    root = shared_data / "lightcurves" / "alerce-lc-classifier"
    out: list[Cadence] = []
    pairs = [(root / "data_examples" / "30_sne_detections_corr.csv",
              root / "data_examples" / "30_sne_non_detections.csv")]
    tests = root / "late_classifier_tests_data"
    for det in sorted(tests.glob("*_det.csv")):
        oid = det.stem.split("_")[1]
        nondet = next(iter(sorted(tests.glob(f"*_{oid}_nondet.csv"))), None)
        pairs.append((det, nondet))  # type: ignore[arg-type]
    pairs.append((tests / "af0b982_60objects_more20dets.csv", None))  # type: ignore[arg-type]
    for det_path, nd_path in pairs:
        if not det_path.exists():
            continue
        det = pd.read_csv(det_path).rename(columns={"objectId": "oid"})
        if "mjd" not in det.columns and "jd" in det.columns:
            det["mjd"] = det["jd"] - 2400000.5
        nd = pd.DataFrame(columns=["oid", "mjd", "fid", "diffmaglim"])
        if nd_path is not None and nd_path.exists():
            nd = pd.read_csv(nd_path).rename(columns={"objectId": "oid"})
            if "mjd" not in nd.columns:
                nd["mjd"] = nd["jd"] - 2400000.5
        for oid, group in det.groupby("oid"):
            if "diffmaglim" not in group.columns:
                continue
            limits = nd[nd["oid"] == oid]
            mjd = np.concatenate([group["mjd"], limits["mjd"]]).astype(float)
            if len(mjd) < 15:
                continue
            fid = np.concatenate([group["fid"], limits["fid"]]).astype(float)
            lim = np.concatenate([group["diffmaglim"], limits["diffmaglim"]]).astype(float)
            ok = np.isfinite(mjd) & np.isfinite(lim) & np.isin(fid, (1, 2))
            order = np.argsort(mjd[ok])
            out.append(Cadence(mjd[ok][order], fid[ok][order], lim[ok][order]))
    return out


def _sawtooth(phase: FloatArray, rise_fraction: float) -> FloatArray:
    """Fast rise, slow decline in magnitude units: -1 at maximum light, +1 at minimum."""
    p = np.mod(phase, 1.0)
    return np.where(p < rise_fraction, 1 - 2 * p / rise_fraction,
                    -1 + 2 * (p - rise_fraction) / (1 - rise_fraction))


def _drw(t: FloatArray, tau: float, sigma: float, rng: np.random.Generator) -> FloatArray:
    """Damped random walk (Ornstein-Uhlenbeck) sampled exactly at sorted times t (days)."""
    out = np.empty(len(t))
    out[0] = rng.normal(0, sigma)
    for i in range(1, len(t)):
        r = math.exp(-(t[i] - t[i - 1]) / tau)
        out[i] = out[i - 1] * r + rng.normal(0, sigma * math.sqrt(1 - r * r))
    return out


@dataclass
class ClassModel:
    magnitude: ModelFn  #: apparent magnitude at (t, fid)
    reference: dict[int, float | None]  #: reference-image magnitude per band (None: no source)
    galactic: bool
    sgscore: float


#: how many "g - r" colours redder than g each band is (ZTF/LSST g = 1, r = 2; LSST
#: i z y = 3 4 5, u = 6): a class's colour from g to each band scales by this, its
#: pulsation amplitude by ``amp_r ** REDNESS``.  g and r are exact (the ZTF models); the
#: other bands follow the blackbody-like run of typical stellar and SN colours (u-g about
#: 1.2 (g-r), r-i about 0.6 (g-r), ...), which is what a classifier can learn from.
REDNESS = np.array([0.0, 0.0, 1.0, 1.6, 2.0, 2.3, -1.2])  # index = fid


def _redness(fid: FloatArray) -> FloatArray:
    return REDNESS[np.asarray(fid, dtype=int)]


def _colour(fid: FloatArray, g_minus_r: float) -> FloatArray:
    return -g_minus_r * _redness(fid)


def _references(mean: float, g_minus_r: float) -> dict[int, float | None]:
    """Reference-image magnitude of a persistent source in every band of both surveys."""
    return {f: mean - g_minus_r * float(REDNESS[f]) for f in range(1, 7)}


def _supernova(name: str, rng: np.random.Generator, t_first: float) -> ClassModel:
    u = rng.uniform
    params = {  # t_rise, gamma (plateau), beta, t_fall (days), peak mag, g-r at peak
        "SNIa": (u(1.5, 5), u(8, 30), u(0.3, 0.9), u(12, 35), u(17.0, 19.6), u(-0.15, 0.15)),
        "SNIbc": (u(1, 4), u(4, 18), u(0.3, 0.9), u(8, 25), u(17.5, 19.6), u(0.1, 0.5)),
        "SNII": (u(1, 5), u(35, 100), u(0.0, 0.3), u(20, 80), u(17.5, 19.6), u(-0.1, 0.3)),
        "SLSN": (u(10, 35), u(20, 70), u(0.1, 0.6), u(40, 100), u(18.0, 19.8), u(-0.2, 0.2)),
    }[name]
    t_rise, gamma, beta, t_fall, peak, colour = params
    t0 = t_first + u(0, 120)
    norm = float(np.max(spm_flux(np.linspace(-50, 200, 500), 1.0, 0.0, gamma, beta,
                                 t_rise, t_fall)))
    redden = {"SNIa": 0.012, "SNIbc": 0.015, "SNII": 0.01, "SLSN": 0.004}[name]

    def magnitude(t: FloatArray, fid: FloatArray) -> FloatArray:
        # r declines more slowly than g: colour reddens with time after maximum
        slow = 1.0 + 0.25 * np.clip(_redness(fid), 0, None)
        flux = spm_flux(t - t0, 1.0, 0.0, gamma, beta, t_rise, t_fall * slow) / norm
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = peak - 2.5 * np.log10(np.clip(flux, 1e-12, None))
        return mag + _colour(fid, colour) - redden * _redness(fid) * np.clip(
            t - t0 - gamma, 0, None)

    return ClassModel(magnitude, dict.fromkeys(range(1, 7)), galactic=False,
                      sgscore=u(0.0, 0.4))


def _periodic(name: str, rng: np.random.Generator) -> ClassModel:
    u = rng.uniform
    mean = u(14.5, 19.0)
    phase0 = u(0, 1)
    shape: Callable[[FloatArray], FloatArray]
    if name == "RRL":
        if rng.random() < 0.7:  # RRab: sawtooth
            period, amp = u(0.45, 0.9), u(0.5, 1.2)
            rise = u(0.1, 0.2)

            def shape(p: FloatArray) -> FloatArray:
                return 0.5 * amp * _sawtooth(p, rise)
        else:  # RRc: nearly sinusoidal
            period, amp = u(0.22, 0.45), u(0.25, 0.6)

            def shape(p: FloatArray) -> FloatArray:
                return 0.5 * amp * (np.cos(2 * np.pi * p) + 0.1 * np.cos(4 * np.pi * p))
        colour, amp_r = u(0.1, 0.4), 0.75
    elif name == "CEP":
        period, amp, rise = math.exp(u(math.log(1.0), math.log(60))), u(0.3, 1.0), u(0.2, 0.35)

        def shape(p: FloatArray) -> FloatArray:
            return 0.5 * amp * _sawtooth(p, rise)
        colour, amp_r = u(0.3, 1.0), 0.7
    elif name == "DSCT":
        period, amp = math.exp(u(math.log(0.03), math.log(0.25))), u(0.05, 0.5)

        def shape(p: FloatArray) -> FloatArray:
            return 0.5 * amp * (np.cos(2 * np.pi * p) + 0.2 * np.cos(4 * np.pi * p + 1.0))
        colour, amp_r = u(0.0, 0.3), 0.8
    elif name == "E":
        period = math.exp(u(math.log(0.22), math.log(15)))
        if rng.random() < 0.5:  # contact binary: two similar minima per orbit
            amp = u(0.1, 0.6)

            def shape(p: FloatArray) -> FloatArray:
                return 0.5 * amp * np.cos(4 * np.pi * p) * (1 + 0.1 * np.cos(2 * np.pi * p))
        else:  # detached: two narrow eclipses
            d1, width = u(0.2, 1.5), u(0.03, 0.12)
            d2 = d1 * u(0.0, 0.8)

            def shape(p: FloatArray) -> FloatArray:
                q = np.mod(p, 1.0)
                return (d1 * np.exp(-0.5 * ((q - 0.0) / width) ** 2)
                        + d1 * np.exp(-0.5 * ((q - 1.0) / width) ** 2)
                        + d2 * np.exp(-0.5 * ((q - 0.5) / width) ** 2))
        colour, amp_r = u(0.0, 1.0), 0.9
    elif name == "LPV":
        period, amp = u(80, 600), u(0.8, 4.0)
        mean = u(13.5, 18.5)

        def shape(p: FloatArray) -> FloatArray:
            return 0.5 * amp * np.cos(2 * np.pi * p)
        colour, amp_r = u(1.3, 2.8), 0.6
    else:  # Periodic-Other: rotational / ellipsoidal / other sinusoidal variables
        period, amp = math.exp(u(math.log(0.1), math.log(100))), u(0.05, 0.4)

        def shape(p: FloatArray) -> FloatArray:
            return 0.5 * amp * np.cos(2 * np.pi * p) + 0.15 * amp * np.cos(4 * np.pi * p + 0.7)
        colour, amp_r = u(0.2, 1.5), 0.8
    irregular = rng.random() < 0.5 and name == "LPV"
    drift_tau, drift_sigma = u(50, 300), (0.3 if irregular else 0.0)
    state: dict[str, FloatArray] = {}

    def magnitude(t: FloatArray, fid: FloatArray) -> FloatArray:
        if "drift" not in state:
            order = np.argsort(t)
            drift = np.empty(len(t))
            drift[order] = _drw(t[order], drift_tau, drift_sigma, rng) if drift_sigma else 0
            state["drift"] = drift
        scale = amp_r ** _redness(fid)
        return mean + scale * shape(t / period + phase0) + _colour(fid, colour) + state["drift"]

    return ClassModel(magnitude, _references(mean, colour), galactic=True,
                      sgscore=u(0.85, 1.0))


def _stochastic(name: str, rng: np.random.Generator) -> ClassModel:
    u = rng.uniform
    if name == "QSO":
        tau, sigma, mean, colour, sg = u(80, 800), u(0.1, 0.35), u(18.0, 20.0), u(-0.1, 0.4), \
            u(0.4, 1.0)
    elif name == "AGN":
        tau, sigma, mean, colour, sg = u(40, 500), u(0.05, 0.2), u(16.5, 19.5), u(0.4, 0.9), \
            u(0.0, 0.5)
    elif name == "Blazar":
        tau, sigma, mean, colour, sg = u(5, 120), u(0.3, 1.0), u(16.5, 19.5), u(0.2, 0.8), \
            u(0.3, 1.0)
    elif name == "YSO":
        tau, sigma, mean, colour, sg = u(1, 40), u(0.05, 0.4), u(14.5, 18.5), u(1.0, 2.2), \
            u(0.7, 1.0)
    else:  # CV/Nova
        tau, sigma, mean, colour, sg = u(5, 50), u(0.05, 0.2), u(18.5, 21.5), u(-0.2, 0.3), \
            u(0.6, 1.0)
    extra = {"dip_depth": u(0.3, 2.0) if name == "YSO" else 0.0,
             "outburst_amp": u(2.0, 5.0), "recurrence": u(15, 250), "duration": u(3, 20),
             "nova": float(name == "CV/Nova" and rng.random() < 0.25)}
    bluer_when_brighter = 0.15 if name in ("QSO", "AGN", "Blazar") else 0.0
    state: dict[str, FloatArray] = {}

    def magnitude(t: FloatArray, fid: FloatArray) -> FloatArray:
        if "base" not in state:
            order = np.argsort(t)
            base = np.empty(len(t))
            base[order] = _drw(t[order], tau, sigma, rng)
            events = np.zeros(len(t))
            if name == "YSO":  # aperiodic dips (extinction) or bursts (accretion)
                for centre in rng.uniform(t.min(), t.max(), rng.integers(1, 6)):
                    width = rng.uniform(1, 15)
                    sign = 1.0 if rng.random() < 0.7 else -0.7
                    events += sign * extra["dip_depth"] * np.exp(-0.5 * ((t - centre) / width)
                                                                 ** 2)
            elif name == "CV/Nova":
                if extra["nova"]:
                    t_peak = rng.uniform(t.min(), t.max())
                    after = np.clip(t - t_peak, 0, None)
                    events -= np.where(t >= t_peak, rng.uniform(6, 10) - 2.5 * np.log10(
                        1 + after / rng.uniform(5, 30)), 0.0)
                else:  # dwarf-nova outbursts
                    start = t.min() - rng.uniform(0, extra["recurrence"])
                    while start < t.max():
                        rise = np.clip((t - start) / 1.0, 0, 1)
                        fall = np.exp(-np.clip(t - start - extra["duration"], 0, None) / 3.0)
                        events -= extra["outburst_amp"] * rise * fall * (t >= start)
                        start += extra["recurrence"] * rng.uniform(0.7, 1.3)
            state["base"], state["events"] = base, events
        base = state["base"]
        # g varies by 1 + b, r by 1 - b (ZTF), the other bands on the same run
        chroma = 1.0 + bluer_when_brighter * (1.0 - 2.0 * _redness(fid))
        return mean + chroma * base + state["events"] + _colour(fid, colour)

    return ClassModel(magnitude, _references(mean, colour),
                      galactic=name in ("YSO", "CV/Nova"), sgscore=sg)


def class_model(name: str, rng: np.random.Generator, t_first: float) -> ClassModel:
    if name in ("SNIa", "SNIbc", "SNII", "SLSN"):
        return _supernova(name, rng, t_first)
    if name in ("QSO", "AGN", "Blazar", "YSO", "CV/Nova"):
        return _stochastic(name, rng)
    return _periodic(name, rng)


def _position(galactic: bool, rng: np.random.Generator) -> tuple[float, float]:
    from ml.features.extract import _galactic_matrix

    if galactic:
        b = np.clip(rng.laplace(0, 8), -80, 80)
    else:
        b = np.degrees(np.arcsin(rng.uniform(math.sin(math.radians(15)), 1))) * rng.choice(
            (-1, 1))
    lon = rng.uniform(0, 360)
    vec_gal = np.array([math.cos(math.radians(b)) * math.cos(math.radians(lon)),
                        math.cos(math.radians(b)) * math.sin(math.radians(lon)),
                        math.sin(math.radians(b))])
    vec = _galactic_matrix().T @ vec_gal
    ra = math.degrees(math.atan2(vec[1], vec[0])) % 360
    return ra, math.degrees(math.asin(float(np.clip(vec[2], -1, 1))))


def _flux(mag: FloatArray) -> FloatArray:
    return np.asarray(10 ** (-0.4 * (mag - 23.9)))  # microJansky


def observe(oid: str, label: str, cadence: Cadence, rng: np.random.Generator
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate one object of class ``label`` on ``cadence``: (detections, upper limits)."""
    shift = rng.uniform(-30, 30)
    t = cadence.mjd + shift
    model = class_model(label, rng, float(t.min()))
    if label in SUPERNOVAE and rng.random() < SN_HOST_FRACTION:
        host, host_colour = rng.uniform(18.0, 21.0), rng.uniform(0.3, 0.9)
        model.reference = {f: host - host_colour * float(REDNESS[f]) for f in range(1, 7)}
        host_flux = _flux(np.array([model.reference[int(f)] for f in cadence.fid]))
        supernova = model.magnitude

        def with_host(t: FloatArray, fid: FloatArray) -> FloatArray:
            return np.asarray(23.9 - 2.5 * np.log10(_flux(supernova(t, fid)) + host_flux))

        model.magnitude = with_host
    mag = model.magnitude(t, cadence.fid)
    limit = cadence.limit + rng.normal(0, 0.05, len(t))
    sigma_flux = _flux(limit) / 5.0  # 5 sigma at the limiting magnitude
    ref = np.array([model.reference[int(f)] if model.reference[int(f)] is not None
                    else np.inf for f in cadence.fid])
    ref_flux = np.where(np.isfinite(ref), _flux(np.where(np.isfinite(ref), ref, 0)), 0.0)
    total = _flux(mag) + rng.normal(0, 1, len(t)) * np.hypot(sigma_flux,
                                                             0.01 * _flux(mag))
    diff = total - ref_flux
    detected = np.abs(diff) > 5 * sigma_flux
    ra, dec = _position(model.galactic, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        magpsf = 23.9 - 2.5 * np.log10(np.abs(diff))
        sigmapsf = 1.0857 * sigma_flux / np.abs(diff)
        mag_corr = 23.9 - 2.5 * np.log10(np.clip(total, 1e-3, None))
        sigma_corr = np.hypot(1.0857 * sigma_flux / np.clip(total, 1e-3, None), 0.01)
    corrected = bool(np.isfinite(ref).all())
    det = pd.DataFrame({
        "oid": oid, "mjd": t[detected], "fid": cadence.fid[detected].astype(int),
        "magpsf": magpsf[detected], "sigmapsf": np.hypot(sigmapsf[detected], 0.01),
        "magpsf_corr": mag_corr[detected] if corrected else np.nan,
        "sigmapsf_corr": sigma_corr[detected] if corrected else np.nan,
        "isdiffpos": np.where(diff[detected] > 0, 1, -1), "corrected": corrected,
        "rb": rng.uniform(0.6, 0.98, int(detected.sum())),
        "ra": ra, "dec": dec,
        # the PS1 star/galaxy score is missing for some real objects (no PS1 source)
        "sgscore1": model.sgscore if rng.random() > MISSING_SGSCORE else np.nan,
    })
    nd = pd.DataFrame({"oid": oid, "mjd": t[~detected], "fid": cadence.fid[~detected]
                       .astype(int), "diffmaglim": limit[~detected]})
    return det, nd


def _truncated(det: pd.DataFrame, nd: pd.DataFrame, min_detections: int,
               rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The light curve as it stood at a random time between the detection that brought a
    band to ``min_detections`` and the last one (non-detections up to then kept)."""
    det = det.sort_values("mjd")
    counts = det.groupby("fid").cumcount() + 1
    reached = float(det["mjd"][counts >= min_detections].min())
    cut = rng.uniform(reached, float(det["mjd"].max()))
    return det[det["mjd"] <= cut], nd[nd["mjd"] <= cut]


def simulate(per_class: int, seed: int = 0, cadences: list[Cadence] | None = None,
             min_detections: int = 6,
             classes: tuple[str, ...] = CLASSES) -> tuple[pd.DataFrame, pd.DataFrame,
                                                          pd.DataFrame]:
    """``per_class`` objects of each class with at least ``min_detections`` detections in
    g or r: (detections, non-detections, labels ``oid, classALeRCE``)."""
    rng = np.random.default_rng(seed)
    dets, nds, labels = [], [], []
    for label in classes:
        made = tries = 0
        while made < per_class and tries < per_class * 30:
            tries += 1
            cadence = cadences[rng.integers(len(cadences))] if cadences else \
                synthetic_cadence(rng)
            oid = f"SIM{label.replace('/', '')}{tries:06d}"
            det, nd = observe(oid, label, cadence, rng)
            if max((det["fid"] == 1).sum(), (det["fid"] == 2).sum()) < min_detections:
                continue
            if label in SUPERNOVAE and rng.random() < SN_TRUNCATE_FRACTION:
                det, nd = _truncated(det, nd, min_detections, rng)
            dets.append(det)
            nds.append(nd)
            labels.append((oid, label))
            made += 1
    return (pd.concat(dets, ignore_index=True), pd.concat(nds, ignore_index=True),
            pd.DataFrame(labels, columns=["oid", "classALeRCE"]))
