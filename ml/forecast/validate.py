"""Validate forecasts on real ZTF light curves by masking their last detections.

``python -m ml.forecast.validate --shared ../shared/data`` masks the last 1, 2 and 3
detections (in time, any band) of ALeRCE's 30 spectroscopic supernovae (the transient
model, on difference magnitudes) and of its 25 catalogue periodic stars (the periodic
model at the period found on the unmasked part), forecasts each masked detection in its
band from the earlier ones, and prints the mean absolute error, the share of masked
detections inside the 68 % and 95 % intervals, and the same error for persistence (the
band's last unmasked magnitude) for scale.  The README quotes its table.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.features.extract import LightCurve, extract, preprocess
from ml.features.table import light_curves, read_table
from ml.forecast import light_curve_forecast

ALERCE = Path("lightcurves") / "alerce-lc-classifier"
MASKED = (1, 2, 3)


def real_sets(shared: Path) -> dict[str, tuple[list[tuple[str, LightCurve]], str]]:
    """The two real sets: name -> (light curves, the branch whose model forecasts them)."""
    root = shared / ALERCE
    sne = read_table(root / "data_examples" / "30_sne_detections_corr.csv")
    periodic = read_table(root / "late_classifier_tests_data" /
                          "e9f3fab_periodic_light_curves.csv")
    return {"supernovae": (list(light_curves(sne)), "Transient"),
            "periodic stars": (list(light_curves(periodic)), "Periodic")}


def _head(lc: LightCurve, n: int) -> LightCurve:
    """The first ``n`` detections of a preprocessed light curve (its non-detections up to
    the last of them)."""
    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[:n]

    limits = lc.nd_mjd <= lc.mjd[n - 1]
    return replace(lc, mjd=lc.mjd[:n], fid=lc.fid[:n], mag=lc.mag[:n], err=lc.err[:n],
                   magpsf=lc.magpsf[:n], sigmapsf=lc.sigmapsf[:n],
                   isdiffpos=lc.isdiffpos[:n], rb=cut(lc.rb), nd_mjd=lc.nd_mjd[limits],
                   nd_fid=lc.nd_fid[limits], nd_diffmaglim=lc.nd_diffmaglim[limits],
                   diff_flux=cut(lc.diff_flux), diff_flux_err=cut(lc.diff_flux_err))


def masked_forecasts(lc: LightCurve, branch: str, masked: int) -> list[dict[str, Any]]:
    """Forecasts of the last ``masked`` detections of one object from the others."""
    lc = preprocess(lc)
    n = len(lc) - masked
    if n < 2:
        return []
    known = _head(lc, n)
    period = extract(known, preprocessed=True).values["Multiband_period"] \
        if branch == "Periodic" else math.nan
    # what the branch's model forecasts: difference magnitudes for a transient
    shown = (lambda c: c.magpsf) if branch == "Transient" else (lambda c: c.mag)
    rows = []
    for i in range(n, len(lc)):
        fid = int(lc.fid[i])
        result = light_curve_forecast(known, fid, lc.mjd[i:i + 1], branch=branch,
                                      period=period)
        band = shown(known)[known.fid == fid]
        rows.append({
            "days_ahead": float(lc.mjd[i] - known.mjd.max()),
            "observed": float(shown(lc)[i]),
            "valid": bool(result.valid[0]), "magnitude": float(result.magnitude[0]),
            "lower68": float(result.lower68[0]), "upper68": float(result.upper68[0]),
            "lower95": float(result.lower95[0]), "upper95": float(result.upper95[0]),
            "persistence": float(band[-1]) if len(band) else math.nan})
    return rows


def _inside(observed: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    # a faint bound of NaN on a valid forecast is an interval reaching zero flux
    return (observed >= lower) & ((observed <= upper) | np.isnan(upper))


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    table = pd.DataFrame(rows)
    if table.empty:
        return {"n": 0}
    valid = table[table.valid]
    observed = valid.observed.to_numpy()
    return {
        "n": len(table), "valid": len(valid),
        "mae": float(np.mean(np.abs(observed - valid.magnitude))),
        "median_abs_error": float(np.median(np.abs(observed - valid.magnitude))),
        "coverage68": float(np.mean(_inside(observed, valid.lower68.to_numpy(),
                                            valid.upper68.to_numpy()))),
        "coverage95": float(np.mean(_inside(observed, valid.lower95.to_numpy(),
                                            valid.upper95.to_numpy()))),
        "persistence_mae": float(np.nanmean(np.abs(observed - valid.persistence))),
        "median_days_ahead": float(valid.days_ahead.median()),
    }


def validate(shared: Path) -> dict[str, dict[str, Any]]:
    """Per set and number of masked detections, :func:`summarise`'s figures."""
    warnings.simplefilter("ignore")
    out: dict[str, dict[str, Any]] = {}
    for name, (curves, branch) in real_sets(shared).items():
        for masked in MASKED:
            rows = [r for _, lc in curves for r in masked_forecasts(lc, branch, masked)]
            out[f"{name}, last {masked} masked"] = summarise(rows)
    return out


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| set | masked detections | valid forecasts | MAE (mag) | persistence MAE "
             "(mag) | inside 68 % | inside 95 % |", "|---|---|---|---|---|---|---|"]
    for key, r in results.items():
        name, masked = key.split(", ")
        lines.append(f"| {name} | {r['n']} ({masked}) | {r['valid']} | {r['mae']:.2f} | "
                     f"{r['persistence_mae']:.2f} | {r['coverage68']:.0%} | "
                     f"{r['coverage95']:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    results = validate(args.shared)
    print(json.dumps(results, indent=1))
    print(markdown(results))


if __name__ == "__main__":
    main()
