"""Throughput of decoding and of the full embedded ingest on simulated alerts.

Run with ``make bench`` (or ``uv run python -m bench.bench_ingest --n 10000``).  Prints
alerts/s for decode alone and for the full embedded pipeline (parse, archive, merge,
correct, aggregate, store in nx-27017), the time per stage, and the core count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from nightjar.runner.ingest import BatchProcessor, RawInput, ingest
from nightjar.settings import Settings
from nightjar.store import open_store
from nightjar.store.archive import LocalArchive
from nightjar.surveys.avro import AlertDecoder
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.ztf.simulate import AlertSimulator


def decode_rate(payloads: list[bytes]) -> float:
    decoder = AlertDecoder()
    start = time.perf_counter()
    for raw in payloads:
        decoder.decode(raw)
    return len(payloads) / (time.perf_counter() - start)


async def ingest_rate(payloads: list[bytes], workdir: Path, batch_size: int
                      ) -> tuple[float, dict[str, float]]:
    settings = Settings(home=workdir / "home", mongodb_uri=os.environ.get("MONGODB_URI"))
    async with open_store(settings) as store:
        await store.db.client.drop_database(store.db.name)
        await store.init()
        processor = BatchProcessor(store, LocalArchive(workdir / "archive"))
        inputs = [RawInput(raw, AlertSource("file", path=str(i)))
                  for i, raw in enumerate(payloads)]
        summary = await ingest(processor, inputs, batch_size)
        assert summary.alerts_stored == len(payloads), summary
        return summary.rate, dict(processor.stage_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="simulated alerts")
    parser.add_argument("--batch-size", type=int, default=2000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    payloads = [raw for _, _, raw in AlertSimulator(seed=1).packets(args.n)]
    mean_kb = sum(map(len, payloads)) / len(payloads) / 1024
    print(f"cores: {os.cpu_count()}  alerts: {len(payloads)} simulated ZTF v4.02 "
          f"(mean {mean_kb:.0f} KiB, made in {time.perf_counter() - t0:.0f} s)")
    rate = max(decode_rate(payloads) for _ in range(3))
    print(f"decode (cached writer schema, one core): {rate:,.0f} alerts/s")
    with tempfile.TemporaryDirectory(prefix="nightjar-bench-") as tmp:
        rate, stages = asyncio.run(ingest_rate(payloads, Path(tmp), args.batch_size))
    print(f"full embedded ingest (batch {args.batch_size}): {rate:,.0f} alerts/s")
    total = sum(stages.values())
    print("time per stage: " + ", ".join(
        f"{k} {v:.1f} s ({100 * v / total:.0f}%)" for k, v in stages.items()))


if __name__ == "__main__":
    main()
