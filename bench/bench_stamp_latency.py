"""Stamp classifier: inference cost per alert, and alert -> stored stamp classification
latency through Kafka.

Run with ``make bench-stamp`` (or ``uv run python -m bench.bench_stamp_latency``).

1. Inference: the shipped model on simulated alerts, in batches of 1 to 256: decoding the
   three gzipped FITS cutouts, preprocessing (crop, normalisation, metadata) and the ONNX
   Runtime call, each in ms per alert (one thread).  Target: < 10 ms per alert, batched.
2. Latency: simulated alerts produced at a steady rate into a real broker; one
   ``nightjar worker`` (stamp classifier inline, light-curve classifier off); for every
   output record that carries a stamp classification, the time from its alert's Kafka
   timestamp to the record's own timestamp (the record is sent after the store write,
   so this bounds the time to the stored classification from above).  Also the latency
   of every alert record and the worker's time per step.  Target: p95 < 1 s at 150/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from bench.services import deployment, produce_at_rate, with_broker_and_store
from nightjar.runner.stamp_classify import cutout_triplet, load_stamp_model
from nightjar.surveys.avro import AlertDecoder
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.ztf.decode import parse_payload
from nightjar.surveys.ztf.simulate import AlertSimulator
from stream.localrun import StreamEnv, Worker, read_topic, wait_for

STEPS = ("ingest", "correct", "statistics", "stamp", "store", "publish")


def percentiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return (f"p50 {cuts[49]:.2f} s, p95 {cuts[94]:.2f} s, p99 {cuts[98]:.2f} s, "
            f"max {max(values):.2f} s (n={len(values)})")


def inference(n: int) -> None:
    model = load_stamp_model(Path("/nonexistent-nightjar-home"))
    decoder = AlertDecoder()
    alerts = []
    for oid, _, raw in AlertSimulator(seed=41).packets(n):
        good, _ = parse_payload(decoder, raw, AlertSource("file", path=oid))
        alerts += good
    t0 = time.perf_counter()
    triplets = [cutout_triplet(a.cutouts) for a in alerts]
    decode_ms = (time.perf_counter() - t0) * 1000 / len(alerts)
    images = [t for t in triplets if t is not None]
    candidates = [a.candidate for a in alerts]
    print(f"inference, shipped {model.name} {model.version}, {len(images)} simulated alerts, "
          f"ONNX Runtime on 1 thread; decoding 3 gzipped FITS cutouts: {decode_ms:.2f} ms/alert")
    for batch in (1, 16, 64, 256):
        prep = run = 0.0
        for start in range(0, len(images), batch):
            t0 = time.perf_counter()
            stamps, metadata = model.inputs(images[start:start + batch],
                                            candidates[start:start + batch])
            t1 = time.perf_counter()
            model.predict_inputs(stamps, metadata)
            t2 = time.perf_counter()
            prep += t1 - t0
            run += t2 - t1
        per = 1000 / len(images)
        print(f"   batch {batch:>3}: preprocessing {prep * per:.2f} ms + ONNX {run * per:.2f} ms"
              f" = {(prep + run) * per:.2f} ms/alert (+ decoding: "
              f"{(prep + run) * per + decode_ms:.2f})")


async def latency(env: StreamEnv, packets: list[bytes], rate: float) -> None:
    worker = Worker(env, "w0")

    async def joined() -> bool:
        return await env.group_members() == 1
    await wait_for(joined, 180, "the worker in a stable group")
    try:
        await produce_at_rate(env.bootstrap, env.topic("alerts"), packets, rate)
        records = await read_topic(env.bootstrap, env.topic("classifications"),
                                   expected=len(packets), wait_s=600)
        steps = {s: worker.metric("nightjar_step_batch_seconds_sum", step=s) for s in STEPS}
        stamp_in = worker.metric("nightjar_step_alerts_in_total", step="stamp")
        batches = worker.metric("nightjar_batch_alerts_count")
        batch_alerts = worker.metric("nightjar_batch_alerts_sum")
    finally:
        worker.stop()
    every = [(r.timestamp_ms - r.value["alert_time"].timestamp() * 1000) / 1000
             for r in records]
    stamped = [(r.timestamp_ms - r.value["alert_time"].timestamp() * 1000) / 1000
               for r in records
               if any(p["classifier"] == "stamp_classifier" for p in r.value["probabilities"])]
    total = sum(steps.values()) or 1.0
    print(f"\n{len(packets)} alerts at {rate:.0f}/s, 1 worker, batch window "
          f"{env.env['NIGHTJAR_WORKER_BATCH_SECONDS']} s; {batches:.0f} batches, "
          f"{batch_alerts / max(batches, 1):.0f} alerts per batch on average")
    print(f"   alert -> stored stamp classification: {percentiles(stamped)}")
    print(f"   alert -> output record (every alert): {percentiles(every)}")
    print("   worker time per step: " + ", ".join(
        f"{s} {v:.1f} s ({100 * v / total:.0f}%)" for s, v in steps.items()))
    if stamp_in:
        print(f"   stamp step: {1000 * steps['stamp'] / stamp_in:.2f} ms per alert in the "
              f"pipeline (objects of a batch classified together)")


async def run(args: argparse.Namespace, workdir: Path, mongo_uri: str, bootstrap: str) -> None:
    print(f"cores: {os.cpu_count()}")
    inference(args.inference_alerts)
    packets = [raw for _, _, raw in AlertSimulator(seed=43).packets(
        int(args.rate * args.seconds))]
    for window in args.batch_seconds:
        async with deployment(bootstrap, mongo_uri, workdir / f"w{window}",
                              partitions=args.partitions, batch_size=args.batch_size,
                              extra={"NIGHTJAR_WORKER_BATCH_SECONDS": str(window)}) as env:
            await latency(env, packets, args.rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=150.0, help="alerts/s")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch-seconds", type=float, nargs="+", default=[0.5, 0.05],
                        help="worker batch windows to compare [s] (0.05 is the default "
                             "setting, 0.5 the one before)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--inference-alerts", type=int, default=512)
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    args = parser.parse_args()
    np.seterr(all="ignore")
    with_broker_and_store("nightjar-bench-stamp-", args.bootstrap,
                          lambda workdir, uri, bootstrap: run(args, workdir, uri, bootstrap))


if __name__ == "__main__":
    main()
