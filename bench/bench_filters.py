"""What users' filters and watchlists add to each alert: a 10^6-source watchlist and 100
active filters.

Run with ``make bench-filters`` (or ``uv run python -m bench.bench_filters``).  Targets
(issue 21): a 10^6-source watchlist adds <= 0.1 ms per alert; 100 active filters add
<= 1 ms per alert in all.  Prints, with the core count:

* **in memory, one core**: the watchlist look-up of one detection against a 10^6-row
  list (random positions, 2" radii with one row in 20 at up to 60"), and the filter step
  on one alert with 100 compiled filters (the alert's context built once, then the 100
  programs), on alert contexts from a real embedded ingest;
* **in the pipeline**: one simulated Rubin visit (``--alerts`` alerts of distinct
  objects whose histories are already stored, the steady state of the stream) ingested
  by the embedded runner (nx-27017) with the list and the 100 filters live; the time the
  watchlist step and the filter step took per alert, split into evaluation, storing the
  matches, and the rest (building contexts, reading classification events, counters).

The filters are a mix of what users write: alert-stage cuts on magnitudes, S/N, bands and
object statistics, classification-stage cuts on probabilities and the anomaly score,
watchlist membership and cross-matches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from nightjar.core.filters.context import build_context
from nightjar.core.watch import WatchlistIndex, WatchRows
from nightjar.runner.filters import (
    OPERATOR,
    FilterStats,
    alert_inputs,
    configured_filters,
    evaluate_one,
    stored_data,
)
from nightjar.runner.ingest import BatchProcessor, RawInput, alert_parser, ingest
from nightjar.runner.topology import configured_topology
from nightjar.runner.watch import WatchIndexes, WatchService
from nightjar.settings import Settings
from nightjar.store import open_store
from nightjar.store.archive import LocalArchive
from nightjar.store.schema import OBJECTS, WATCHLIST_MATCHES
from nightjar.store.watch import WatchStore
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.lsst.simulate import LsstSimulator

LIST_NAME = "bench-hosts"


def expressions(count: int) -> list[str]:
    """``count`` filters as users write them: selective cuts (thresholds varied, so no
    two are equal) that together match about one alert in two of the simulated stream."""
    out = []
    for i in range(count):
        k = i // len(TEMPLATES)
        out.append(TEMPLATES[i % len(TEMPLATES)].format(
            k3=3 + k % 5, mag=16.0 + 0.1 * k, snr=50 + 10 * k, age=2 + k, many=12 + k,
            p=0.9 + 0.009 * k, rare=0.99 + 0.0009 * k, wl=LIST_NAME, wmag=18.0 + 0.2 * k,
            gr=-0.5 + 0.05 * k))
    return out


#: the kinds of filter the benchmark's users write, ten of each
TEMPLATES = (
    'object.ndet >= {k3} && alert.mag_diff < {mag} && alert.band in ["g", "r"]',
    'survey == "LSST" && alert.snr > {snr} && object.age < {age}',
    'survey == "ZTF" && alert.positive && object.ndet >= {many}',
    'prob("stamp_classifier", "SN") > {p}',
    'prob("lc_classifier", "SNIa") > {p} && object.ndet >= {k3}',
    "anomaly.score > {rare}",
    'in_watchlist("{wl}") && alert.mag_diff < {wmag}',
    "object.band.exists(b, object.band[b].ndet >= {many}) && alert.snr > {snr}",
    'has(alert.mag) && alert.mag < {mag} && object.stellar == false',
    'alert.band == "r" && object.g_r_max < {gr} && object.ndet >= {k3}',
)


def watchlist_rows(count: int, seed: int) -> WatchRows:
    """Random positions over the sphere; 2" radii, one row in 20 at up to 60"."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, count)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, count)))
    radius = np.where(rng.random(count) < 0.05, rng.uniform(2.0, 60.0, count), 2.0)
    return WatchRows([f"src{i}" for i in range(count)], ra, dec, radius)


def with_sources_at(rows: WatchRows, positions: list[tuple[float, float]], seed: int
                    ) -> WatchRows:
    """The rows, the last ``len(positions)`` of them moved onto these positions (0.3"
    off), so that some objects are listed sources."""
    rng = np.random.default_rng(seed)
    ra, dec = rows.ra.copy(), rows.dec.copy()
    n = len(positions)
    ra[-n:] = [p[0] + rng.normal(0.0, 0.3 / 3600.0) for p in positions]
    dec[-n:] = [p[1] + rng.normal(0.0, 0.3 / 3600.0) for p in positions]
    return WatchRows(rows.names, ra % 360.0, np.clip(dec, -90.0, 90.0), rows.radius)


