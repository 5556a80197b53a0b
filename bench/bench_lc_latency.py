"""Latency from an alert's arrival to its object's stored light-curve classification.

Run with ``make bench-lc-latency`` (or ``uv run python -m bench.bench_lc_latency``).
Starts a development Kafka broker and the embedded database (or uses ``MONGODB_URI``),
runs real ``nightjar worker`` processes with the light-curve classifier on, produces
simulated alerts at a steady rate, and measures, for every ``lc_classifier`` record on
the output topic, the time from the Kafka timestamp of the alert it reports (the
object's latest alert) to the record's own timestamp (written after the store).
Target: p95 < 3 s at 150 alerts/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

from bench.services import deployment, produce_at_rate, with_broker_and_store
from nightjar.surveys.ztf.simulate import AlertSimulator
from stream.localrun import StreamEnv, Worker, read_topic, wait_for


def percentiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return (f"p50 {cuts[49]:.2f} s, p95 {cuts[94]:.2f} s, p99 {cuts[98]:.2f} s, "
            f"max {max(values):.2f} s")


async def measure(env: StreamEnv, packets: list[bytes], rate: float, layout: str) -> None:
    if layout == "split":  # ingest and classification in separate processes
        workers = [Worker(env, "pipeline", ("--agents", "pipeline")),
                   Worker(env, "classify", ("--agents", "classify"))]
    else:
        workers = [Worker(env, "both")]

    async def ready() -> bool:
        return await env.group_members() == len(workers)
    await wait_for(ready, 180, "workers in a stable group")
    try:
        start = time.time()
        await produce_at_rate(env.bootstrap, env.topic("alerts"), packets, rate)
        produced_s = time.time() - start
        alerts = await read_topic(env.bootstrap, env.topic("alerts"), expected=len(packets))
        sent_ms = {r.value["candid"]: r.timestamp_ms for r in alerts}
        records = await read_topic(env.bootstrap, env.topic("classifications"),
                                   expected=len(packets), wait_s=300)
        # let the classify agent drain what is queued
        settle = time.monotonic() + 120
        classify_in = -1.0
        while time.monotonic() < settle:
            now = sum(w.metric("nightjar_step_alerts_in_total", step="classify")
                      for w in workers)
            if now == classify_in:
                break
            classify_in = now
            await asyncio.sleep(3)
        records = await read_topic(env.bootstrap, env.topic("classifications"),
                                   expected=len(records), wait_s=30)
    finally:
        for w in workers:
            w.stop()
    lc = [r for r in records if r.value["trigger"] == "lc_classifier"]
    lat = [(r.timestamp_ms - sent_ms[r.value["candid"]]) / 1000 for r in lc
           if r.value["candid"] in sent_ms]
    n_alert = sum(r.value["trigger"] == "alert" for r in records)
    span = (max(r.timestamp_ms for r in lc) / 1000 - start) if lc else float("nan")
    print(f"\n{layout}: {len(packets)} alerts at {rate:.0f} alerts/s "
          f"(produced in {produced_s:.1f} s); {n_alert} alert records, "
          f"{len(lc)} light-curve classifications ({len(lc) / span:.1f}/s)")
    if lat:
        print(f"   alert -> stored classification: {percentiles(lat)}")


async def run(args: argparse.Namespace, workdir: Path, mongo_uri: str, bootstrap: str) -> None:
    packets = [raw for _, _, raw in AlertSimulator(seed=31).packets(
        int(args.rate * args.seconds))]
    print(f"cores: {os.cpu_count()}; simulated alerts: {len(packets)}; partitions: "
          f"{args.partitions}; worker batch: {args.batch_size}")
    for layout in args.layouts:
        async with deployment(bootstrap, mongo_uri, workdir / layout,
                              partitions=args.partitions, batch_size=args.batch_size,
                              extra={"NIGHTJAR_LC_CLASSIFIER": "true"}) as env:
            await measure(env, packets, args.rate, layout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=150.0, help="alerts/s")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--layouts", nargs="+", default=["both", "split"],
                        choices=["both", "split"])
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    args = parser.parse_args()
    with_broker_and_store("nightjar-bench-lc-", args.bootstrap,
                          lambda workdir, uri, bootstrap: run(args, workdir, uri, bootstrap))


if __name__ == "__main__":
    main()
