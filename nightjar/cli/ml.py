"""``nightjar ml``: feature extraction, training, evaluation and the model registry."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    import pandas as pd

    from ml.stamp_classifier.dataset import StampSet
    from nightjar.settings import Settings

ml_app = typer.Typer(help="Light-curve features, the classifiers and their registry",
                     no_args_is_help=True)
train_app = typer.Typer(help="Train a classifier and register it", no_args_is_help=True)
label_app = typer.Typer(help="Derive labels for real alerts", no_args_is_help=True)
anomaly_app = typer.Typer(help="The anomaly score: evaluation", no_args_is_help=True)
ml_app.add_typer(train_app, name="train")
ml_app.add_typer(label_app, name="label")
ml_app.add_typer(anomaly_app, name="anomaly")
console = Console(stderr=True)

DetectionsOpt = Annotated[Path | None, typer.Option(
    "--detections", help="detections, CSV or parquet: oid, mjd, fid, magpsf_corr, "
                         "sigmapsf_corr (and magpsf, sigmapsf, corrected, isdiffpos, rb, "
                         "sgscore1, ra, dec when present)")]
NonDetectionsOpt = Annotated[Path | None, typer.Option(
    "--non-detections", help="upper limits: oid, mjd, fid, diffmaglim")]
ObjectsOpt = Annotated[Path | None, typer.Option(
    "--objects", help="per-object table: oid with corrected, meanra, meandec, sgscore1")]
FeaturesOpt = Annotated[Path | None, typer.Option(
    "--features", help="feature table with ALeRCE's column names, one row per oid")]
LabelsOpt = Annotated[Path, typer.Option(
    "--labels", help="labels: oid (or objectId), classALeRCE")]
AlertsOpt = Annotated[list[Path], typer.Option(
    "--alerts", help="ZTF alerts: Avro files, tar archives, Fink-style parquet, or folders "
                     "of them (repeatable)")]
StampLabelsOpt = Annotated[Path, typer.Option(
    "--labels", help="labels, CSV or parquet: oid (or candid) and class (AGN, SN, VS, "
                     "asteroid, bogus)")]


def _settings() -> Settings:
    from nightjar.cli import _settings as settings  # one way to read them, one error message

    return settings()


def _new_model_dir(settings: Settings, name: str, version: str | None) -> tuple[str, Path]:
    """(version, folder) for a model about to be trained: the given semantic version or
    a minor bump over the newest registered; exits when invalid or already there."""
    from ml.registry import ModelRegistry, parse_version

    version = version or ModelRegistry.default(settings.home).next_version(name)
    try:
        parse_version(version)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    out_dir = settings.home / "models" / name / version
    if out_dir.exists():
        console.print(f"[red]error:[/red] {out_dir} exists; choose another --version")
        raise typer.Exit(2)
    return version, out_dir


def _feature_table(features: Path | None, detections: Path | None,
                   non_detections: Path | None, objects: Path | None) -> pd.DataFrame:
    from ml.features.table import TableError, features_table, read_table

    try:
        if features is not None:
            table = read_table(features)
            if "oid" not in table.columns:
                raise TableError(f"{features}: no oid (or objectId) column")
            return table.set_index("oid")
        if detections is None:
            raise TableError("give --features, or --detections to compute them")
        det = read_table(detections)
        nd = read_table(non_detections) if non_detections else None
        obj = read_table(objects) if objects else None
        n_objects = det["oid"].nunique() if "oid" in det.columns else 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with console.status(f"computing features of {n_objects} objects") as status:
                return features_table(det, nd, obj, progress=lambda n: status.update(
                    f"computing features: {n}/{n_objects} objects"))
    except (TableError, OSError, ValueError, KeyError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@ml_app.command("features")
def features_command(
    detections: Annotated[Path, typer.Option(
        "--detections", help="detections, CSV or parquet (ALeRCE's column names)")],
    out: Annotated[Path, typer.Option("--out", help="output table, .csv or .parquet")],
    non_detections: NonDetectionsOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    """Compute ALeRCE's light-curve features, one row per oid."""
    from ml.features.table import write_table

    table = _feature_table(None, detections, non_detections, objects)
    write_table(table, out)
    console.print(f"{len(table)} objects x {table.shape[1]} features -> {out}")