def watchlist_csv(rows: WatchRows) -> bytes:
    lines = ["name,ra,dec,radius"] + [f"{n},{r:.7f},{d:.7f},{s:.2f}" for n, r, d, s in zip(
        rows.names, rows.ra, rows.dec, rows.radius, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def bench_watchlist_memory(rows: WatchRows, lookups: int, batch: int, seed: int) -> None:
    start = time.perf_counter()
    index = WatchlistIndex(rows)
    built = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, lookups)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, lookups)))
    # a tenth of the alerts fall on a listed source (a match to build)
    on = rng.random(lookups) < 0.1
    pick = rng.integers(0, len(rows), lookups)
    ra = np.where(on, rows.ra[pick], ra)
    dec = np.where(on, rows.dec[pick], dec)
    index.matches_many(ra[:200], dec[:200])  # warm up
    found = 0
    start = time.perf_counter()
    for i in range(0, lookups, batch):  # as the pipeline asks: a batch at once
        found += len(index.matches_many(ra[i:i + batch], dec[i:i + batch])[0])
    per = (time.perf_counter() - start) / lookups
    start = time.perf_counter()
    singles = min(lookups, 5000)
    for r, d in zip(ra[:singles].tolist(), dec[:singles].tolist(), strict=True):
        index.matches(r, d)
    single = (time.perf_counter() - start) / singles
    print(f"watchlist, in memory: {len(rows):,} rows ({len(index.groups)} radius groups) "
          f"indexed in {built:.1f} s; {per * 1e6:.1f} us per alert in batches of {batch} "
          f"over {lookups:,} alerts ({found:,} matches)  [target <= 100 us]; one position "
          f"at a time (backfill's in_watchlist): {single * 1e6:.0f} us")


def as_inputs(packets: list[tuple[str, int, bytes]], tag: str) -> list[RawInput]:
    return [RawInput(raw, AlertSource("file", path=f"{tag}/{i}"))
            for i, (_, _, raw) in enumerate(packets)]


def timed(record: list[float], fn: Callable[..., Awaitable[Any]]
          ) -> Callable[..., Awaitable[Any]]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            record.append(time.perf_counter() - start)
    return wrapper


async def bench_pipeline(args: argparse.Namespace, rows: WatchRows) -> None:
    with tempfile.TemporaryDirectory(prefix="nightjar-bench-filters-") as tmp:
        home = Path(tmp)
        settings = Settings(home=home, filter_max_per_user=max(100, args.filters),
                            filter_matches_per_day=10**9, filter_bytes_per_day=10**12)
        async with open_store(settings) as store:
            await store.init()
            watch_store = WatchStore(store)
            indexes = WatchIndexes(watch_store, refresh_s=3600.0)
            # a Rubin visit: distinct objects, each with its history already stored
            history, visit = LsstSimulator(seed=7).visit_burst_with_history(args.alerts)
            inputs = as_inputs(visit, "visit")
            parser = alert_parser(settings)
            positions = {a.oid: (a.detection["ra"], a.detection["dec"]) for raw in inputs
                         for a in parser.parse(raw.raw, raw.source)[0]}
            # one object in 10 is a listed source
            rows = with_sources_at(rows, list(positions.values())[::10], seed=3)
            processor = BatchProcessor(store, LocalArchive(home / "archive"),
                                       parser=parser, topology=configured_topology(settings))
            await ingest(processor, as_inputs(history, "history"), batch_size=args.batch)
            start = time.perf_counter()
            await WatchService(watch_store, indexes).create_list(
                OPERATOR, LIST_NAME, watchlist_csv(rows), retroactive=False)
            await indexes.refresh(force=True)
            print(f"watchlist of {len(rows):,} rows uploaded and stored in "
                  f"{time.perf_counter() - start:.0f} s")
            deployment = configured_filters(settings, store, indexes)
            for i, expression in enumerate(expressions(args.filters)):
                await deployment.service.create(OPERATOR, f"bench-{i:03d}", expression)
            engine = deployment.engine
            watch_times: list[float] = []
            indexes.on_batch = timed(watch_times, indexes.on_batch)  # type: ignore[method-assign,assignment]
            filter_times: list[float] = []
            engine.on_batch = timed(filter_times, engine.on_batch)  # type: ignore[method-assign,assignment]
            store_times: list[float] = []
            matches_store = deployment.service.filters
            matches_store.put_matches = timed(  # type: ignore[method-assign,assignment]
                store_times, matches_store.put_matches)
            event_times: list[float] = []
            events_store = matches_store.store
            events_store.classification_events = timed(  # type: ignore[method-assign,assignment]
                event_times, events_store.classification_events)
            processor = BatchProcessor(store, LocalArchive(home / "archive"),
                                       parser=parser, topology=configured_topology(settings),
                                       filters=engine)
            start = time.perf_counter()
            summary = await ingest(processor, inputs, batch_size=args.batch)
            wall = time.perf_counter() - start
            stored = summary.alerts_stored
            docs = await deployment.service.filters.owned()
            evaluation = sum(float((d.get("stats") or {}).get("seconds", 0.0)) for d in docs)
            evaluations = sum(int((d.get("stats") or {}).get("evaluations", 0)) for d in docs)
            matched = sum(int((d.get("stats") or {}).get("stored", 0)) for d in docs)
            watch_matches = await store.db[WATCHLIST_MATCHES].count_documents({})
            watch_total = sum(watch_times)
            filters_total = sum(filter_times) - watch_total  # on_batch includes the list
            storing, events = sum(store_times), sum(event_times)
            print(f"pipeline: one simulated Rubin visit of {stored:,} alerts (objects with "
                  f"their history stored) in {wall:.0f} s, batches of {args.batch}")
            print(f"  watchlist step: {1e3 * watch_total / stored:.3f} ms per alert "
                  f"({watch_matches} matches stored)  [target <= 0.1 ms]")
            print(f"  {len(docs)} filters: {1e3 * filters_total / stored:.3f} ms per alert in "
                  f"all  [target <= 1 ms]: evaluation {1e3 * evaluation / stored:.3f} ms "
                  f"({evaluations:,} evaluations, {1e6 * evaluation / max(evaluations, 1):.1f} "
                  f"us each); storing {matched:,} matches ({matched / stored:.2f} per alert) "
                  f"{1e3 * storing / stored:.3f} ms ({1e3 * storing / max(matched, 1):.2f} ms "
                  f"per match); reading classification events {1e3 * events / stored:.3f} ms; "
                  f"building contexts, counters, refreshes "
                  f"{1e3 * (filters_total - evaluation - storing - events) / stored:.3f} ms")
            top = sorted(docs, key=lambda d: -int((d.get("stats") or {}).get("stored", 0)))[:5]
            print("  most matched: " + "; ".join(
                f"{d['expression']} ({int((d.get('stats') or {}).get('stored', 0))})"
                for d in top))
            await bench_filters_memory(deployment, store, args)


