"""Light-curve feature extraction throughput, per core, and where the time goes.

Run with ``make bench-features`` (or ``uv run python -m bench.bench_features``).  Two-band
ZTF-like light curves of 20, 50 and 200 detections (simulated RR Lyrae, QSOs and
supernovae on a ZTF-like cadence, so every feature family does real work) go through
the full extractor on one core (BLAS limited to one thread).  Target: >= 100 objects/s
per core at 50 detections (issue 20; 50 before).  Then LSST six-band curves of the same
total sizes: the same simulated curves with their epochs dealt round-robin to u g r i z
y (a timing workload: the shapes are ZTF's), with difference fluxes for SPM.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_limits

from ml.features import models, variability
from ml.features.extract import LightCurve, extract, preprocess
from ml.features.names import LSST_BANDS, ZTF_BANDS, BandScheme
from ml.features.periodogram import multiband_periodogram, prepare_band
from ml.lc_classifier.simulate import Cadence, observe


def make_curves(n_det: int, count: int, seed: int) -> list[LightCurve]:
    """``count`` two-band light curves with exactly ``n_det`` detections."""
    rng = np.random.default_rng(seed)
    out: list[LightCurve] = []
    # supernovae fade long before 200 detections: long curves are of persistent sources
    classes = ("RRL", "QSO", "SNIa", "E", "LPV") if n_det <= 60 else ("RRL", "QSO", "E", "LPV")
    while len(out) < count:
        label = classes[len(out) % len(classes)]
        # a ZTF-like g/r sequence long enough for n_det detections (limits ~20.8 mag)
        epochs = int(n_det * 1.8) + 20
        cadence = Cadence(mjd=np.sort(rng.uniform(58300, 58300 + 3 * epochs, epochs)),
                          fid=np.tile([1.0, 2.0], epochs)[:epochs],
                          limit=rng.normal(20.8, 0.3, epochs))
        det, nd = observe("BENCH", label, cadence, rng)
        if len(det) < n_det or det["fid"].nunique() < 2:
            continue
        det = det.sort_values("mjd").iloc[:n_det]
        corrected = bool(det["corrected"].iloc[0])
        mag = det["magpsf_corr" if corrected else "magpsf"].to_numpy(dtype=float)
        err = det["sigmapsf_corr" if corrected else "sigmapsf"].to_numpy(dtype=float)
        out.append(LightCurve(
            mjd=det["mjd"].to_numpy(dtype=float), fid=det["fid"].to_numpy(dtype=np.int64),
            mag=mag, err=err, magpsf=det["magpsf"].to_numpy(dtype=float),
            sigmapsf=det["sigmapsf"].to_numpy(dtype=float),
            isdiffpos=det["isdiffpos"].to_numpy(dtype=float), rb=det["rb"].to_numpy(),
            ra=float(det["ra"].iloc[0]), dec=float(det["dec"].iloc[0]),
            sgscore1=float(det["sgscore1"].iloc[0]),
            nd_mjd=nd["mjd"].to_numpy(dtype=float), nd_fid=nd["fid"].to_numpy(dtype=np.int64),
            nd_diffmaglim=nd["diffmaglim"].to_numpy(dtype=float)))
    return out


def as_lsst(lc: LightCurve) -> LightCurve:
    """The curve with its epochs dealt round-robin to LSST's six bands, plus fluxes."""
    order = np.argsort(lc.mjd, kind="stable")
    fids = np.array(LSST_BANDS.fids)[np.arange(len(lc.mjd)) % 6]
    fid = np.empty(len(lc.mjd), dtype=np.int64)
    fid[order] = fids
    flux = 10 ** (-0.4 * (lc.magpsf - 23.9)) * 1e-3  # AB mag -> mJy
    return LightCurve(mjd=lc.mjd, fid=fid, mag=lc.mag, err=lc.err, magpsf=lc.magpsf,
                      sigmapsf=lc.sigmapsf, isdiffpos=lc.isdiffpos, rb=None, ra=lc.ra,
                      dec=lc.dec, nd_mjd=lc.nd_mjd, nd_fid=fid[:0], nd_diffmaglim=lc.nd_mjd[:0],
                      diff_flux=flux, diff_flux_err=flux * lc.sigmapsf / 1.0857)


def profile(curves: list[LightCurve], scheme: BandScheme = ZTF_BANDS) -> dict[str, float]:
    """Seconds per object spent in each feature family (same work as :func:`extract`)."""
    spent: dict[str, float] = defaultdict(float)

    @contextmanager
    def timed(name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        spent[name] += time.perf_counter() - start

    for raw in curves:
        with timed("preprocess"):
            lc = preprocess(raw, scheme)
        bands = {f: lc.fid == f for f in scheme.fids}
        with timed("periodogram (MHAOV)"):
            pgram = multiband_periodogram(
                {f: prepare_band(lc.mjd[s], lc.mag[s], lc.err[s], float(lc.mjd.min()))
                 for f, s in bands.items() if s.sum() > 5})
        period = 1.0 / pgram.best_frequency
        for sel in bands.values():
            t, m, e = lc.mjd[sel], lc.mag[sel], lc.err[sel]
            if len(t) < variability.MIN_POINTS:
                continue
            with timed("turbo-fats (with IAR_phi, structure function)"):
                variability.turbofats(t, m, e)
            with timed("SPM"):
                if lc.diff_flux is not None and lc.diff_flux_err is not None:
                    models.spm_of_flux(t, lc.diff_flux[sel], lc.diff_flux_err[sel])
                else:
                    models.spm(t, lc.magpsf[sel], lc.sigmapsf[sel])
            with timed("MHPS"):
                models.mhps(t, m, e)
            with timed("GP DRW"):
                models.gp_drw(t, m, e)
            with timed("harmonics + folded"):
                models.harmonics(t, m, e, period)
                models.folded(t, m, period)
    return {k: v / len(curves) for k, v in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=60, help="objects per size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 200])
    parser.add_argument("--surveys", nargs="+", default=["ztf", "lsst"],
                        choices=["ztf", "lsst"])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"cores on this machine: {os.cpu_count()}; extraction runs on one core "
          "(one process, BLAS limited to one thread)")
    with threadpool_limits(limits=1):
        extract(make_curves(20, 1, 99)[0])  # warm-up: imports, astropy's frame matrix
        for survey, scheme in (("ZTF", ZTF_BANDS), ("LSST", LSST_BANDS)):
            if survey.lower() not in args.surveys:
                continue
            for n_det in args.sizes:
                curves = make_curves(n_det, args.objects, seed=n_det)
                if scheme is LSST_BANDS:
                    curves = [as_lsst(lc) for lc in curves]
                extract(curves[0], scheme=scheme)  # compiled kernels loaded
                start = time.perf_counter()
                for lc in curves:
                    extract(lc, scheme=scheme)
                elapsed = time.perf_counter() - start
                rate = len(curves) / elapsed
                bands = "two bands" if scheme is ZTF_BANDS else "six bands"
                print(f"\n{survey} {n_det:4d} detections ({bands}): {rate:6.1f} objects/s "
                      f"per core, {1000 * elapsed / len(curves):6.1f} ms per object"
                      + ("   target >= 100 objects/s" if n_det == 50 and survey == "ZTF"
                         else ""))
                for name, seconds in sorted(profile(curves, scheme).items(),
                                            key=lambda kv: -kv[1]):
                    print(f"      {name:48s} {1000 * seconds:6.2f} ms")

if __name__ == "__main__":
    main()
