"""Real alerts for the stamp classifier: reading them, deriving labels, the shipped model.

Alerts come as ZTF Avro files (or tar archives of them) and as Fink-style parquet
(one alert per row, cutouts as ``cutout*.stampData``, with Fink's ``cdsxmatch`` and
``roid`` annotations).  Labels follow the rules of :mod:`ml.stamp_classifier.labels`;
curated classifications (ALeRCE's spectroscopic/catalogue labels, TNS types, the CTAO
list of blazars with their ZTF names) are read from the shared data when present.

``python -m nightjar.training.stamps`` rebuilds the shipped model
``ml/models/stamp_classifier/<version>`` with its model card from ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.stamp_classifier.dataset import StampSet, normalise_class
from ml.stamp_classifier.labels import VariableCatalogues, label_alert
from ml.stamp_classifier.preprocess import CUTOUT_KINDS
from nightjar.runner.ingest import expand_paths, iter_inputs
from nightjar.runner.stamp_classify import cutout_triplet
from nightjar.surveys.registry import AlertParser
from nightjar.values import finite_or_none

PARQUET_SUFFIXES = (".parquet",)

#: ALeRCE's light-curve classes (curated from spectroscopy and variable-star catalogues)
#: as stamp classes
ALERCE_TO_STAMP = {
    "SNIa": "SN", "SNIbc": "SN", "SNII": "SN", "SNIIn": "SN", "SNIIb": "SN", "SLSN": "SN",
    "QSO": "AGN", "AGN": "AGN", "Blazar": "AGN",
    "RRL": "VS", "EB": "VS", "E": "VS", "EA": "VS", "LPV": "VS", "CEP": "VS", "Ceph": "VS",
    "DSCT": "VS", "Periodic-Other": "VS", "YSO": "VS", "CV/Nova": "VS"}


@dataclass
class AlertForStamps:
    """What labelling and training need of one alert."""

    oid: str
    candid: int
    candidate: dict[str, Any]
    images: np.ndarray  #: (3, 63, 63) raw cutouts
    source: str
    cdsxmatch: str | None = None
    roid: int | None = None


def first_alerts(alerts: Iterable[AlertForStamps]) -> list[AlertForStamps]:
    """The first alert (smallest ``jd``, then ``candid``) of each object, in first-seen
    order: what the live pipeline classifies."""
    best: dict[str, AlertForStamps] = {}
    for alert in alerts:
        current = best.get(alert.oid)
        if current is None or _arrival(alert) < _arrival(current):
            best[alert.oid] = alert
    return list(best.values())


def _arrival(alert: AlertForStamps) -> tuple[float, int]:
    return alert.candidate.get("jd") or 0.0, alert.candid


def _parquet_alerts(path: Path) -> list[AlertForStamps]:
    table = pd.read_parquet(path)
    out = []
    for row in table.itertuples(index=False):
        record = row._asdict()
        cutouts = {kind: (record.get(f"cutout{kind.title()}") or {}).get("stampData")
                   for kind in CUTOUT_KINDS}
        images = cutout_triplet({k: v for k, v in cutouts.items() if v})
        if images is None:
            continue
        candidate = {k: finite_or_none(v) for k, v in dict(record["candidate"]).items()}
        roid = record.get("roid")
        out.append(AlertForStamps(
            str(record["objectId"]), int(record["candid"]), candidate, images, str(path),
            cdsxmatch=record.get("cdsxmatch"), roid=None if roid is None else int(roid)))
    return out


def read_alerts(paths: Iterable[Path]) -> tuple[list[AlertForStamps], int]:
    """Alerts with all three cutouts from Avro/tar files and parquet tables (files or
    directories); returns them and the number of alerts skipped (unreadable, or
    without cutouts)."""
    paths = list(paths)  # walked twice
    files = expand_paths(paths)
    for path in paths:  # expand_paths only looks for Avro and tar
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.name.endswith(PARQUET_SUFFIXES))
        elif path.name.endswith(PARQUET_SUFFIXES) and path not in files:
            files.append(path)
    parser = AlertParser()
    alerts: list[AlertForStamps] = []
    skipped = 0
    for path in files:
        if path.name.endswith(PARQUET_SUFFIXES):
            alerts += _parquet_alerts(path)
            continue
        for item in iter_inputs([path]):
            if item.error:
                skipped += 1
                continue
            good, bad = parser.parse(item.raw, item.source)
            skipped += len(bad)
            for alert in good:
                images = cutout_triplet(alert.cutouts)
                if images is None:
                    skipped += 1
                    continue
                alerts.append(AlertForStamps(alert.oid, alert.candid, alert.candidate, images,
                                             str(item.source)))
    unique = {a.candid: a for a in alerts}  # the same alert shipped by two sources
    return list(unique.values()), skipped


def curated_labels(data: Path) -> dict[str, tuple[str, str]]:
    """{oid: (stamp class, source)} from the curated lists under ``shared/data``:
    ALeRCE's labelled objects, TNS objects with a spectroscopic type, CTAO blazars."""
    out: dict[str, tuple[str, str]] = {}
    alerce = data / "lightcurves" / "alerce-lc-classifier"
    for path in sorted(alerce.glob("*/*label*.csv")):
        table = pd.read_csv(path)
        key = "oid" if "oid" in table.columns else "objectId"
        for oid, cls in zip(table[key], table["classALeRCE"], strict=True):
            if cls in ALERCE_TO_STAMP:
                out[str(oid)] = (ALERCE_TO_STAMP[cls], f"ALeRCE label {cls} ({path.name})")
    tns = data / "catalogs" / "tns_raw.parquet"
    if tns.exists():
        for row in pd.read_parquet(tns).itertuples():
            kind = str(row.type) if isinstance(row.type, str) else ""
            for name in str(row.internal_names or "").split(","):
                if name.strip().startswith("ZTF") and kind.startswith("SN"):
                    out[name.strip()] = ("SN", f"TNS {row.name_prefix} {row.name}: {kind}")
    ctao = data / "catalogs" / "CTAO_blazars_ztf_dr23.v03_2026.parquet"
    if ctao.exists():
        for row in pd.read_parquet(ctao, columns=["Source_name", "ZTF_name"]).itertuples():
            out[str(row.ZTF_name)] = ("AGN", f"CTAO blazar list: {row.Source_name}")
    return out