async def bench_filters_memory(deployment: Any, store: Any, args: argparse.Namespace) -> None:
    """The 100 filters on alert contexts read back from the store: evaluation only."""
    engine = deployment.engine
    active = await engine.refresh(force=True)
    oids = [d["_id"] for d in await store.db[OBJECTS].find({}, {"_id": 1}).to_list(300)]
    data = await stored_data(deployment.service.filters, oids, need_events=False)
    fields, lookups = engine._prepared(active)
    contexts_inputs = [alert_inputs(obj, det, **lookups)
                       for obj in data.values() for det in obj.detections[-3:]]
    stats = FilterStats()
    per_alert = []
    budget = engine.limits.budget_ms / 1000.0
    for _ in range(args.repeat):
        start = time.perf_counter()
        for inputs in contexts_inputs:
            context = build_context(inputs, fields)
            for flt in active:  # all 100: the classification ones read absent values here
                evaluate_one(flt, context, stats, budget)
        per_alert.append((time.perf_counter() - start) / len(contexts_inputs))
    best, median = min(per_alert), statistics.median(per_alert)
    contexts = [build_context(i, fields) for i in contexts_inputs]
    start = time.perf_counter()
    for inputs in contexts_inputs:
        build_context(inputs, fields)
    building = (time.perf_counter() - start) / len(contexts_inputs)
    print(f"filters, in memory: {len(active)} filters on {len(contexts_inputs)} stored alert "
          f"contexts: {1e3 * median:.3f} ms per alert (best {1e3 * best:.3f}), of which "
          f"building the context {1e3 * building:.3f} ms  [target <= 1 ms]")
    # what each kind of filter costs (the evaluator's own time, one core)
    templates = expressions(len(TEMPLATES))
    for k, template in enumerate(templates):
        kind = [f for i, f in enumerate(active) if i % len(TEMPLATES) == k]
        start = time.perf_counter()
        for context in contexts:
            for flt in kind:
                evaluate_one(flt, context, stats, budget)
        each = (time.perf_counter() - start) / (len(contexts) * len(kind))
        print(f"  {1e6 * each:6.1f} us per evaluation  {template}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="watchlist rows")
    parser.add_argument("--filters", type=int, default=100)
    parser.add_argument("--alerts", type=int, default=2000, help="alerts ingested")
    parser.add_argument("--batch", type=int, default=500,
                        help="alerts per batch (the Kafka worker's default)")
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores on this machine; the look-ups and evaluations run on one")
    rows = watchlist_rows(args.rows, seed=1)
    bench_watchlist_memory(rows, args.lookups, args.batch, seed=2)
    asyncio.run(bench_pipeline(args, rows))


if __name__ == "__main__":
    main()