@train_app.command("lc")
def train_lc(
    labels: LabelsOpt,
    features: FeaturesOpt = None,
    detections: DetectionsOpt = None,
    non_detections: NonDetectionsOpt = None,
    objects: ObjectsOpt = None,
    version: Annotated[str | None, typer.Option(
        help="semantic version (default: a minor bump over the newest registered)")] = None,
    holdout: Annotated[float, typer.Option(
        min=0.0, max=0.9, help="stratified fraction held out for evaluation")] = 0.3,
    seed: Annotated[int, typer.Option(help="random seed (training is deterministic)")] = 0,
) -> None:
    """Train the hierarchical light-curve classifier and register it under NIGHTJAR_HOME."""
    from ml.lc_classifier.taxonomy import FULL_CLASSIFIER
    from ml.lc_classifier.train import read_labels, train_and_register

    settings = _settings()
    table = _feature_table(features, detections, non_detections, objects)
    from ml.features.table import read_table

    label_series = read_labels(read_table(labels))
    version, out_dir = _new_model_dir(settings, FULL_CLASSIFIER, version)
    source = str(features or detections)
    try:
        model, metrics = train_and_register(
            table, label_series, out_dir, version, seed=seed, holdout=holdout,
            training_data=f"{source} with labels {labels}")
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"trained {FULL_CLASSIFIER} {version} on {model.card['n_train']} objects "
                  f"-> {out_dir}")
    if metrics:
        console.print(f"held-out balanced accuracy: top {metrics['top']['balanced_accuracy']:.3f}"
                      f", 15-class {metrics['full']['balanced_accuracy']:.3f}")