def derive_labels(alerts: Sequence[AlertForStamps], catalogs: Path | None,
                  curated: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Labels of the first alert of each object by the rules of
    :mod:`ml.stamp_classifier.labels`: columns oid, candid, class, family (the rule's
    short name), rule (the evidence)."""
    firsts = first_alerts(alerts)
    matches: list[tuple[str, str, float] | None] = [None] * len(firsts)
    if catalogs is not None and catalogs.is_dir():
        matcher = VariableCatalogues(catalogs)
        ra = np.array([float(a.candidate["ra"]) for a in firsts])
        dec = np.array([float(a.candidate["dec"]) for a in firsts])
        matches = matcher.nearest(ra, dec)
    rows = []
    for alert, match in zip(firsts, matches, strict=True):
        known = curated.get(alert.oid)
        label = label_alert(alert.candidate, difference=alert.images[2],
                            cdsxmatch=alert.cdsxmatch, roid=alert.roid,
                            known_class=known[0] if known else None,
                            known_source=known[1] if known else "", catalogue_type=match)
        if label is not None:
            rows.append({"oid": alert.oid, "candid": alert.candid, "class": label.label,
                         "family": label.family, "rule": label.rule})
    return pd.DataFrame(rows, columns=["oid", "candid", "class", "family", "rule"])


def labelled_set(alerts: Sequence[AlertForStamps], key: str, labels: dict[Any, str]
                 ) -> StampSet:
    """The labelled alerts: by candid, that alert; by oid, the object's first alert with
    cutouts (what the live pipeline classifies)."""
    chosen: list[AlertForStamps]
    if key == "candid":
        chosen = [a for a in alerts if a.candid in labels]
    else:
        chosen = [a for a in first_alerts(alerts) if a.oid in labels]
    chosen.sort(key=lambda a: (a.oid, a.candid))
    classes = [normalise_class(labels[a.candid if key == "candid" else a.oid]) for a in chosen]
    images = np.stack([a.images for a in chosen]) if chosen else np.zeros((0, 3, 63, 63),
                                                                          np.float32)
    return StampSet(images, [a.candidate for a in chosen], np.array(classes, dtype=object),
                    [a.oid for a in chosen], [a.candid for a in chosen])


# ------------------------------------------------------------------ the shipped model

SHIPPED_VERSION = "1.0.0"
SHIPPED_SEED = 0


def _card_markdown(card: dict[str, Any], labels: pd.DataFrame) -> str:
    metrics = card["metrics"]
    real = metrics.get("real_held_out", {})
    sim = metrics["simulated"]
    lines = [
        f"# Model card: stamp_classifier {card['version']}", "",
        "Classifies an object's **first alert** (three cutouts + alert metadata) into AGN, "
        "SN, VS (variable star), asteroid or bogus. Rotation-invariant CNN after "
        "Carrasco-Davis et al. 2021 (AJ 162, 231), trained with torch, shipped as ONNX "
        "(`model.onnx`, run by ONNX Runtime; no torch needed at run time).", "",
        "## Read this first", "",
        "This is **not** an ALeRCE-grade stamp classifier. ALeRCE trained on ~50,000 "
        "labelled alerts; those are not reachable here. This model learned the morphology "
        f"from {card['n_train']['simulated']} simulated alerts (`ml/stamp_classifier/"
        f"simulate.py`) and {card['n_train']['real']} real labelled ZTF alerts, and is "
        f"evaluated on the {real.get('n', 0)} real labelled alerts it never saw. With so "
        "few real test alerts the per-class figures below have uncertainties of tens of "
        "per cent; treat them as a smoke test of the approach on real data, not as a "
        "performance claim.", "",
        "## Training data", "",
        f"- Simulated: {card['n_train']['simulated']} alerts, all five classes balanced.",
        f"- Real: the first alert with cutouts of each object in `shared/data/ztf/alerts` "
        f"(ZTF Avro, 2018-2023) and Fink's parquet sample; {len(labels)} objects got a label "
        "from strong evidence (rules in `ml/stamp_classifier/labels.py`): "
        + ", ".join(f"{c} {n}" for c, n in labels["class"].value_counts().items()) + ".",
        f"- Real alerts used for training, by class: {card['n_train']['real_by_class']}.",
        f"- Held out (never trained on), by class: {card['held_out']['by_class']}.", "",
        "Labels by rule (each alert's evidence is in `real_labels.csv`):", "",
    ]
    for (cls, family), n in labels.groupby(["class", "family"]).size().items():
        lines.append(f"- {cls}: {family} ({n})")
    lines += ["", "## Metrics", "",
              "| set | n | balanced accuracy | " + " | ".join(
                  f"recall {c}" for c in card["classes"]) + " |",
              "|---|---|---|" + "---|" * len(card["classes"])]
    for name, m in (("real, held out", real), ("simulated, held out", sim)):
        if not m:
            continue
        recalls = " | ".join(f"{m['recall'][c]:.2f} ({m['support'][c]})" if c in m["recall"]
                             else "-" for c in card["classes"])
        lines.append(f"| {name} | {m['n']} | {m['balanced_accuracy']:.2f} | {recalls} |")
    lines += ["", "Recall with the number of alerts in brackets. Confusion matrices: "
              "`confusion_real_held_out.png`, `confusion_simulated.png` (written by "
              "`nightjar ml evaluate --classifier stamp_classifier`).", "",
              "Held-out real predictions:", ""]
    for p in real.get("predictions", []):
        lines.append(f"- {p['oid']} ({p['candid']}): true {p['true']}, predicted "
                     f"{p['predicted']} ({p['probability']:.2f})")
    lines += ["", "## Inputs", "",
              f"- Cutouts: science, template, difference, centre {card['crop']}x"
              f"{card['crop']} pixels, each normalised (median to 0, largest deviation to "
              "1, NaN to 0), seen in 4 rotations with the features averaged (cyclic "
              "pooling): a rotated alert gets the same probabilities.",
              "- Metadata (standardised with the median/scale stored in `model.json`): "
              + ", ".join(card["metadata"]["features"]) + ".", "",
              "## Reproduce", "", "`python -m nightjar.training.stamps` (seed "
              f"{card['seed']}, {card['train_seconds']} s on the build machine; "
              "deterministic for a seed on one machine).", "",
              f"Libraries: {json.dumps(card['libraries'])}", ""]
    return "\n".join(lines)


def write_card(out_dir: Path, labels: pd.DataFrame) -> None:
    """MODEL_CARD.md and real_labels.csv of a trained model folder."""
    card = json.loads((out_dir / "model.json").read_text())
    labels.to_csv(out_dir / "real_labels.csv", index=False)
    (out_dir / "MODEL_CARD.md").write_text(_card_markdown(card, labels))


def build_shipped(data: Path, out_root: Path, version: str = SHIPPED_VERSION,
                  simulated_per_class: int = 2000) -> Path:
    """Derive the real labels from ``data``, train, register under ``out_root``."""
    from ml.stamp_classifier import NAME
    from ml.stamp_classifier.evaluate import write_report
    from ml.stamp_classifier.train import train_and_register

    alerts, _ = read_alerts([data / "ztf" / "alerts", data / "ztf" / "alerts-parquet"])
    labels = derive_labels(alerts, data / "catalogs", curated_labels(data))
    real = labelled_set(alerts, "oid", dict(zip(labels["oid"], labels["class"], strict=True)))
    out_dir = out_root / NAME / version
    _, metrics = train_and_register(
        real, out_dir, version, seed=SHIPPED_SEED, holdout=0.5,
        simulated_per_class=simulated_per_class,
        training_data=f"{simulated_per_class} simulated alerts per class + real ZTF alerts "
                      "of shared/data/ztf labelled by ml/stamp_classifier/labels.py",
        progress=print_epoch)
    for name, m in metrics.items():
        write_report(m, name, out_dir)
    write_card(out_dir, labels)
    return out_dir


def print_epoch(epoch: int, epochs: int, loss: float) -> None:
    """Training progress of a shipped build, one line per epoch."""
    print(f"epoch {epoch}/{epochs} loss {loss:.3f}", flush=True)


def build_arguments(doc: str, version: str, simulated_per_class: int, card_only: str,
                    argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of a shipped stamp-model build (``--data``, ``--out``,
    ``--version``, ``--simulated-per-class``, ``--card-only``)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[2] / "ml" / "models")
    parser.add_argument("--version", default=version)
    parser.add_argument("--simulated-per-class", type=int, default=simulated_per_class)
    parser.add_argument("--card-only", action="store_true", help=card_only)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_arguments(__doc__, SHIPPED_VERSION, 2000, "rewrite MODEL_CARD.md and "
                           "real_labels.csv of a built model", argv)
    if args.card_only:
        from ml.stamp_classifier import NAME

        alerts, _ = read_alerts([args.data / "ztf" / "alerts",
                                 args.data / "ztf" / "alerts-parquet"])
        labels = derive_labels(alerts, args.data / "catalogs", curated_labels(args.data))
        write_card(args.out / NAME / args.version, labels)
        return 0
    out = build_shipped(args.data, args.out, args.version, args.simulated_per_class)
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
