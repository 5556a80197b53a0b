"""End to end through the command line: ingest, query, serve over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nightjar.processes import free_port
from nightjar.store.embedded import STATE_FILE
from nightjar.v1 import catalog_pb2, catalog_pb2_grpc

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
        # the downloads and the metrics of the served gateway
        lc = httpx.get(f"{url}/download/lightcurve/{oid}.csv", timeout=30)
        assert lc.status_code == 200 and lc.text.count(",difference,") == obj["ndet"]
        alert = [d for d in obj["detections"] if d["hasStamp"]][-1]["candid"]
        avro = httpx.get(f"{url}/download/avro/{oid}/{alert}.avro", timeout=30)
        assert avro.status_code == 200 and avro.content[:4] == b"Obj\x01"
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert 'nightjar_gateway_requests_total{route="/graphql",status="200"}' in metrics
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


def test_one_ingest_of_both_surveys_in_every_file_form(home: Path, tmp_path: Path) -> None:
    """ZTF containers, LSST wire-format files (loose, under any name, and in a tar) and an
    LSST Avro container, in one call: the survey is read from the content."""
    import io
    import tarfile

    import fastavro

    from nightjar.surveys.lsst.wire import unframe

    if os.environ.get("MONGODB_URI"):
        pytest.skip("exercises the embedded default; MONGODB_URI is set")
    ztf_dir, lsst_dir = tmp_path / "ztf", tmp_path / "lsst"
    assert run(["simulate", "--n", "30", "--out", str(ztf_dir)], home).returncode == 0
    made = run(["simulate", "--survey", "lsst", "--n", "40", "--out", str(lsst_dir),
                "--seed", "4"], home)
    assert made.returncode == 0, made.stderr
    packets = sorted(lsst_dir.glob("*.lsst"))
    assert len(packets) == 40 and all(p.read_bytes()[0] == 0 for p in packets)
    for i, path in enumerate(packets[:5]):  # names say nothing: the bytes do
        path.rename(lsst_dir / f"message-{i}.bin")
    with tarfile.open(tmp_path / "night.tar.gz", "w:gz") as tar:
        for path in packets[30:]:
            tar.add(path, arcname=f"night/{path.stem}")
            path.unlink()
    # one LSST alert as an Avro object container (the form Rubin's files take)
    from nightjar.surveys.lsst.schemas import LsstSchemas

    schema_id, body = unframe(packets[20].read_bytes())
    schema = LsstSchemas().get(schema_id).parsed
    record = fastavro.schemaless_reader(io.BytesIO(body), schema)
    container = io.BytesIO()
    fastavro.writer(container, schema, [record])
    packets[20].unlink()
    (lsst_dir / "one.avro").write_bytes(container.getvalue())
    done = run(["ingest", "--strict", str(ztf_dir), str(lsst_dir), str(tmp_path / "night.tar.gz")],
               home)
    assert done.returncode == 0, done.stderr
    assert re.search(r"LSST\s+│\s+40\b", done.stderr), done.stderr
    assert re.search(r"ZTF\s+│\s+30\b", done.stderr), done.stderr
    out = run(["query", "{ lsst: objects(filter: {survey: LSST}, first: 500) { nodes { oid } } "
                        "ztf: objects(filter: {survey: ZTF}, first: 500) { nodes { oid } } }"],
              home)
    data = json.loads(out.stdout)["data"]
    assert data["lsst"]["nodes"] and data["ztf"]["nodes"]
    assert all(n["oid"].isdigit() for n in data["lsst"]["nodes"])
    assert all(n["oid"].startswith("ZTF") for n in data["ztf"]["nodes"])


def test_missing_path_is_a_clear_error(home: Path) -> None:
    done = run(["ingest", "/no/such/alerts"], home)
    assert done.returncode == 2 and "no such file" in done.stderr


GRPC_SERVICES = ("nightjar.v1.CatalogService", "nightjar.v1.StampService",
                 "nightjar.v1.TnsService", "nightjar.v1.FindingChartService")


def _wait_grpc(port: int, server: subprocess.Popen[bytes], service: str) -> int:
    """The health status of ``service`` once the server answers (60 s at most)."""
    deadline = time.monotonic() + 60
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                return int(stub.Check(health_pb2.HealthCheckRequest(service=service),
                                      timeout=2).status)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:  # up, but no such service
                    return int(health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
                assert server.poll() is None and time.monotonic() < deadline, \
                    "serve did not start"
                time.sleep(0.3)


def test_serve_runs_every_grpc_service_and_one_alone(home: Path, tmp_path: Path) -> None:
    if os.environ.get("MONGODB_URI"):
        pytest.skip("exercises the embedded default; MONGODB_URI is set")
    (tmp_path / "c.csv").write_text("ra,dec,name\n10.0,-30.0,a\n")
    imported = run(["catalogs", "import", str(tmp_path / "c.csv"), "--name", "tiny",
                    "--id-col", "name"], home)
    assert imported.returncode == 0, imported.stderr
    gql, grpc_port, alone = free_port(), free_port(), free_port()
    env = {**_env(home), "NIGHTJAR_GRPC_PORT": str(grpc_port)}
    everything = subprocess.Popen([*NIGHTJAR, "serve", "--port", str(gql)], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for name in GRPC_SERVICES:
            status = _wait_grpc(grpc_port, everything, name)
            # TNS has no snapshot here: up, but NOT_SERVING until `nightjar tns sync`
            expected = (health_pb2.HealthCheckResponse.NOT_SERVING if "Tns" in name
                        else health_pb2.HealthCheckResponse.SERVING)
            assert status == expected, name
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            reply = catalog_pb2_grpc.CatalogServiceStub(channel).Crossmatch(
                catalog_pb2.CrossmatchRequest(ra=10.0, dec=-30.0), timeout=10)
        assert [m.source_id for m in reply.matches] == ["a"]
        assert httpx.get(f"http://127.0.0.1:{gql}/healthz", timeout=5).status_code == 200
    finally:
        everything.send_signal(signal.SIGINT)
        everything.wait(timeout=30)
    single = subprocess.Popen([*NIGHTJAR, "serve", "tns", "--port", str(alone)],
                              env=_env(home), cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        assert _wait_grpc(alone, single, "nightjar.v1.TnsService") == \
            health_pb2.HealthCheckResponse.NOT_SERVING
        assert _wait_grpc(alone, single, "nightjar.v1.CatalogService") == \
            health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    finally:
        single.send_signal(signal.SIGINT)
        single.wait(timeout=30)
    assert single.returncode == 0


def test_serve_with_workers_spreads_connections_over_processes(home: Path) -> None:
    """``serve --workers 3``: three gateway processes on one port (SO_REUSEPORT) on the
    same database; new connections reach all of them; a stop stops them all."""
    if os.environ.get("MONGODB_URI"):
        pytest.skip("exercises the embedded default; MONGODB_URI is set")
    gql, grpc_port = free_port(), free_port()
    env = {**_env(home), "NIGHTJAR_GRPC_PORT": str(grpc_port)}
    server = subprocess.Popen([*NIGHTJAR, "serve", "--port", str(gql), "--workers", "3"],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    processes: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while len(processes) < 3 and time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            try:  # a new connection each time: the kernel picks a process per connection
                answer = httpx.get(f"http://127.0.0.1:{gql}/healthz", timeout=5)
                processes.add(answer.json()["process"])
                query = httpx.post(f"http://127.0.0.1:{gql}/graphql", timeout=10, json={
                    "query": "{ objects(first: 1) { totalCount } }"})
                assert query.json()["data"]["objects"]["totalCount"] >= 0
            except httpx.TransportError:
                time.sleep(0.2)  # not all of them are listening yet
        assert len(processes) == 3, processes
        assert server.pid in processes
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert server.returncode == 0
    time.sleep(0.5)
    for pid in processes - {server.pid}:  # the others were stopped with it
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _wait_status(port: int, server: subprocess.Popen[bytes], service: str, wanted: int,
                 within: float) -> float:
    """Seconds until ``service`` reports ``wanted``; fails after ``within`` seconds."""
    start = time.monotonic()
    while (status := _wait_grpc(port, server, service)) != wanted:
        assert time.monotonic() - start < within, \
            f"{service} still {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}"
        time.sleep(0.2)
    return time.monotonic() - start


def test_health_follows_imports_and_removals_on_a_running_server(home: Path,
                                                                 tmp_path: Path) -> None:
    import shutil

    import pyarrow.parquet as pq

    from nightjar.context.tns import SNAPSHOT, parse_public_objects
    from tests.fake_tns import public_objects_zip

    if os.environ.get("MONGODB_URI"):
        pytest.skip("exercises the embedded default; MONGODB_URI is set")
    grpc_port = free_port()
    env = {**_env(home), "NIGHTJAR_GRPC_PORT": str(grpc_port)}
    server = subprocess.Popen([*NIGHTJAR, "serve", "--port", str(free_port())], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    catalog, tns = "nightjar.v1.CatalogService", "nightjar.v1.TnsService"
    try:
        assert _wait_grpc(grpc_port, server, catalog) == not_serving
        assert _wait_grpc(grpc_port, server, tns) == not_serving
        (tmp_path / "c.csv").write_text("ra,dec,name\n10.0,-30.0,a\n")
        imported = run(["catalogs", "import", str(tmp_path / "c.csv"), "--name", "tiny",
                        "--id-col", "name"], home)
        assert imported.returncode == 0, imported.stderr
        _wait_status(grpc_port, server, catalog, serving, within=5)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            reply = catalog_pb2_grpc.CatalogServiceStub(channel).Crossmatch(
                catalog_pb2.CrossmatchRequest(ra=10.0, dec=-30.0), timeout=10)
        assert [m.source_id for m in reply.matches] == ["a"]  # the new data, no restart
        # what `nightjar tns sync` leaves behind: the snapshot file
        (home / "tns").mkdir(parents=True, exist_ok=True)
        pq.write_table(parse_public_objects(public_objects_zip([{
            "objid": 1, "name_prefix": "SN", "name": "2026abc", "ra": 10.0,
            "declination": -30.0}])), home / "tns" / SNAPSHOT)
        _wait_status(grpc_port, server, tns, serving, within=5)
        shutil.rmtree(home / "catalogs" / "tiny")
        (home / "tns" / SNAPSHOT).unlink()
        _wait_status(grpc_port, server, catalog, not_serving, within=5)
        _wait_status(grpc_port, server, tns, not_serving, within=5)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def _serve_until_up(home: Path, env: dict[str, str], gql: int,
                    grpc_port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([*NIGHTJAR, "serve", "--port", str(gql)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_grpc(grpc_port, server, "")
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{gql}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
        time.sleep(0.2)


def _interrupt(server: subprocess.Popen[bytes]) -> tuple[float, str]:
    """Ctrl-C; seconds until the process exited, and what it printed on stderr."""
    start = time.monotonic()
    server.send_signal(signal.SIGINT)
    _, stderr = server.communicate(timeout=60)
    return time.monotonic() - start, stderr.decode()


def test_ctrl_c_with_idle_clients_connected_exits_at_once(home: Path) -> None:
    if os.environ.get("MONGODB_URI"):
        pytest.skip("exercises the embedded default; MONGODB_URI is set")
    gql, grpc_port = free_port(), free_port()
    server = _serve_until_up(home, {**_env(home), "NIGHTJAR_GRPC_PORT": str(grpc_port)},
                             gql, grpc_port)
    try:
        # a browser-like keep-alive connection and an open gRPC channel stay connected
        with httpx.Client(base_url=f"http://127.0.0.1:{gql}") as http, \
                grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            assert http.post("/graphql", json={"query": "{ objects(first: 1) { nodes { oid } } }"},
                             timeout=10).status_code == 200
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                      timeout=5)
            seconds, stderr = _interrupt(server)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, stderr[-2000:]
    nx_log = home / "nx-27017.log"  # where the embedded database says why it lingered
    assert seconds < 2.0, (f"took {seconds:.1f} s to exit; stderr: {stderr[-1500:]}; "
                           f"nx-27017: {nx_log.read_text()[-1500:] if nx_log.exists() else ''}")
    assert "waiting" not in stderr
    assert not (home / STATE_FILE).exists()  # the embedded database stopped with it


def test_ctrl_c_again_while_cleaning_up_neither_interrupts_nor_leaks(home: Path) -> None:
    # Under `make demo` one Ctrl-C reaches the server twice (from the terminal, and
    # forwarded by `uv run`), and an impatient user adds more: those arriving after the
    # servers stopped must let the clean-up (the embedded database) finish, quietly.
    if os.environ.get("MONGODB_URI"):
        pytest.skip("exercises the embedded default; MONGODB_URI is set")
    gql, grpc_port = free_port(), free_port()
    server = _serve_until_up(home, {**_env(home), "NIGHTJAR_GRPC_PORT": str(grpc_port)},
                             gql, grpc_port)
    assert server.stderr is not None
    printed: list[str] = []
    try:
        server.send_signal(signal.SIGINT)
        for line in server.stderr:
            printed.append(line.decode())
            if "Finished server process" in printed[-1]:  # uvicorn's last word
                break
        deadline = time.monotonic() + 30
        while server.poll() is None:  # Ctrl-C again and again through the clean-up
            assert time.monotonic() < deadline, "did not exit"
            server.send_signal(signal.SIGINT)
            time.sleep(0.01)
        printed.append(server.stderr.read().decode())
    finally:
        if server.poll() is None:
            server.kill()
    stderr = "".join(printed)
    assert any("Finished server process" in line for line in printed), stderr[-2000:]
    assert server.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert not (home / STATE_FILE).exists()  # the embedded database stopped with it


def test_ctrl_c_says_what_it_waits_for_and_stops_within_the_grace(home: Path,
                                                                  tmp_path: Path) -> None:
    import socket

    from nightjar.v1 import finding_chart_pb2, finding_chart_pb2_grpc

    if os.environ.get("MONGODB_URI"):
        pytest.skip("exercises the embedded default; MONGODB_URI is set")
    sim = run(["simulate", "--n", "3", "--out", str(tmp_path / "sim")], home)
    assert sim.returncode == 0, sim.stderr
    assert run(["ingest", str(tmp_path / "sim")], home).returncode == 0
    oid = run(["query", "{ objects(first: 1) { nodes { oid } } }"], home)
    oid = json.loads(oid.stdout)["data"]["objects"]["nodes"][0]["oid"]
    with socket.socket() as silent:  # a survey cutout server that never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        gql, grpc_port = free_port(), free_port()
        env = {**_env(home), "NIGHTJAR_GRPC_PORT": str(grpc_port),
               "NIGHTJAR_SHUTDOWN_GRACE": "1",
               "NIGHTJAR_FINDING_CHART_CUTOUT_URL":
                   f"http://127.0.0.1:{silent.getsockname()[1]}/cutout?ra={{ra}}"}
        server = _serve_until_up(home, env, gql, grpc_port)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                call = finding_chart_pb2_grpc.FindingChartServiceStub(
                    channel).GetFindingChart.future(
                    finding_chart_pb2.GetFindingChartRequest(oid=oid), timeout=30)
                time.sleep(1.0)  # the call now waits on the silent cutout server
                assert not call.done()
                seconds, stderr = _interrupt(server)
                with pytest.raises(grpc.RpcError):
                    call.result(timeout=10)  # abandoned after the grace, not completed
        finally:
            if server.poll() is None:
                server.kill()
    assert "waiting up to 1 s for gRPC call(s) in flight" in stderr, stderr[-2000:]
    assert seconds < 1.0 + 2.0, f"took {seconds:.1f} s to exit"
    assert server.returncode == 0


@pytest.mark.shared
def test_the_demo_serves_the_real_catalogues_once(shared_data: Path, tmp_path: Path) -> None:
    from nightjar.cli import _demo_catalogs
    from nightjar.context.catalogs import CatalogStore
    from nightjar.settings import Settings

    settings = Settings(home=tmp_path, shared_data=shared_data)
    _demo_catalogs(settings)
    store = CatalogStore(settings.catalog_path)
    assert {n: i.row_count for n, i in store.infos.items()} == {"gcvs": 59_099,
                                                                "spicy": 117_446}
    written = {p: p.stat().st_mtime_ns for p in settings.catalog_path.rglob("*") if p.is_file()}
    _demo_catalogs(settings)  # a second demo keeps what is there
    assert {p: p.stat().st_mtime_ns for p in settings.catalog_path.rglob("*")
            if p.is_file()} == written
    # S And, GCVS's first row, found where the demo's cross-matches look
    (s_and,) = store.cone("gcvs", 10.6795833, 41.2680556, 2.0)
    assert s_and.columns["VarType"] == "SNI"


def test_the_demo_makes_a_filter_and_a_watchlist_and_shows_their_matches(
        tmp_path: Path) -> None:
    if os.environ.get("MONGODB_URI"):
        pytest.skip("exercises the embedded default; MONGODB_URI is set")
    home = tmp_path / "home"
    env = {**_env(home), "NIGHTJAR_SHARED_DATA": str(tmp_path / "absent")}

    def demo(n: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*NIGHTJAR, "demo", "--no-serve", "--n", str(n), "--n-lsst",
                               str(n // 2)], env=env, cwd=ROOT, text=True,
                              capture_output=True, timeout=600)

    first = demo(200)
    assert first.returncode == 0, first.stderr[-3000:]
    said = first.stdout + first.stderr
    counts = {name: int(count) for name, count in re.findall(
        r"(demo-[a-z-]+) \([a-z]+ stage\): (\d+) matches", said)}
    assert set(counts) == {"demo-bright-risers", "demo-watched", "demo-sn-candidates"}
    assert counts["demo-watched"] > 0 and counts["demo-bright-risers"] > 0
    found = re.search(r"demo-watchlist: (\d+) alerts within", said)
    assert found is not None, said[-3000:]
    listed = int(found.group(1))
    assert listed > 0

    def matches(*args: str) -> list[dict[str, object]]:
        done = subprocess.run([*NIGHTJAR, *args, "--format", "json"], env=env, cwd=ROOT,
                              text=True, capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))

    watched = matches("filter", "matches", "demo-watched", "--first", "100000")
    assert len(watched) == counts["demo-watched"]
    hits = matches("watchlist", "matches", "demo-watchlist")
    assert len(hits) == listed
    # every alert the filter took is one the watchlist matched (and bright enough)
    assert {m["alert_id"] for m in watched} <= {h["alert_id"] for h in hits}
    again = demo(20)  # a second demo keeps the filters and the list, and goes on
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already has" not in again.stderr
