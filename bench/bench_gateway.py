"""The GraphQL gateway under load: object and page queries at 50 concurrent clients over
100,000 stored objects, and subscription delivery latency under a 150 alerts/s ingest.

Run with ``make bench-gateway`` (or ``uv run python -m bench.bench_gateway``).

1. Store: simulated alerts go through the real pipeline (correction, statistics, the
   shipped stamp and light-curve classifiers); their objects are then replicated through
   the store's writer, each copy under a new oid at a random sky position (|dec| < 85)
   with its detections, upper limits and classifier rows, up to ``--objects`` objects.
   Only objects with at most 12 detections are copied (most ZTF objects are short).
   The database is built once per ``--home`` and reused.
2. ``nightjar serve graphql`` in its own process (the embedded nx-27017 server in a
   third); ``--clients`` concurrent HTTP clients (httpx, keep-alive) in this one:
   ``object(oid)`` with its light curve, magstats and probabilities for random oids, and
   ``objects`` pages with a 1-degree cone and a class filter around random objects.
   Targets: object query p95 < 30 ms.
3. Subscriptions: a WebSocket client subscribed to ``alerts`` and ``classifications``
   while this process ingests fresh simulated alerts at ``--rate`` alerts/s through the
   embedded pipeline; latency = arrival time - the event's ``storedAt`` (the moment the
   pipeline's writer stored it; same clock), for ``classifications`` both one message
   per class row and ``perObject`` (one per object and classifier).  Target: p95 < 200 ms.

Everything shares this machine's cores; figures are printed with the core count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import websockets
from websockets.typing import Subprotocol

from nightjar.core.lightcurve import ObjectWrite, probability_id
from nightjar.processes import free_port
from nightjar.runner.ingest import BatchProcessor, ingest
from nightjar.runner.topology import configured_topology
from nightjar.settings import Settings
from nightjar.sky import hpx_index
from nightjar.store import NightjarStore, open_store
from nightjar.store.archive import LocalArchive
from nightjar.surveys.ztf.decode import non_detection_id
from nightjar.surveys.ztf.simulate import AlertSimulator
from tests.conftest import as_inputs

OBJECT_QUERY = """query($oid: String!) { object(oid: $oid) {
  oid ndet firstmjd lastmjd meanra meandec
  magstats { fid ndet magmean magmin magmax }
  lightcurve { mjd fid kind mag magErr }
  probabilities { classifierName className probability ranking } } }"""
PAGE_QUERY = """query($ra: Float!, $dec: Float!) { objects(
  filter: {cone: {ra: $ra, dec: $dec, radius: 3600}, classifier: "stamp_classifier",
           className: "VS", ranking: 0}, first: 50) {
  nodes { oid ndet meanra meandec } pageInfo { hasNextPage endCursor } } }"""
READY = "bench_gateway_ready.json"


def cut(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, p99 {q[98]:.1f} ms (n={len(values)})"


def _oid(i: int) -> str:
    letters = []
    for _ in range(7):
        i, r = divmod(i, 26)
        letters.append(chr(97 + r))
    return "ZTF26" + "".join(reversed(letters))


async def build(store: NightjarStore, home: Path, n_objects: int) -> None:
    settings = Settings(home=home)
    processor = BatchProcessor(store, LocalArchive(home / "archive"),
                               topology=configured_topology(settings))
    t0 = time.perf_counter()
    await ingest(processor, as_inputs(list(AlertSimulator(seed=3).packets(3000))), 500)
    sources = [d async for d in store.db["objects"].find({"ndet": {"$lte": 12}})]
    print(f"pipeline: 3000 simulated alerts -> {len(sources)} short objects to copy "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    light: dict[str, Any] = {}
    for s in sources:
        oid = s["_id"]
        light[oid] = (
            [d async for d in store.db["detections"].find({"oid": oid})],
            [d async for d in store.db["non_detections"].find({"oid": oid})],
            [d async for d in store.db["probabilities"].find({"oid": oid})])
    rng = random.Random(0)
    have = await store.db["objects"].count_documents({})
    next_candid = 3_000_000_000_000_000_000
    writes: list[ObjectWrite] = []
    t0 = time.perf_counter()
    for i in range(n_objects - have):
        src = sources[i % len(sources)]
        dets, nds, probs = light[src["_id"]]
        oid = _oid(i)
        ra, dec = rng.uniform(0, 360), rng.uniform(-85, 85)
        dra, ddec = ra - src["meanra"], dec - src["meandec"]
        hpx = hpx_index(ra, dec)
        new_dets = []
        for d in dets:
            next_candid += 1
            new_dets.append({**d, "_id": next_candid, "candid": next_candid, "oid": oid,
                             "hpx": hpx, "ra": (d["ra"] + dra) % 360,
                             "dec": max(-90.0, min(90.0, d["dec"] + ddec)), "parent_candid":
                             None if d.get("parent_candid") is None else next_candid})
        new_nds = [{**nd, "_id": non_detection_id(oid, nd["fid"], nd["mjd"]), "oid": oid,
                    "hpx": hpx} for nd in nds]
        new_probs = [{**p, "_id": probability_id(oid, p["classifier_name"], p["class_name"]),
                      "oid": oid, "hpx": hpx} for p in probs]
        doc = {**src, "_id": oid, "oid": oid, "hpx": hpx, "meanra": ra, "meandec": dec}
        writes.append(ObjectWrite(oid=oid, hpx=hpx, object_doc=doc, detections=new_dets,
                                  non_detections=new_nds, probabilities=new_probs,
                                  current=doc))
        if len(writes) == 2000:
            await store.write(writes)
            writes = []
            done = i + 1
            rate = done / (time.perf_counter() - t0)
            print(f"  copied {have + done} objects ({rate:.0f}/s)", flush=True)
    if writes:
        await store.write(writes)
    (home / READY).write_text(json.dumps({"objects": n_objects}))


async def load(url: str, clients: int, duration: float, query: str,
               variables: Any) -> tuple[list[float], int]:
    """Latencies [ms] of ``clients`` loops posting ``query`` for ``duration`` s; errors."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        end = time.perf_counter() + duration

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                try:
                    response = await client.post("/graphql", json={"query": query,
                                                                   "variables": variables()})
                except httpx.TransportError:  # counted; the run goes on
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                if response.status_code != 200 or response.json().get("errors"):
                    errors += 1

        await asyncio.gather(*(loop() for _ in range(clients)))
    return latencies, errors


