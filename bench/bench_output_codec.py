"""Cost of writing one output record: Avro container (schema in every message) against
the Confluent wire format (schema id only), on real pipeline output.

Run with ``uv run python -m bench.bench_output_codec``.  Simulated ZTF alerts go through
the embedded pipeline (correction, statistics, the shipped stamp classifier) into a
fresh embedded database; the classification records of that batch are then encoded
``--repeat`` times each way on one core.  Prints µs per record and bytes per message,
with the core count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from nightjar.runner.ingest import BatchProcessor
from nightjar.runner.records import (
    CONTAINERS,
    OUTPUT_SCHEMAS,
    OutputCodec,
    classification_record,
    decode,
    load_schema,
)
from nightjar.runner.topology import configured_topology
from nightjar.settings import Settings
from nightjar.store import open_store
from nightjar.store.archive import LocalArchive
from nightjar.surveys.ztf.simulate import AlertSimulator
from tests.conftest import as_inputs


async def records(n: int) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        async with open_store(Settings(home=home)) as store:
            await store.init()
            processor = BatchProcessor(store, LocalArchive(home / "archive"),
                                       topology=configured_topology(Settings(home=home)))
            result = await processor.process(as_inputs(list(AlertSimulator(seed=4).packets(n))))
    return [classification_record(a, result.objects[a.oid], result.detections.get(a.key),
                                  alert_time_ms=0, processed_time_ms=0,
                                  probabilities=result.probabilities.get(a.oid, ()))
            for a in result.alerts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500, help="simulated alerts")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()} (encoding on one)")
    recs = asyncio.run(records(args.n))
    wire = OutputCodec(dict.fromkeys(OUTPUT_SCHEMAS, 1))
    schema = load_schema("classification")
    for label, codec in (("Avro container (no registry)", CONTAINERS),
                         ("Confluent wire format", wire)):
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = [codec.encode("classification", r) for r in recs]
            times.append((time.perf_counter() - t0) / len(recs) * 1e6)
        size = statistics.mean(len(m) for m in out)
        back = decode(out[0], lambda _: schema)
        assert back[0]["candid"] == recs[0]["candid"]
        print(f"{label}: {min(times):.0f}-{max(times):.0f} us per record, "
              f"{size:,.0f} bytes per message ({len(recs)} records)")


if __name__ == "__main__":
    main()
