"""End to end through the command line: ingest, query, serve over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from nightjar.store.embedded import STATE_FILE, free_port

ROOT = Path(__file__).resolve().parents[1]
NIGHTJAR = [sys.executable, "-m", "nightjar.cli"]


def _env(home: Path) -> dict[str, str]:
    # gRPC on any free port: `serve` (all services) must not collide with a real one
    return {**os.environ, "NIGHTJAR_HOME": str(home), "NIGHTJAR_GRPC_PORT": "0"}


def run(args: list[str], home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NIGHTJAR, *args], env=_env(home), cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


QUERY = """query($oid: String!) {
  object(oid: $oid) { oid ndet meanra meandec
    magstats { fid ndet magmean magmeanCorr dmdtFirst }
    detections { candid mjd magpsf magpsfCorr sigmapsfCorrExt corrected dubious hasStamp }
    nonDetections { mjd diffmaglim } }
}"""


@pytest.mark.shared
def test_ingest_then_query_then_serve_real_alerts(shared_data: Path, home: Path) -> None:
    if os.environ.get("MONGODB_URI"):
        pytest.skip("exercises the embedded default; MONGODB_URI is set")
    alerts = shared_data / "ztf" / "alerts"
    done = run(["ingest", str(alerts), str(shared_data / "ztf" / "bad")], home)
    assert done.returncode == 0, done.stderr
    assert "alerts stored" in done.stderr and "dead-lettered" in done.stderr
    assert not (home / STATE_FILE).exists()  # the embedded server stopped with the CLI

    strict = run(["ingest", "--strict", str(shared_data / "ztf" / "bad")], home)
    assert strict.returncode == 1

    oid = "ZTF18abxhyqv"  # in ampel-ztf/ZTF18abxhyqv
    out = run(["query", QUERY, "--variables", json.dumps({"oid": oid})], home)
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)["data"]["object"]
    assert obj["oid"] == oid and obj["ndet"] == len(obj["detections"]) > 1
    mjds = [d["mjd"] for d in obj["detections"]]
    assert mjds == sorted(mjds)
    assert all(isinstance(d["candid"], str) for d in obj["detections"])  # BigInt
    assert sum(m["ndet"] for m in obj["magstats"]) == obj["ndet"]

    port = free_port()
    server = subprocess.Popen([*NIGHTJAR, "serve", "--port", str(port)], env=_env(home),
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.3)
        resp = httpx.post(f"{url}/graphql", json={"query": QUERY, "variables": {"oid": oid}},
                          timeout=30)
        assert resp.status_code == 200
        assert resp.json()["data"]["object"] == obj  # same answer over HTTP as in-process
        page = httpx.get(f"{url}/graphql", headers={"Accept": "text/html"}, timeout=10)
        assert page.status_code == 200 and "graphiql" in page.text.lower()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert not (home / STATE_FILE).exists()


def test_simulate_and_ingest_strictly(home: Path, tmp_path: Path) -> None:
    if os.environ.get("MONGODB_URI"):
        pytest.skip("exercises the embedded default; MONGODB_URI is set")
    out_dir = tmp_path / "sim"
    sim = run(["simulate", "--n", "40", "--out", str(out_dir), "--seed", "3"], home)
    assert sim.returncode == 0, sim.stderr
    assert len(list(out_dir.glob("*.avro"))) == 40
    done = run(["ingest", "--strict", str(out_dir)], home)
    assert done.returncode == 0, done.stderr
    out = run(["query", "{ objects(first: 500) { nodes { oid ndet } } }"], home)
    nodes = json.loads(out.stdout)["data"]["objects"]["nodes"]
    assert sum(n["ndet"] for n in nodes) >= 40


def test_missing_path_is_a_clear_error(home: Path) -> None:
    done = run(["ingest", "/no/such/alerts"], home)
    assert done.returncode == 2 and "no such file" in done.stderr