async def listen(url: str, seconds: float) -> dict[str, list[float]]:
    """Subscribe to alerts and classifications for up to ``seconds`` (until 10 s pass
    without a message, once some came); each message's delay after its ``storedAt`` [s].
    Runs in its own process so the ingest does not hold up its event loop."""
    received: dict[str, list[float]] = {"alerts": [], "classifications": [],
                                        "classifications_per_object": []}
    ws_url = url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(ws_url, subprotocols=[Subprotocol("graphql-transport-ws")],
                                  max_size=None) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        await ws.recv()
        for name, query in (("alerts", "subscription { alerts { candid storedAt } }"),
                            ("classifications", "subscription { classifications "
                                                "{ oid className storedAt } }"),
                            ("classifications_per_object",
                             "subscription { classifications(perObject: true) "
                             "{ oid classifierName storedAt probabilities "
                             "{ className probability } } }")):
            await ws.send(json.dumps({"id": name, "type": "subscribe",
                                      "payload": {"query": query}}))

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            some = any(received.values())
            try:
                raw = await asyncio.wait_for(ws.recv(), 10.0 if some else end - time.monotonic())
            except TimeoutError:
                break
            message = json.loads(raw)
            if message["type"] == "next":
                data = next(iter(message["payload"]["data"].values()))
                received[message["id"]].append(time.time() - data["storedAt"])
    return received


async def subscription_latency(url: str, store: NightjarStore, home: Path, rate: float,
                               duration: float) -> None:
    out = home / "bench_gateway_latency.json"
    packets = as_inputs(list(AlertSimulator(seed=100 + int(time.time()) % 1000).packets(
        int(rate * duration))))
    listener = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bench_gateway", "--listen", url, "--out", str(out),
        "--listen-seconds", str(duration * 6 + 30))
    await asyncio.sleep(5.0)  # the listener starts; the gateway's feed positions itself
    processor = BatchProcessor(store, LocalArchive(home / "archive"),
                               topology=configured_topology(Settings(home=home)))
    per_tick = max(1, int(rate * 0.2))
    t0 = time.perf_counter()
    for k, start in enumerate(range(0, len(packets), per_tick)):
        await ingest(processor, packets[start:start + per_tick], per_tick)
        ahead = t0 + (k + 1) * 0.2 - time.perf_counter()
        if ahead > 0:
            await asyncio.sleep(ahead)
    achieved = len(packets) / (time.perf_counter() - t0)
    await listener.wait()
    received = json.loads(out.read_text())
    print(f"subscription delivery, ingesting {len(packets)} new simulated alerts at {rate:g}/s "
          f"target, {achieved:.0f}/s achieved (the embedded pipeline in this process, the "
          "subscriber in another):")
    for name, lags in received.items():
        if lags:
            print(f"  {name}: {len(lags)} messages, {cut([x * 1000 for x in lags])}")


