"""Alerts/s through Kafka into the store with 1 and 2 workers, and end-to-end latency.

Run with ``make bench-stream`` (or ``uv run python -m bench.bench_stream``).  Starts a
development Kafka broker and the embedded database (or uses ``MONGODB_URI``), runs
real ``nightjar worker`` processes, and measures on simulated alerts (ZTF's, or Rubin's
with ``--survey lsst``: wire-format v11.0 messages keyed by diaObjectId, as the relay
re-keys Rubin's stream):

* throughput: a backlog of N alerts produced at full speed into a stable consumer
  group; alerts/s from the first produce to the last output record;
* latency: alerts produced at a steady rate below capacity; per alert, the time from
  its input message's Kafka timestamp to its output record's Kafka timestamp.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from bench.services import deployment, produce_at_rate, with_broker_and_store
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.lsst.simulate import LsstSimulator
from nightjar.surveys.registry import AlertParser
from nightjar.surveys.ztf.simulate import AlertSimulator
from stream.localrun import StreamEnv, TopicRecord, Worker, keyed, produce, read_topic, wait_for

STEPS = ("ingest", "correct", "statistics", "stamp", "store", "publish")


def percentiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return (f"p50 {cuts[49]:.2f} s, p90 {cuts[89]:.2f} s, p99 {cuts[98]:.2f} s, "
            f"max {max(values):.2f} s")


def with_output_record(packets: list[bytes]) -> int:
    """How many of ``packets`` produce an output record: every alert of an object (an LSST
    solar-system source makes no object, so no record)."""
    parser = AlertParser()
    source = AlertSource("file", path="bench")
    return sum(sum(a.has_object for a in parser.parse(raw, source)[0]) for raw in packets)


def latencies(records: list[TopicRecord]) -> list[float]:
    return [(r.timestamp_ms - r.value["alert_time"].timestamp() * 1000) / 1000
            for r in records]


async def start_workers(env: StreamEnv, count: int) -> list[Worker]:
    workers = [Worker(env, f"w{i}") for i in range(count)]

    async def joined() -> bool:
        return await env.group_members() == count
    await wait_for(joined, 180, f"{count} workers in a stable group")
    return workers


def step_seconds(workers: list[Worker]) -> str:
    totals = {s: sum(w.metric("nightjar_step_batch_seconds_sum", step=s) for w in workers)
              for s in STEPS}
    whole = sum(totals.values()) or 1.0
    return ", ".join(f"{s} {v:.1f} s ({100 * v / whole:.0f}%)" for s, v in totals.items())


async def throughput(env: StreamEnv, packets: list[bytes], n_workers: int) -> None:
    workers = await start_workers(env, n_workers)
    try:
        t0 = time.time()
        await produce(env.bootstrap, env.topic("alerts"), keyed(packets))
        produced_s = time.time() - t0
        expected = with_output_record(packets)
        records = await read_topic(env.bootstrap, env.topic("classifications"),
                                   expected=expected, wait_s=1800)
        assert len(records) >= expected, f"only {len(records)} of {expected} records"
        elapsed = max(r.timestamp_ms for r in records) / 1000 - t0
        per_worker = [w.metric("nightjar_step_alerts_in_total", step="ingest") for w in workers]
        print(f"{n_workers} worker(s): {len(packets) / elapsed:,.0f} alerts/s "
              f"({len(packets)} alerts in {elapsed:.1f} s; produced in {produced_s:.1f} s; "
              f"per worker {', '.join(f'{c:.0f}' for c in per_worker)})")
        print(f"   time per step (all workers): {step_seconds(workers)}")
        print(f"   latency under backlog: {percentiles(latencies(records))}")
    finally:
        for w in workers:
            w.stop()


async def paced_latency(env: StreamEnv, packets: list[bytes], rate: float,
                        n_workers: int) -> None:
    workers = await start_workers(env, n_workers)
    try:
        await produce_at_rate(env.bootstrap, env.topic("alerts"), packets, rate)
        records = await read_topic(env.bootstrap, env.topic("classifications"),
                                   expected=with_output_record(packets), wait_s=600)
        print(f"{n_workers} worker(s) at {rate:.0f} alerts/s for {len(packets) / rate:.0f} s: "
              f"latency {percentiles(latencies(records))}")
    finally:
        for w in workers:
            w.stop()


async def run(args: argparse.Namespace, workdir: Path, mongo_uri: str, bootstrap: str) -> None:
    t0 = time.perf_counter()
    simulator = LsstSimulator if args.survey == "lsst" else AlertSimulator
    backlog = [raw for _, _, raw in simulator(seed=21).packets(args.n)]
    paced = [raw for _, _, raw in simulator(seed=22).packets(
        int(args.paced_rate * args.paced_seconds))]
    print(f"cores: {os.cpu_count()}  simulated {args.survey.upper()} alerts: "
          f"{len(backlog)} backlog + {len(paced)} "
          f"paced (made in {time.perf_counter() - t0:.0f} s); partitions: {args.partitions}; "
          f"worker batch: {args.batch_size}")
    for n_workers in args.workers:
        async with deployment(bootstrap, mongo_uri, workdir / f"tp{n_workers}",
                              partitions=args.partitions, batch_size=args.batch_size) as env:
            await throughput(env, backlog, n_workers)
    for n_workers in args.workers:
        async with deployment(bootstrap, mongo_uri, workdir / f"lat{n_workers}",
                              partitions=args.partitions, batch_size=args.batch_size) as env:
            await paced_latency(env, paced, args.paced_rate, n_workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="backlog alerts per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--paced-rate", type=float, default=150.0, help="alerts/s")
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--survey", choices=("ztf", "lsst"), default="ztf")
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    args = parser.parse_args()
    with_broker_and_store("nightjar-bench-stream-", args.bootstrap,
                          lambda workdir, uri, bootstrap: run(args, workdir, uri, bootstrap))


if __name__ == "__main__":
    main()
