"""Rows (lists of dicts with snake_case keys) in the formats ALeRCE's client offers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
from astropy.table import MaskedColumn, Table

from nightjar_client.errors import ParseError

FORMATS = ("json", "pandas", "votable", "csv")

# Units of the columns the gateway serves (its SDL documents them); a VOTable carries them.
_DEG = ("ra", "dec", "meanra", "meandec")
_MAG = ("magpsf", "sigmapsf", "magpsf_corr", "sigmapsf_corr", "sigmapsf_corr_ext", "magnr",
        "sigmagnr", "diffmaglim", "mag", "mag_err", "e_mag", "magzpsci", "g_r_max",
        "g_r_max_corr", "g_r_mean", "g_r_mean_corr", "dm_first", "sigmadm_first",
        "magmean", "magmedian", "magmax", "magmin", "magsigma", "magfirst", "maglast",
        "magmean_corr", "magmedian_corr", "magmax_corr", "magmin_corr", "magsigma_corr",
        "magfirst_corr", "maglast_corr")
_DAY = ("mjd", "firstmjd", "lastmjd", "deltajd", "dt_first")
_ARCSEC = ("sigmara", "sigmadec", "distance_arcsec", "distnr", "radius")
UNITS: dict[str, str] = {**dict.fromkeys(_DEG, "deg"), **dict.fromkeys(_MAG, "mag"),
                         **dict.fromkeys(_DAY, "d"), **dict.fromkeys(_ARCSEC, "arcsec"),
                         "dmdt_first": "mag / d"}
# 64-bit ids: kept exact (a float64 column would round a 19-digit candid)
BIG_INTEGERS = ("candid", "parent_candid", "rfid", "pid")


def check_format(format: str, allowed: Sequence[str] = FORMATS) -> str:
    """The format in lower case; :class:`ParseError` when it is not one of ``allowed``."""
    name = format.lower()
    if name not in allowed:
        raise ParseError(f"format {format!r} is not one of {', '.join(allowed)}")
    return name


def to_format(rows: list[dict[str, Any]], format: str, columns: Sequence[str] | None = None,
              index: str | None = None, sort: str | None = None) -> Any:
    """``rows`` as ``format``.

    Parameters
    ----------
    rows : list of dict
        One dict per row.
    format : {"json", "pandas", "votable", "csv"}
        json: the rows themselves; pandas: a DataFrame; votable: an astropy Table with
        units (``table.write(path, format="votable")`` writes the VOTable); csv: text.
    columns : sequence of str, optional
        The leading columns (the others follow in order of appearance), and the
        columns of an empty answer.
    index, sort : str, optional
        pandas only (as in ALeRCE's client): sort by ``sort``, then index by ``index``.
    """
    name = check_format(format)
    if name == "json":
        return rows
    order = list(dict.fromkeys([*(columns or []), *(k for row in rows for k in row)]))
    frame = pd.DataFrame(rows, columns=order)
    for big in BIG_INTEGERS:
        if big in frame.columns:
            frame[big] = pd.array([row.get(big) for row in rows], dtype="Int64")
    if name == "pandas":
        for column in (sort, index):
            if column is not None and column not in frame.columns:
                raise ParseError(f"no column {column!r}; the columns are "
                                 f"{', '.join(map(str, frame.columns))}")
        if sort is not None:
            frame = frame.sort_values(sort)
        if index is not None:
            frame = frame.set_index(index)
        return frame
    if name == "csv":
        return frame.to_csv(index=False)
    return to_table(frame)


def to_table(frame: pd.DataFrame) -> Table:
    """An astropy Table of ``frame`` with units; lists and dicts become JSON text."""
    table = Table()
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.Int64Dtype):
            table[str(column)] = MaskedColumn(values.fillna(0).astype("int64").to_numpy(),
                                              mask=values.isna().to_numpy())
            continue
        if values.map(lambda v: isinstance(v, list | dict)).any():
            values = values.map(lambda v: json.dumps(v) if isinstance(v, list | dict) else v)
        if values.dtype == object:
            # VOTable has no "object" type: text, with missing values empty
            values = values.map(lambda v: "" if v is None else str(v))
        table[str(column)] = values.to_numpy()
        if column in UNITS:
            table[str(column)].unit = UNITS[column]
    return table