def _stamp_set(alerts: list[Path], labels: Path) -> StampSet:
    from ml.features.table import read_table
    from ml.stamp_classifier.dataset import LabelsError, read_labels
    from nightjar.training.stamps import labelled_set, read_alerts

    try:
        key, mapping = read_labels(read_table(labels))
        with console.status("reading alerts"):
            found, skipped = read_alerts(alerts)
    except (LabelsError, OSError, ValueError, KeyError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    data = labelled_set(found, key, mapping)
    console.print(f"{len(found)} alerts with cutouts ({skipped} skipped); {len(data)} "
                  f"labelled by {key}: {data.counts()}")
    return data


@label_app.command("stamps")
def label_stamps(
    alerts: AlertsOpt,
    out: Annotated[Path, typer.Option("--out", help="labels CSV: oid, candid, class, rule")],
    data: Annotated[Path | None, typer.Option(
        help="the shared data folder: catalogs/ (GCVS, VSX, CTAO blazars, TNS) and "
             "ALeRCE's labelled lists (default: the shared_data setting)")] = None,
) -> None:
    """Label the first alert of each object from strong evidence (rules in
    ml/stamp_classifier/labels.py); every label says which rule gave it."""
    from nightjar.training.stamps import curated_labels, derive_labels, read_alerts

    data = data or _settings().shared_data
    found, skipped = read_alerts(alerts)
    labels = derive_labels(found, data / "catalogs", curated_labels(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    labels.to_csv(out, index=False)
    console.print(f"{len(found)} alerts ({skipped} skipped), "
                  f"{len({a.oid for a in found})} objects; {len(labels)} labelled: "
                  f"{labels['class'].value_counts().to_dict()} -> {out}")


@train_app.command("stamps")
def train_stamps(
    alerts: AlertsOpt,
    labels: StampLabelsOpt,
    version: Annotated[str | None, typer.Option(
        help="semantic version (default: a minor bump over the newest registered)")] = None,
    holdout: Annotated[float, typer.Option(
        min=0.0, max=0.9, help="fraction of the labelled objects held out (stratified) for "
                               "the evaluation written to the model card")] = 0.4,
    simulated: Annotated[int, typer.Option(
        min=0, help="simulated alerts per class added to the training set")] = 2000,
    epochs: Annotated[int, typer.Option(min=1)] = 14,
    seed: Annotated[int, typer.Option(help="random seed (training is deterministic)")] = 0,
) -> None:
    """Train the stamp classifier (torch; needs the train dependency group), export it to
    ONNX and register it under NIGHTJAR_HOME."""
    try:
        from ml.stamp_classifier.train import TrainConfig, train_and_register
    except ImportError as exc:
        console.print(f"[red]error:[/red] training needs torch and onnx ({exc}); install "
                      "them with `uv sync --group train`")
        raise typer.Exit(2) from exc
    from ml.stamp_classifier import NAME
    from ml.stamp_classifier.evaluate import write_report

    settings = _settings()
    data = _stamp_set(alerts, labels)
    version, out_dir = _new_model_dir(settings, NAME, version)
    try:
        model, metrics = train_and_register(
            data, out_dir, version, seed=seed, holdout=holdout, simulated_per_class=simulated,
            config=TrainConfig(epochs=epochs),
            training_data=f"{simulated} simulated alerts per class + alerts "
                          f"{', '.join(map(str, alerts))} labelled by {labels}",
            progress=lambda e, n, loss: console.print(f"epoch {e}/{n}: loss {loss:.3f}"))
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    for name, m in metrics.items():
        write_report(m, name, out_dir)
    console.print(f"trained {NAME} {version} on {model.card['n_train']} -> {out_dir}")
    for name, m in metrics.items():
        console.print(f"{name}: n={m['n']} balanced accuracy {m['balanced_accuracy']:.3f}, "
                      f"recall {m['recall']}")


def _evaluate_stamps(alerts: list[Path], labels: Path, version: str | None,
                     out: Path | None) -> None:
    from ml.registry import ModelRegistry
    from ml.stamp_classifier import NAME
    from ml.stamp_classifier.evaluate import evaluate, write_report
    from ml.stamp_classifier.runtime import ModelFileError, StampModel

    settings = _settings()
    try:
        registered = ModelRegistry.default(settings.home).get(NAME, version)
        model = StampModel.load(registered.path)
    except (LookupError, ModelFileError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    data = _stamp_set(alerts, labels)
    if not len(data):
        console.print("[red]error:[/red] no labelled alert with cutouts")
        raise typer.Exit(2)
    metrics = evaluate(model, data)
    out = out or _evaluation_dir(settings, registered.path, NAME, registered.version)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    png = write_report(metrics, "evaluation", out)
    console.print(f"n={metrics['n']} balanced accuracy {metrics['balanced_accuracy']:.3f} "
                  f"recall {metrics['recall']}")
    console.print(f"metrics and {png.name} -> {out}")


def _evaluate_lsst_stamps(alerts: list[Path] | None, version: str | None,
                          out: Path | None) -> None:
    """The LSST stamp classifier on real Rubin alerts (Fink's parquet samples; default
    the shared data's): labelled recall, agreement with Rubin's reliability, calls."""
    from ml.stamp_classifier import LSST_NAME
    from ml.stamp_classifier.runtime import ModelFileError
    from nightjar.runner.stamp_classify import load_stamp_model
    from nightjar.training.lsst_stamps import RUBIN_SAMPLES, read_rubin_alerts, real_evaluation

    settings = _settings()
    try:
        model = load_stamp_model(settings.home, version, LSST_NAME)
    except (LookupError, ModelFileError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    paths = alerts or [settings.shared_data / p for p in RUBIN_SAMPLES]
    missing = [p for p in paths if not p.exists()]
    if missing:
        console.print(f"[red]error:[/red] no such file: {', '.join(map(str, missing))}")
        raise typer.Exit(2)
    try:
        real = read_rubin_alerts(paths)
    except (OSError, KeyError, ValueError) as exc:
        console.print(f"[red]error:[/red] not Rubin alerts in Fink's parquet layout: {exc}")
        raise typer.Exit(2) from exc
    if not real:
        console.print("[red]error:[/red] no alert with readable cutouts")
        raise typer.Exit(2)
    summary, rows = real_evaluation(model, real)
    out = out or settings.home / "evaluations" / LSST_NAME / model.version
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    rows.to_csv(out / "predictions.csv", index=False)
    console.print(f"{LSST_NAME} {model.version} on {summary['n_alerts']} real Rubin alerts: "
                  f"{summary['labelled_correct']} of {summary['n_labelled']} labelled "
                  f"({summary['labelled_by_class']}) called right")
    if "reliability" in summary:
        rel = summary["reliability"]
        console.print(f"P(bogus) vs Rubin's reliability on {rel['n']} alerts: Spearman "
                      f"{rel['spearman_p_bogus']:+.2f}")
    for name, calls in summary["calls_by_file"].items():
        console.print(f"{name}: {calls}")
    console.print(f"metrics.json and predictions.csv -> {out}")


def _evaluate_lsst_anomaly(simulated: int, seed: int, out: Path | None) -> None:
    """The LSST anomaly recipe held one class out at a time on fresh LSST simulations
    (no labelled real LSST light curve exists), said as such."""
    from ml.anomaly import LSST_ANOMALY
    from ml.anomaly.evaluate import METRICS, evaluate_held_out
    from ml.anomaly.lsst import METHODS
    from ml.lc_classifier.lsst import features_lsst, simulate_lsst
    from nightjar.runner.classify import load_lsst_anomaly_model

    if simulated < 10:
        console.print("[red]error:[/red] --simulated must be at least 10 for lsst_anomaly "
                      "(two folds, and each class's forest needs 4 training rows)")
        raise typer.Exit(2)
    settings = _settings()
    try:
        model = load_lsst_anomaly_model(settings.home)
    except LookupError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    warnings.simplefilter("ignore")
    with console.status(f"simulating {simulated} LSST objects per class"):
        curves, sim = simulate_lsst(simulated, seed=seed)
        x = features_lsst(curves, list(sim.oid))
    y = sim.set_index("oid")["classALeRCE"]
    result = evaluate_held_out(x, y, min_members=min(15, simulated), seed=seed,
                               methods=METHODS)
    console.print(f"{LSST_ANOMALY} {model.version}'s recipe on {len(y)} fresh LSST "
                  f"simulations (seed {seed}; not real data), one class held out at a time; "
                  "means:")
    console.print("method".ljust(14) + "".join(m.rjust(17) for m in METRICS))
    for method in METHODS:
        console.print(method.ljust(14) + "".join(
            f"{result['summary']['mean'][method][m]:17.3f}" for m in METRICS))
    out = out or settings.home / "evaluations" / LSST_ANOMALY / model.version
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"metrics.json -> {out}")


def _evaluation_dir(settings: Settings, model_path: Path, name: str, version: str) -> Path:
    """Next to a user model, else NIGHTJAR_HOME/evaluations/<name>/<version>."""
    if os.access(model_path, os.W_OK) and \
            settings.home.resolve() in model_path.resolve().parents:
        return model_path
    return settings.home / "evaluations" / name / version


@ml_app.command("evaluate")
def evaluate_command(
    labels: Annotated[Path | None, typer.Option(
        "--labels", help="labels: oid (or objectId), classALeRCE (lc_classifier, "
                         "lsst_lc_classifier); oid or candid, class (stamp_classifier)")
    ] = None,
    classifier: Annotated[str, typer.Option(
        help="lc_classifier (ZTF), lsst_lc_classifier, stamp_classifier (ZTF), "
             "lsst_stamp_classifier (on real Rubin alerts), ztf_anomaly (the "
             "hold-one-class-out evaluation of `nightjar ml anomaly evaluate`) or "
             "lsst_anomaly (the same on fresh LSST simulations)")
    ] = "lc_classifier",
    simulated: Annotated[int, typer.Option(
        help="lsst_lc_classifier without --labels, and lsst_anomaly: evaluate on this many "
             "fresh LSST simulations per class (no labelled real LSST light curves exist "
             "yet)")] = 20,
    seed: Annotated[int, typer.Option(help="seed of those simulations")] = 2,
    alerts: Annotated[list[Path] | None, typer.Option(
        "--alerts", help="alerts to classify (stamp_classifier; lsst_stamp_classifier: "
                         "Fink-style Rubin parquet, default the shared data's samples)")
    ] = None,
    features: FeaturesOpt = None,
    detections: DetectionsOpt = None,
    non_detections: NonDetectionsOpt = None,
    objects: ObjectsOpt = None,
    version: Annotated[str | None, typer.Option(help="model version (default: newest)")] = None,
    out: Annotated[Path | None, typer.Option(
        help="where metrics.json and the confusion PNGs go (default: next to a user model, "
             "else NIGHTJAR_HOME/evaluations/<name>/<version>)")] = None,
) -> None:
    """Evaluate a registered model on a labelled set: metrics and confusion matrices."""
    from ml.lc_classifier.taxonomy import LSST_CLASSIFIER

    if classifier == LSST_CLASSIFIER:
        _evaluate_lsst(labels, features, simulated, seed, version, out)
        return
    if classifier == "lsst_stamp_classifier":
        _evaluate_lsst_stamps(alerts, version, out)
        return
    if classifier == "stamp_classifier":
        if labels is None:
            console.print("[red]error:[/red] --labels is needed for the stamp classifier")
            raise typer.Exit(2)
        if not alerts:
            console.print("[red]error:[/red] --alerts is needed for the stamp classifier")
            raise typer.Exit(2)
        _evaluate_stamps(alerts, labels, version, out)
        return
    from ml.anomaly import LSST_ANOMALY
    from ml.anomaly import NAME as ANOMALY_MODEL

    if classifier == LSST_ANOMALY:
        _evaluate_lsst_anomaly(simulated, seed, out)
        return
    if classifier == ANOMALY_MODEL:  # the anomaly score's own evaluation
        anomaly_evaluate_command(features=features, labels=labels, out=out)
        return
    if classifier != "lc_classifier":
        console.print(f"[red]error:[/red] unknown classifier {classifier!r} (lc_classifier, "
                      f"{LSST_CLASSIFIER}, stamp_classifier, lsst_stamp_classifier, "
                      f"{ANOMALY_MODEL} or {LSST_ANOMALY})")
        raise typer.Exit(2)
    if labels is None:
        console.print("[red]error:[/red] --labels is needed for lc_classifier")
        raise typer.Exit(2)
    from ml.features.names import FEATURE_NAMES
    from ml.features.table import read_table
    from ml.lc_classifier.evaluate import evaluate
    from ml.lc_classifier.model import HierarchicalModel, ModelMismatchError
    from ml.lc_classifier.taxonomy import FULL_CLASSIFIER
    from ml.lc_classifier.train import align, read_labels
    from ml.registry import ModelRegistry

    settings = _settings()
    try:
        registered = ModelRegistry.default(settings.home).get(FULL_CLASSIFIER, version)
        model = HierarchicalModel.load(registered.path)
        model.check_features(FEATURE_NAMES)
    except (LookupError, ModelMismatchError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    table = _feature_table(features, detections, non_detections, objects)
    x, y = align(table, read_labels(read_table(labels)))
    if len(x) == 0:
        console.print("[red]error:[/red] no labelled object in the 15 classes has features")
        raise typer.Exit(2)
    metrics = evaluate(model, x, y)
    if out is None:
        out = _evaluation_dir(settings, registered.path, FULL_CLASSIFIER, registered.version)
    _report_evaluation(metrics, out)


def _report_evaluation(metrics: dict[str, Any], out: Path) -> None:
    from ml.lc_classifier.evaluate import write_report

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    pngs = write_report(metrics, "evaluation", out)
    for level in ("top", "full"):
        m = metrics[level]
        console.print(f"{level:>4}: n={m['n']} balanced accuracy {m['balanced_accuracy']:.3f} "
                      f"macro P/R/F1 {m['macro_precision']:.3f}/{m['macro_recall']:.3f}/"
                      f"{m['macro_f1']:.3f}")
    console.print(f"metrics and {len(pngs)} confusion matrices -> {out}")


def _evaluate_lsst(labels: Path | None, features: Path | None, simulated: int, seed: int,
                   version: str | None, out: Path | None) -> None:
    """The LSST light-curve classifier on a labelled LSST feature table, or (without
    one) on fresh simulations, said as such."""
    from ml.features.table import TableError, read_table
    from ml.lc_classifier.evaluate import evaluate
    from ml.lc_classifier.lsst import features_lsst, simulate_lsst
    from ml.lc_classifier.taxonomy import LSST_CLASSIFIER
    from ml.lc_classifier.train import read_labels
    from nightjar.runner.classify import load_lsst_model

    settings = _settings()
    try:
        model = load_lsst_model(settings.home, version)
    except LookupError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if (features is None) != (labels is None):
        console.print("[red]error:[/red] give --features and --labels together, or neither "
                      "(fresh simulations)")
        raise typer.Exit(2)
    if features is not None and labels is not None:
        try:
            table = read_table(features).set_index("oid")
            y = read_labels(read_table(labels))
        except (TableError, OSError, KeyError, ValueError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        common = table.index.intersection(y.index)
        x, y = table.loc[common].reindex(columns=model.features), y.loc[common]
        what = f"{len(x)} labelled objects of {features}"
    else:
        warnings.simplefilter("ignore")
        with console.status(f"simulating {simulated} LSST objects per class"):
            curves, sim = simulate_lsst(simulated, seed=seed)
            x = features_lsst(curves, list(sim.oid))
        y = sim.set_index("oid")["classALeRCE"]
        what = f"{len(x)} fresh LSST simulations (seed {seed}; not real data)"
    if len(x) == 0:
        console.print("[red]error:[/red] no labelled object has features")
        raise typer.Exit(2)
    console.print(f"{LSST_CLASSIFIER} {model.version} on {what}")
    metrics = evaluate(model, x.astype(float), y)
    _report_evaluation(metrics, out or settings.home / "evaluations" / LSST_CLASSIFIER /
                       model.version)


@anomaly_app.command("evaluate")
def anomaly_evaluate_command(
    features: Annotated[Path | None, typer.Option(
        "--features", help="feature table with ALeRCE's column names, one row per oid "
                           "(default: ALeRCE's 248 labelled rows under the shared data)")
    ] = None,
    labels: Annotated[Path | None, typer.Option(
        "--labels", help="labels of --features: oid (or objectId), classALeRCE")] = None,
    seed: Annotated[int, typer.Option(help="folds, trees and bootstrap seed")] = 1,
    min_members: Annotated[int, typer.Option(
        help="classes with this many members are evaluated with intervals; the rest are "
             "anecdotes")] = 15,
    active_learning: Annotated[bool, typer.Option(
        help="also simulate two users teaching a forest (plain, AAD, PineForest; 100 "
             "queries, real labels as the oracle)")] = False,
    out: Annotated[Path | None, typer.Option(
        help="write the full evaluation (every class, method, metric, interval) as JSON")
    ] = None,
) -> None:
    """Hold each class out in turn: how well does each score (Nightjar's, a Fink-style
    per-band forest, one global forest, the classifier's entropy) rank the class it never
    saw?  Precision@10/@50, recall in the top 1 %/5 %, AUROC, bootstrap intervals."""
    from ml.anomaly.evaluate import METHODS, METRICS, evaluate_held_out

    if (features is None) != (labels is None):
        console.print("[red]error:[/red] give --features and --labels together, or neither")
        raise typer.Exit(2)
    warnings.simplefilter("ignore")
    if features is None or labels is None:
        from ml.anomaly.shipped import alerce_rows

        shared = _settings().shared_data
        if not shared.is_dir():
            console.print(f"[red]error:[/red] no shared data at {shared}: give --features "
                          "and --labels (or set NIGHTJAR_SHARED_DATA)")
            raise typer.Exit(2)
        x, y = alerce_rows(shared)
    else:
        from ml.features.table import read_table
        from ml.lc_classifier.train import align, read_labels

        x, y = align(read_table(features).set_index("oid"), read_labels(read_table(labels)))
    if y.nunique() < 2:
        console.print("[red]error:[/red] at least two labelled classes are needed")
        raise typer.Exit(2)
    result = evaluate_held_out(x, y, min_members=min_members, seed=seed)
    mean = result["summary"]["mean"]
    console.print(f"{len(y)} objects, {len(result['classes'])} classes evaluated "
                  f"(+{len(result['anecdotes'])} anecdotes), seed {seed}; means:")
    console.print("method".ljust(14) + "".join(m.rjust(17) for m in METRICS))
    for method in METHODS:
        console.print(method.ljust(14) + "".join(f"{mean[method][m]:17.3f}" for m in METRICS))
    above = result["summary"]["auroc_interval_above_fink_style"]
    console.print(f"AUROC interval above the Fink-style baseline's: "
                  f"{sum(above.values())} of {len(above)} classes")
    if active_learning:
        from ml.anomaly.active import evaluate_active_learning
        from ml.anomaly.shipped import active_learning_table

        result["active_learning"] = evaluate_active_learning(x, y)
        console.print(active_learning_table(result["active_learning"]))
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")
        console.print(f"evaluation -> {out}")


@ml_app.command("models")
def models_command() -> None:
    """List registered models (user-trained and shipped), newest first."""
    from ml.anomaly import LSST_ANOMALY
    from ml.anomaly import NAME as ANOMALY_MODEL
    from ml.lc_classifier.taxonomy import FULL_CLASSIFIER, LSST_CLASSIFIER
    from ml.registry import ModelRegistry
    from ml.stamp_classifier import LSST_NAME as LSST_STAMP_CLASSIFIER
    from ml.stamp_classifier import NAME as STAMP_CLASSIFIER

    registry = ModelRegistry.default(_settings().home)
    names = (FULL_CLASSIFIER, STAMP_CLASSIFIER, ANOMALY_MODEL, LSST_CLASSIFIER,
             LSST_STAMP_CLASSIFIER, LSST_ANOMALY)
    for model in [m for name in names for m in registry.versions(name)]:
        card = model.card
        print(f"{model.name} {model.version}  {card.get('created', '')}  "
              f"n_train={card.get('n_train')}  {model.path}")