async def main(args: argparse.Namespace) -> None:
    home: Path = args.home
    print(f"machine: {os.cpu_count()} cores; nx-27017 (embedded MongoDB), gateway and this "
          "load generator share them", flush=True)
    async with open_store(Settings(home=home)) as store:
        await store.init()
        marker = home / READY
        if not marker.exists() or json.loads(marker.read_text())["objects"] < args.objects:
            await build(store, home, args.objects)
        total = await store.db["objects"].count_documents({})
        print(f"store: {total} objects, "
              f"{await store.db['detections'].estimated_document_count()} detections, "
              f"{await store.db['probabilities'].estimated_document_count()} probability rows",
              flush=True)
        oids = [d["_id"] async for d in store.db["objects"].find({}, {"_id": 1})]
        for n, workers in enumerate(args.workers):
            await _measure(args, store, home, oids, workers, subscriptions=n == 0)


async def _measure(args: argparse.Namespace, store: NightjarStore, home: Path,
                   oids: list[str], workers: int, subscriptions: bool) -> None:
    """The load tests against ``nightjar serve graphql --workers WORKERS``."""
    port = free_port()
    env = {**os.environ, "NIGHTJAR_HOME": str(home), "NIGHTJAR_GATEWAY_RATE_ANONYMOUS": "1e9"}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nightjar.cli", "serve", "graphql", "--port", str(port),
        "--workers", str(workers), env=env, stdout=subprocess.DEVNULL,
        stderr=(home / f"gateway-{workers}.log").open("wb"))
    url = f"http://127.0.0.1:{port}"
    print(f"gateway: {workers} process(es)", flush=True)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                try:
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        await asyncio.sleep(3.0 if workers > 1 else 0.0)  # the other processes start
        rng = random.Random(1)
        await load(url, 4, 2.0, OBJECT_QUERY, lambda: {"oid": rng.choice(oids)})  # warm
        docs = {d["_id"]: d async for d in store.db["objects"].find(
            {"_id": {"$in": rng.sample(oids, 500)}}, {"meanra": 1, "meandec": 1})}
        centres = list(docs.values())

        def centre() -> dict[str, float]:
            c = rng.choice(centres)
            return {"ra": c["meanra"], "dec": c["meandec"]}

        for clients in sorted({1, args.clients}):
            lat, errors = await load(url, clients, args.duration, OBJECT_QUERY,
                                     lambda: {"oid": rng.choice(oids)})
            print(f"object(oid) with light curve, {clients} client(s), {workers} "
                  f"process(es): {cut(lat)}; {len(lat) / args.duration:.0f} queries/s, "
                  f"{errors} errors", flush=True)
            lat, errors = await load(url, clients, args.duration, PAGE_QUERY, centre)
            print(f"objects page, 1-degree cone + class filter, {clients} client(s), "
                  f"{workers} process(es): {cut(lat)}; {len(lat) / args.duration:.0f} "
                  f"queries/s, {errors} errors", flush=True)
        if subscriptions:
            await subscription_latency(url, store, home, args.rate, args.ingest_seconds)
    finally:
        server.terminate()
        await server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", help=argparse.SUPPRESS)  # the subscriber process
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--listen-seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=lambda v: [int(x) for x in v.split(",")],
                        default=[1, 2], help="gateway processes to compare, e.g. 1,2")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per load test")
    parser.add_argument("--rate", type=float, default=150.0, help="ingest alerts/s")
    parser.add_argument("--ingest-seconds", type=float, default=20.0)
    parser.add_argument("--home", default=".nightjar-bench-gateway", type=lambda p: Path(
        p).resolve(), help="where the benchmark database is built (reused next time)")
    arguments = parser.parse_args()
    if arguments.listen:
        arguments.out.write_text(json.dumps(asyncio.run(listen(
            arguments.listen, arguments.listen_seconds))))
    else:
        asyncio.run(main(arguments))
