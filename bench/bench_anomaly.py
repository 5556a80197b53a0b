"""Serving cost of the anomaly score: microseconds per object, batched, on one core.

Run with ``make bench-anomaly`` (or ``uv run python -m bench.bench_anomaly``).  The
shipped ``ztf_anomaly`` model scores feature rows of real objects (the ALeRCE rows when
the shared data is there, else rows drawn from the model's own rank points) with the
classifier's probabilities: score, per-branch scores and the top features, as the
classify step asks for them.  Target (issue 20): < 1 ms per object batched.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ml.anomaly import NAME
from ml.anomaly.model import AnomalyModel
from ml.lc_classifier.taxonomy import CLASSES
from ml.registry import SHIPPED_ROOT, ModelRegistry
from nightjar.settings import Settings


def feature_rows(model: AnomalyModel, count: int, seed: int) -> pd.DataFrame:
    """Rows to score: real labelled objects when the shared data is there, else values
    drawn feature by feature from the model's rank points (a timing workload)."""
    shared = Settings().shared_data
    if shared.is_dir():
        from ml.anomaly.shipped import labelled_sets

        sets = labelled_sets(shared)
        table = pd.concat([s[0] for s in sets.values()])
        return table.iloc[np.resize(np.arange(len(table)), count)]
    rng = np.random.default_rng(seed)
    points = next(iter(model.ranks.values()))
    return pd.DataFrame({name: rng.choice(p, count) for name, p in zip(
        model.features, points, strict=True)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 100, 2000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model = AnomalyModel.load(ModelRegistry([SHIPPED_ROOT]).get(NAME).path)
    rows = feature_rows(model, max(args.batches), seed=0)
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(len(CLASSES)), len(rows))
    trees = sum(f.n_trees for f in model.forests.values())
    print(f"{NAME} {model.version}: {len(model.forests)} class forests, {trees} trees, "
          f"{len(model.features)} features; {os.cpu_count()} cores on this machine, "
          "measured on one (BLAS one thread)")
    with threadpool_limits(1):
        model.score(rows.iloc[:2], probabilities[:2])  # compile the kernels
        for batch in args.batches:
            timings = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                scores = model.score(rows.iloc[:batch], probabilities[:batch])
                [scores.top_features(i) for i in range(batch)]
                timings.append((time.perf_counter() - start) / batch * 1e6)
            print(f"batch {batch:5d}: {np.median(timings):8.0f} µs per object (median of "
                  f"{args.repeat}; min {min(timings):.0f}, max {max(timings):.0f}); target "
                  "< 1000 µs batched")


if __name__ == "__main__":
    main()
