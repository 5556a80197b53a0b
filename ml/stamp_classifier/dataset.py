"""Labelled alerts for the stamp classifier: cutout triplets, metadata, classes.

No torch here: evaluation and the live path use these too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from ml.stamp_classifier import CLASSES

#: accepted spellings of the classes in a labels file (case-insensitive)
CLASS_ALIASES = {c.lower(): c for c in CLASSES} | {
    "variable": "VS", "variable_star": "VS", "star": "VS", "qso": "AGN", "supernova": "SN",
    "sso": "asteroid", "solar_system": "asteroid", "artefact": "bogus", "artifact": "bogus"}


class LabelsError(ValueError):
    """A labels table that cannot be used."""


@dataclass
class StampSet:
    """Alerts with their cutouts (raw, (n, 3, 63, 63) float32, NaN kept), ``candidate``
    records, classes, and where each came from (``oid``, ``candid``, ``source``)."""

    images: np.ndarray
    candidates: list[dict[str, Any]]
    labels: np.ndarray
    oids: list[str]
    candids: list[int | None]
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sources:
            self.sources = ["real"] * len(self.labels)
        n = len(self.labels)
        if not (len(self.images) == len(self.candidates) == len(self.oids) ==
                len(self.candids) == len(self.sources) == n):
            raise ValueError("StampSet columns differ in length")
        unknown = set(self.labels.tolist()) - set(CLASSES)
        if unknown:
            raise LabelsError(f"unknown classes {sorted(unknown)}; classes are {CLASSES}")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: Sequence[int] | np.ndarray) -> StampSet:
        idx = [int(i) for i in index]
        return StampSet(self.images[idx] if idx else self.images[:0],
                        [self.candidates[i] for i in idx], self.labels[idx],
                        [self.oids[i] for i in idx], [self.candids[i] for i in idx],
                        [self.sources[i] for i in idx])

    @classmethod
    def concat(cls, parts: Sequence[StampSet]) -> StampSet:
        parts = [p for p in parts if len(p)]
        if not parts:
            raise ValueError("nothing to concatenate")
        return cls(np.concatenate([p.images for p in parts]),
                   [c for p in parts for c in p.candidates],
                   np.concatenate([p.labels for p in parts]),
                   [o for p in parts for o in p.oids], [c for p in parts for c in p.candids],
                   [s for p in parts for s in p.sources])

    def counts(self) -> dict[str, int]:
        return {c: int(np.sum(self.labels == c)) for c in CLASSES if np.any(self.labels == c)}


def normalise_class(value: Any) -> str:
    """A labels-file class as one of :data:`CLASSES` (raises :class:`LabelsError`)."""
    name = CLASS_ALIASES.get(str(value).strip().lower())
    if name is None:
        raise LabelsError(f"unknown class {value!r}; classes are {', '.join(CLASSES)}")
    return name


def read_labels(table: pd.DataFrame) -> tuple[str, dict[Any, str]]:
    """(key column, {oid or candid: class}) from a labels table with columns ``oid`` (or
    ``objectId``) or ``candid``, and ``class`` (or ``label``)."""
    columns = {c.lower(): c for c in table.columns}
    key = next((columns[k] for k in ("candid", "oid", "objectid") if k in columns), None)
    value = next((columns[k] for k in ("class", "label", "class_name") if k in columns), None)
    if key is None or value is None:
        raise LabelsError(f"labels need an oid (or candid) column and a class column; got "
                          f"{list(table.columns)}")
    out: dict[Any, str] = {}
    for k, v in zip(table[key], table[value], strict=True):
        k = int(k) if key == columns.get("candid") else str(k)
        out[k] = normalise_class(v)
    return ("candid" if key == columns.get("candid") else "oid"), out


def stratified_split(labels: np.ndarray, groups: Sequence[str], holdout: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held out), split by object (``groups``) and stratified by class;
    classes with a single object go to training."""
    first: dict[str, int] = {}
    for i, group in enumerate(groups):
        first.setdefault(group, i)
    objects = list(first)
    object_class = np.array([labels[first[o]] for o in objects])
    counts = pd.Series(object_class).value_counts()
    common = [o for o, c in zip(objects, object_class, strict=True) if counts[c] >= 2]
    rare = [o for o in objects if o not in set(common)]
    if holdout <= 0 or len(common) < 2:
        return np.arange(len(labels)), np.arange(0)
    stratify = [labels[first[o]] for o in common]
    n_test = max(round(holdout * len(common)), len(set(stratify)))
    if n_test >= len(common):
        return np.arange(len(labels)), np.arange(0)
    train_objects, test_objects = train_test_split(
        common, test_size=n_test, random_state=seed, stratify=stratify)
    train_set = set(train_objects) | set(rare)
    test_set = set(test_objects)
    train = np.array([i for i, g in enumerate(groups) if g in train_set], dtype=int)
    test = np.array([i for i, g in enumerate(groups) if g in test_set], dtype=int)
    return train, test
