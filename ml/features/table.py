"""Feature tables from ALeRCE-format detection / non-detection / object tables.

The thin layer between tables (CSV or parquet, ALeRCE's column names) and the pure
extractor: one :class:`~ml.features.extract.LightCurve` per oid, one output row per oid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ml.features.extract import FeatureVector, LightCurve, choose_magnitudes, extract
from ml.features.models import HARMONICS_NAMES, harmonics_degenerate
from ml.features.names import FEATURE_NAMES

REQUIRED_DETECTION_COLUMNS = ("oid", "mjd", "fid")
NON_DETECTION_COLUMNS = ("oid", "mjd", "fid", "diffmaglim")
_RENAMES = {"objectId": "oid", "object_id": "oid"}


class TableError(ValueError):
    """An input table lacks what the extractor needs (the message says what)."""


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or parquet table with ``objectId`` read as ``oid``; ``oid`` as a column."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        df = pd.read_parquet(path)
    elif name.endswith((".csv", ".csv.gz")):
        df = pd.read_csv(path)
    else:
        raise TableError(f"{path}: expected a .csv or .parquet file")
    if df.index.name in ("oid", "objectId") and "oid" not in df.columns:
        df = df.reset_index()
    return df.rename(columns=_RENAMES)


def write_table(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.lower().endswith((".parquet", ".pq")):
        df.to_parquet(path)
    else:
        df.to_csv(path)


def _isdiffpos(values: pd.Series) -> np.ndarray:
    if values.dtype == object:
        return np.where(values.astype(str).str.lower().isin(("t", "1", "true")), 1.0, -1.0)
    return np.where(pd.to_numeric(values, errors="coerce").fillna(1) > 0, 1.0, -1.0)


def _column(df: pd.DataFrame, name: str) -> np.ndarray | None:
    if name not in df.columns:
        return None
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)


def _meta(objects: pd.DataFrame | None, oid: object, det: pd.DataFrame, name: str) -> float:
    """A per-object value: from the objects table, else the median over detections."""
    if objects is not None and oid in objects.index and name in objects.columns:
        value = pd.to_numeric(objects.loc[oid, name], errors="coerce")
        if np.isfinite(value):
            return float(value)
    col = _column(det, name)
    return float(np.nanmedian(col)) if col is not None and np.isfinite(col).any() else math.nan


def light_curves(detections: pd.DataFrame, non_detections: pd.DataFrame | None = None,
                 objects: pd.DataFrame | None = None) -> Iterator[tuple[str, LightCurve]]:
    """One :class:`LightCurve` per oid from ALeRCE-format tables.

    Magnitudes: ``magpsf_corr``/``sigmapsf_corr`` where the object is corrected (the
    ``corrected`` column of the objects table, else all of its detections' ``corrected``
    flags, else wherever corrected magnitudes are given), otherwise ``magpsf``/``sigmapsf``.
    """
    missing = [c for c in REQUIRED_DETECTION_COLUMNS if c not in detections.columns]
    has_corr = "magpsf_corr" in detections.columns and "sigmapsf_corr" in detections.columns
    has_raw = "magpsf" in detections.columns and "sigmapsf" in detections.columns
    if missing or not (has_corr or has_raw):
        raise TableError("detections need columns oid, mjd, fid and magpsf_corr/sigmapsf_corr "
                         f"or magpsf/sigmapsf; missing {missing or ['magnitudes']}")
    if non_detections is not None:
        lack = [c for c in NON_DETECTION_COLUMNS if c not in non_detections.columns]
        if "mjd" in lack and "jd" in non_detections.columns:
            non_detections = non_detections.assign(mjd=non_detections["jd"] - 2400000.5)
            lack.remove("mjd")
        if lack:
            raise TableError(f"non-detections need columns {NON_DETECTION_COLUMNS}; "
                             f"missing {lack}")
        nd_groups = dict(tuple(non_detections.groupby("oid", sort=False)))
    else:
        nd_groups = {}
    obj = objects.set_index("oid") if objects is not None and "oid" in objects.columns \
        else None
    for oid, det in detections.groupby("oid", sort=True):
        magpsf = _column(det, "magpsf")
        sigmapsf = _column(det, "sigmapsf")
        mag_corr = _column(det, "magpsf_corr")
        err_corr = _column(det, "sigmapsf_corr_ext")
        if err_corr is None or not np.isfinite(err_corr).any():
            err_corr = _column(det, "sigmapsf_corr")
        if obj is not None and oid in obj.index and "corrected" in obj.columns:
            corrected = bool(obj.loc[oid, "corrected"])
        elif "corrected" in det.columns:
            corrected = bool(det["corrected"].fillna(False).astype(bool).all())
        else:
            corrected = mag_corr is not None and bool(np.isfinite(mag_corr).any())
        if magpsf is None or sigmapsf is None:
            assert mag_corr is not None and err_corr is not None
            magpsf, sigmapsf = mag_corr, err_corr
        mag, err = choose_magnitudes(corrected, magpsf, sigmapsf, mag_corr, err_corr)

        ra = _meta(obj, oid, det, "meanra") if obj is not None and "meanra" in obj.columns \
            else _meta(obj, oid, det, "ra")
        dec = _meta(obj, oid, det, "meandec") if obj is not None and "meandec" in obj.columns \
            else _meta(obj, oid, det, "dec")
        nd = nd_groups.get(oid)
        yield str(oid), LightCurve(
            mjd=det["mjd"].to_numpy(dtype=np.float64),
            fid=det["fid"].to_numpy(dtype=np.int64),
            mag=mag, err=err, magpsf=magpsf, sigmapsf=sigmapsf,
            isdiffpos=_isdiffpos(det["isdiffpos"]) if "isdiffpos" in det.columns
            else np.ones(len(det)),
            rb=_column(det, "rb"), ra=ra, dec=dec, sgscore1=_meta(obj, oid, det, "sgscore1"),
            nd_mjd=np.empty(0) if nd is None else nd["mjd"].to_numpy(dtype=np.float64),
            nd_fid=np.empty(0, dtype=np.int64) if nd is None
            else nd["fid"].to_numpy(dtype=np.int64),
            nd_diffmaglim=np.empty(0) if nd is None
            else nd["diffmaglim"].to_numpy(dtype=np.float64))


def features_table(detections: pd.DataFrame, non_detections: pd.DataFrame | None = None,
                   objects: pd.DataFrame | None = None,
                   progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """One row per oid, columns named as ALeRCE names its features (index ``oid``)."""
    rows: dict[str, FeatureVector] = {}
    for oid, lc in light_curves(detections, non_detections, objects):
        rows[oid] = extract(lc)
        if progress:
            progress(len(rows))
    table = pd.DataFrame([fv.as_array() for fv in rows.values()], columns=list(FEATURE_NAMES),
                         index=pd.Index(list(rows), name="oid"))
    return table


def mask_degenerate_harmonics(features: pd.DataFrame,
                              suffixes: tuple[str, ...] = ("1", "2")) -> pd.DataFrame:
    """A copy of a feature table with each band's harmonic features NaN where
    :func:`ml.features.models.harmonics_degenerate` rejects them: the extractor's own
    rule, applied to tables from other extractors (ALeRCE's keep such values)."""
    out = features.copy()
    for suffix in suffixes:
        magnitudes = [c for c in (f"{n}_{suffix}" for n in HARMONICS_NAMES
                                  if n.startswith("Harmonics_mag")) if c in out]
        if not magnitudes:
            continue
        largest = out[magnitudes].max(axis=1, skipna=True).to_numpy(float)
        n_det = _values(out, f"n_det_{suffix}")
        n_det = np.where(np.isfinite(n_det), n_det, math.inf)  # an unknown count passes
        amplitude = _values(out, f"Amplitude_{suffix}")
        bad = np.array([harmonics_degenerate(n, a, h) is not None
                        for n, a, h in zip(n_det, amplitude, largest, strict=True)],
                       dtype=bool)
        columns = [c for c in (f"{n}_{suffix}" for n in HARMONICS_NAMES) if c in out]
        out.loc[bad, columns] = np.nan
    return out


def _values(table: pd.DataFrame, column: str) -> np.ndarray:
    """A column as floats, NaN where the table lacks it."""
    if column in table:
        return table[column].to_numpy(dtype=np.float64)
    return np.full(len(table), math.nan)
