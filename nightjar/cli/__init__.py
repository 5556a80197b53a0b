"""The ``nightjar`` command line: simulate, ingest, db, serve, query, demo.

Settings are read from the environment once, here, and passed down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from nightjar.cli.filters import filter_app, watchlist_app, watchmap_app
from nightjar.cli.ml import ml_app

if TYPE_CHECKING:  # the commands import what they use, so `nightjar --help` starts fast
    from nightjar.runner.ingest import IngestSummary
    from nightjar.settings import Settings
    from nightjar.store import NightjarStore

app = typer.Typer(help="Nightjar alert broker", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database set-up", no_args_is_help=True)
app.add_typer(db_app, name="db")
dev_app = typer.Typer(help="Development services", no_args_is_help=True)
kafka_app = typer.Typer(help="A single-node Kafka 3.9 broker (KRaft) on 127.0.0.1",
                        no_args_is_help=True)
dev_app.add_typer(kafka_app, name="kafka")
app.add_typer(dev_app, name="dev")
catalogs_app = typer.Typer(help="Catalogues for cone search and cross-matching",
                           no_args_is_help=True)
app.add_typer(catalogs_app, name="catalogs")
tns_app = typer.Typer(help="The Transient Name Server snapshot", no_args_is_help=True)
app.add_typer(tns_app, name="tns")
app.add_typer(ml_app, name="ml")
app.add_typer(filter_app, name="filter")
app.add_typer(watchlist_app, name="watchlist")
app.add_typer(watchmap_app, name="watchmap")
#: What ``nightjar serve SERVICE`` accepts (``all``: GraphQL plus every gRPC service).
SERVICES = ("all", "graphql", "catalog", "stamps", "tns", "finding_chart")
err = Console(stderr=True)
out = Console()

EXAMPLE_QUERY = """{
  objects(filter: {classifier: "stamp_classifier", className: "SN", ndet: {min: 3}},
          orderBy: {field: PROBABILITY}, first: 5) {
    totalCount
    nodes { oid ndet meanra meandec magstats { band ndet magmean magmeanCorr }
            probabilities(classifier: "lc_classifier_top") { className probability }
            downloads { lightcurvePng findingChart } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@app.callback()
def _main() -> None:
    # SIGTERM must unwind like Ctrl-C so the embedded database server is stopped too
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _settings() -> Settings:
    from pydantic import ValidationError

    from nightjar.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:  # one clear line per setting, no traceback
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            err.print(f"[red]error:[/red] {where}: {error['msg']}", highlight=False)
        raise typer.Exit(2) from exc


@app.command()
def simulate(
    n: Annotated[int, typer.Option("--n", help="number of alerts", min=1)] = 1000,
    out_dir: Annotated[Path, typer.Option("--out", help="output directory")] = Path("alerts"),
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    survey: Annotated[str, typer.Option(help="ztf (Avro containers, schema 4.02) or lsst "
                                             "(Rubin's wire format)")] = "ztf",
    schema: Annotated[str, typer.Option(help="LSST schema version, e.g. 11.0 or 10.0")
                      ] = "11.0",
    burst: Annotated[bool, typer.Option(help="LSST: all N alerts from one visit of one "
                                             "field (Rubin sends ~10,000 a visit)")] = False,
) -> None:
    """Write N schema-valid simulated alerts (ZTF or LSST) into a directory."""
    if survey.lower() == "ztf":
        from nightjar.surveys.ztf.simulate import write_alerts

        paths = write_alerts(n, out_dir, seed=seed)
    elif survey.lower() == "lsst":
        from nightjar.surveys.lsst.simulate import write_alerts as write_lsst
        from nightjar.surveys.lsst.wire import schema_id_of

        try:
            schema_id = schema_id_of(schema)
        except ValueError as exc:
            err.print(f"[red]error:[/red] --schema {schema!r} is not a version like 11.0")
            raise typer.Exit(2) from exc
        paths = write_lsst(n, out_dir, seed=seed, schema_id=schema_id, burst=burst)
    else:
        err.print(f"[red]error:[/red] --survey is ztf or lsst, not {survey!r}")
        raise typer.Exit(2)
    err.print(f"wrote {len(paths)} {survey.upper()} alerts to {out_dir}")


def _print_summary(summary: IngestSummary) -> None:
    from rich.table import Table

    table = Table(title="ingest summary", show_header=False)
    table.add_row("inputs", str(summary.inputs))
    table.add_row("alerts stored", str(summary.alerts_stored))
    for survey, count in sorted(summary.by_survey.items()):
        table.add_row(f"  {survey}", str(count))
    table.add_row("  of solar-system sources (no object)", str(summary.solar_system))
    table.add_row("dead-lettered", str(summary.dead_lettered))
    table.add_row("objects", str(len(summary.objects_seen)))
    table.add_row("new detections", str(summary.new_detections))
    table.add_row("objects updated", str(summary.objects_written))
    table.add_row("objects classified (light curve)", str(len(summary.classified)))
    table.add_row("objects classified (stamps)", str(len(summary.stamp_classified)))
    table.add_row("elapsed", f"{summary.seconds:.1f} s ({summary.rate:.0f} inputs/s)")
    for reason, count in summary.reasons.most_common():
        table.add_row(f"  rejected x{count}", reason)
    err.print(table)


async def _ingest(settings: Settings, paths: list[Path], batch_size: int) -> IngestSummary:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from nightjar.runner.delivery import configured_deliverer
    from nightjar.runner.filters import configured_filters
    from nightjar.runner.ingest import (
        BatchProcessor,
        alert_parser,
        expand_paths,
        ingest,
        iter_inputs,
    )
    from nightjar.runner.topology import configured_topology
    from nightjar.runner.watch import configured_watch
    from nightjar.store import open_store
    from nightjar.store.archive import LocalArchive
    from nightjar.store.filters import FilterStore

    files = expand_paths(paths)
    async with open_store(settings) as store, configured_deliverer(
            settings, FilterStore(store)) as deliverer:
        await store.init()
        watch = await configured_watch(settings, store)
        processor = BatchProcessor(store, LocalArchive(settings.archive_path),
                                   parser=alert_parser(settings),
                                   topology=configured_topology(settings),
                                   filters=configured_filters(
                                       settings, store, watch, deliverer=deliverer).engine
                                   if settings.filters else None)
        with Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[stored]} stored, {task.fields[dead]} rejected"),
                      TimeElapsedColumn(), console=err, transient=False) as progress:
            task = progress.add_task("ingest", total=len(files), stored=0, dead=0)

            def advance(totals: IngestSummary) -> None:
                progress.update(task, completed=totals.inputs, stored=totals.alerts_stored,
                                dead=totals.dead_lettered)

            return await ingest(processor, iter_inputs(files), batch_size, on_batch=advance)


@app.command("ingest")
def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help=".avro files, directories, .tar.gz")],
    strict: Annotated[bool, typer.Option(help="exit 1 when any input was rejected")] = False,
    batch_size: Annotated[int | None, typer.Option(help="alerts per batch")] = None,
) -> None:
    """Ingest alerts: parse, archive, correct, aggregate and store them.

    Every input ends in the store or in the dead-letter collection with a reason;
    the exit status is 0 unless --strict is given and something was rejected.
    """
    settings = _settings()
    try:
        summary = asyncio.run(_ingest(settings, paths, batch_size or settings.batch_size))
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    _print_summary(summary)
    if strict and summary.dead_lettered:
        raise typer.Exit(1)


@db_app.command("init")
def db_init() -> None:
    """Create the collections' indexes (idempotent)."""
    from nightjar.store import open_store

    async def run() -> dict[str, list[tuple[tuple[str, int | str], ...]]]:
        async with open_store(_settings()) as store:
            await store.init()
            return await store.index_keys()

    for coll, keys in asyncio.run(run()).items():
        out.print(f"{coll}: " + ", ".join(str(dict(k)) for k in keys), markup=False)


@db_app.command("migrate")
def db_migrate() -> None:
    """Add ``survey`` and ``band`` to documents stored before Nightjar read LSST."""
    from nightjar.store import open_store

    async def run() -> dict[str, int]:
        async with open_store(_settings()) as store:
            await store.init()
            return await store.migrate()

    for coll, count in asyncio.run(run()).items():
        out.print(f"{coll}: {count} documents updated", markup=False)


@db_app.command("shard-script")
def db_shard_script(
    shard: Annotated[list[str], typer.Option(help="shard name (repeat for each shard)")],
    zone_order: Annotated[int, typer.Option(min=0, max=29, help="HEALPix order of zones")] = 1,
) -> None:
    """Print the mongosh script that shards the collections and pins sky zones."""
    from nightjar.store.schema import shard_script

    out.print(shard_script(_settings().database, shard, zone_order), end="", markup=False,
              highlight=False)


def _gateway_socket(host: str, port: int, reuse_port: bool) -> Any:
    """The GraphQL listening socket; with ``reuse_port`` several processes bind it and
    the kernel spreads incoming connections over them (Linux SO_REUSEPORT)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _gateway_processes(n: int, host: str, port: int, db_uri: str,
                       grpc_target: str | None) -> list[subprocess.Popen[bytes]]:
    """``n`` more gateway processes on the same port, on the same database and gRPC
    services as this one."""
    env = {**os.environ, "MONGODB_URI": db_uri,
           **({"NIGHTJAR_GRPC_TARGET": grpc_target} if grpc_target else {})}
    return [subprocess.Popen([sys.executable, "-m", "nightjar.cli", "serve", "graphql",
                              "--host", host, "--port", str(port), "--reuse-port"], env=env)
            for _ in range(n)]


def _stop_processes(processes: list[subprocess.Popen[bytes]], grace: float) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace + 5.0
    for proc in processes:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _serve(settings: Settings, service: str, host: str | None, port: int | None,
                 workers: int = 1, reuse_port: bool = False) -> None:
    from nightjar.store import database_uri

    with database_uri(settings) as db_uri:
        await _serve_on(settings, db_uri, service, host, port, workers, reuse_port)


async def _serve_on(settings: Settings, db_uri: str, service: str, host: str | None,
                    port: int | None, workers: int, reuse_port: bool) -> None:
    import httpx
    import uvicorn

    from ml.registry import ModelRegistry
    from nightjar.context.catalogs import CatalogStore
    from nightjar.runner.ingest import alert_parser
    from nightjar.store.archive import LocalArchive
    from nightjar.store.embedded import store_at
    from services.catalog.servicer import catalog_service
    from services.finding_chart.servicer import finding_chart_service
    from services.gateway.app import GatewayConfig, create_app
    from services.grpc_security import GrpcSecurity, client_channel
    from services.grpc_server import start_server, stop_server
    from services.stamps.servicer import stamp_service
    from services.tns.servicer import tns_service

    async with store_at(db_uri, settings) as store, httpx.AsyncClient() as http:
        await store.init()
        archive = LocalArchive(settings.archive_path)
        grpc_services = {
            "catalog": lambda: catalog_service(CatalogStore(settings.catalog_path)),
            "stamps": lambda: stamp_service(store, archive, alert_parser(settings)),
            "tns": lambda: tns_service(settings.tns_path),
            "finding_chart": lambda: finding_chart_service(
                store, archive, settings.tns_path, settings.finding_chart_cutout_url, http),
        }
        tasks: list[Coroutine[Any, Any, Any]] = []
        running = None
        security = GrpcSecurity.from_settings(settings)
        if service in ("all", *grpc_services):
            wanted = list(grpc_services) if service == "all" else [service]
            grpc_port = port if port is not None and service != "all" else settings.grpc_port
            running = await start_server([grpc_services[name]() for name in wanted],
                                         host or settings.grpc_host, grpc_port,
                                         security=security)
            err.print(f"gRPC ({', '.join(wanted)}): {host or settings.grpc_host}:{running.port}"
                      f" ({'TLS' if security.tls else 'plaintext'}"
                      f"{', mutual TLS' if security.client_ca else ''}"
                      f"{', bearer tokens' if security.tokens else ', no authentication'})")
        channel = None
        target = (f"127.0.0.1:{running.port}" if running is not None and service == "all"
                  else settings.grpc_target)
        http_server: Any = None
        gateway: Any = None
        others: list[subprocess.Popen[bytes]] = []  # the other processes of --workers
        try:
            if service in ("all", "graphql"):
                if target:  # the gateway answers tns/coneSearch through the gRPC services
                    token = (settings.grpc_target_token.get_secret_value()
                             if settings.grpc_target_token else
                             security.tokens[0] if security.tokens else None)
                    channel = client_channel(
                        target, token=token, ca=(settings.grpc_target_ca.read_bytes()
                                                 if settings.grpc_target_ca else None))
                gql_host = host or settings.graphql_host
                gql_port = port if port is not None else settings.graphql_port
                from nightjar.context.tns_report import reporter_from_settings
                from nightjar.runner.filters import configured_filters
                from nightjar.runner.watch import WatchService, configured_watch
                from nightjar.store.watch import WatchStore

                indexes = await configured_watch(settings, store)
                gateway = create_app(store, channel, config=GatewayConfig.from_settings(settings),
                                     feed=_live_feed(settings, store),
                                     registry=ModelRegistry.default(settings.home),
                                     filters=configured_filters(settings, store,
                                                                indexes).service,
                                     watch=WatchService(WatchStore(store), indexes),
                                     tns=reporter_from_settings(settings, http))
                sock = _gateway_socket(gql_host, gql_port, reuse_port or workers > 1)
                gql_port = sock.getsockname()[1]
                config = uvicorn.Config(gateway, log_level="info",
                                        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace))
                if workers > 1:
                    others = _gateway_processes(workers - 1, gql_host, gql_port, db_uri, target)
                if not reuse_port:  # the extra processes of --workers stay quiet
                    err.print(f"Explorer (web page): http://{gql_host}:{gql_port}/explorer")
                    err.print(f"GraphQL (GraphiQL in a browser): http://{gql_host}:{gql_port}/"
                              f"graphql{f' ({workers} processes)' if workers > 1 else ''}")
                http_server = _http_server(config)
                tasks.append(http_server.serve(sockets=[sock]))
            await _until_stopped(tasks, http_server, running, settings.shutdown_grace)
        finally:
            await asyncio.to_thread(_stop_processes, others, settings.shutdown_grace)
            if gateway is not None and gateway.state.hub is not None:
                await gateway.state.hub.close()
            if channel is not None:
                await channel.close()
            if running is not None:
                await stop_server(running, grace=0)  # no-op when already stopped


def _live_feed(settings: Settings, store: NightjarStore) -> Any:
    """The gateway's live feed as configured (``NIGHTJAR_GATEWAY_LIVE_FEED``)."""
    from services.gateway.live import KafkaFeed, StoreFeed

    if settings.gateway_live_feed == "store":
        return StoreFeed(store)
    if settings.gateway_live_feed == "kafka":
        from aiokafka import AIOKafkaConsumer

        from stream.kafka import connection_options

        def consumer() -> AIOKafkaConsumer:  # no group: every gateway sees every record
            return AIOKafkaConsumer(group_id=None, auto_offset_reset="latest",
                                    enable_auto_commit=False, fetch_max_wait_ms=50,
                                    **connection_options(settings.kafka_connection()))

        from nightjar.runner.output_schemas import output_schema_resolver

        return KafkaFeed(consumer, settings.topic_classifications,
                         schema_of=output_schema_resolver(settings))
    return None


def _http_server(config: Any) -> Any:
    """uvicorn's server without its own signal handling: :func:`_until_stopped` stops it.

    (uvicorn re-raises a captured signal after serving, which then interrupts the
    clean-up that follows: the embedded database, the gRPC server.)
    """
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server(config)


async def _until_stopped(tasks: list[Coroutine[Any, Any, Any]], http_server: Any,
                         grpc_server: Any, grace: float) -> None:
    """Serve until Ctrl-C or SIGTERM, then stop within ``grace`` seconds, saying why.

    Nothing in flight: both servers stop at once.  Requests or calls in flight get up
    to ``grace`` s and the console says what is awaited; a second Ctrl-C stops at once.
    """
    from services.grpc_server import stop_server

    loop = asyncio.get_running_loop()
    stop, force = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            err.print("stopping now, abandoning what is in flight")
            force.set()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    serving = [asyncio.ensure_future(task) for task in tasks]
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([*serving, waiter], return_when=asyncio.FIRST_COMPLETED)
        for task in serving:  # a server that ended by itself (e.g. port taken) says why
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        waiting = []
        if http_server is not None:
            n = len(http_server.server_state.tasks)
            if n:
                waiting.append(f"{n} HTTP request(s)")
            http_server.should_exit = True
        stopping = [*serving]
        if grpc_server is not None:
            stopping.append(asyncio.ensure_future(stop_server(grpc_server, grace)))
        done, _ = await asyncio.wait(stopping, timeout=0.5)
        if len(done) < len(stopping):
            if grpc_server is not None and not all(t.done() for t in stopping[len(serving):]):
                waiting.append("gRPC call(s)")
            err.print(f"stopping: waiting up to {grace:g} s for {' and '.join(waiting) or 'calls'}"
                      " in flight (Ctrl-C again to stop at once)")
            forced = asyncio.ensure_future(force.wait())
            everything: asyncio.Future[Any] = asyncio.gather(*stopping, return_exceptions=True)
            await asyncio.wait([everything, forced], return_when=asyncio.FIRST_COMPLETED)
            if force.is_set():
                if http_server is not None:
                    http_server.force_exit = True
                if grpc_server is not None:
                    await grpc_server.server.stop(0)
                for task in stopping:
                    task.cancel()
            forced.cancel()
        await asyncio.gather(*stopping, return_exceptions=True)
    finally:
        waiter.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
            # stopped: the clean-up that follows (the embedded database, the store's
            # connections) must finish, so a further Ctrl-C (a terminal's, forwarded
            # again by `uv run`) or SIGTERM is ignored rather than interrupting it
            signal.signal(sig, signal.SIG_IGN)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(
        help=f"what to serve: {', '.join(SERVICES)}")] = "all",
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(
        help="port (with 'all': the GraphQL port; gRPC uses NIGHTJAR_GRPC_PORT)")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="GraphQL gateway processes sharing the port (SO_REUSEPORT: the kernel "
                    "spreads connections); each has its own live hub")] = 1,
    reuse_port: Annotated[bool, typer.Option(
        hidden=True, help="bind the GraphQL port with SO_REUSEPORT (set for the extra "
                          "processes of --workers)")] = False,
) -> None:
    """Serve GraphQL and the gRPC services until interrupted (or one SERVICE alone)."""
    if service not in SERVICES:
        err.print(f"[red]error:[/red] unknown service {service!r}; one of {', '.join(SERVICES)}")
        raise typer.Exit(2)
    if workers > 1 and service not in ("all", "graphql"):
        err.print("[red]error:[/red] --workers applies to the GraphQL gateway ('all' or "
                  "'graphql')")
        raise typer.Exit(2)
    _serve_until_stopped(_settings(), service, host, port, workers, reuse_port)


def _serve_until_stopped(settings: Settings, service: str, host: str | None,
                         port: int | None, workers: int = 1, reuse_port: bool = False) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(settings, service, host, port, workers, reuse_port))
    # stopped and cleaned up: a further Ctrl-C (a terminal's, forwarded again by `uv run`)
    # must not interrupt the interpreter's own teardown with a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@catalogs_app.command("import")
def catalogs_import(
    path: Annotated[Path, typer.Argument(help="CSV, FITS, VOTable or parquet file")],
    name: Annotated[str, typer.Option(help="catalogue name (lower case), e.g. gcvs")],
    ra_col: Annotated[str | None, typer.Option(help="right ascension column [deg or hms]")] = None,
    dec_col: Annotated[str | None, typer.Option(help="declination column [deg or dms]")] = None,
    id_col: Annotated[str | None, typer.Option(help="identifier column (default: row)")] = None,
    default_radius: Annotated[float, typer.Option(
        help="default cross-match radius [arcsec]")] = 1.0,
    source: Annotated[str | None, typer.Option(help="provenance to record")] = None,
) -> None:
    """Partition a catalogue by HEALPix for cone searches (replaces an earlier import)."""
    from nightjar.context.catalogs import CatalogError, import_catalog

    settings = _settings()
    try:
        info, dropped = import_catalog(path, name, settings.catalog_path, ra_col=ra_col,
                                       dec_col=dec_col, id_col=id_col,
                                       default_radius_arcsec=default_radius, source=source)
    except (CatalogError, OSError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    err.print(f"imported {info.row_count} rows of {path.name} as {info.name!r} "
              f"(HEALPix order {info.healpix_order}, {len(info.pixels)} pixels; ra "
              f"{info.ra_column!r}, dec {info.dec_column!r}"
              + (f"; {dropped} rows without valid coordinates dropped)" if dropped else ")"))


@tns_app.command("sync")
def tns_sync() -> None:
    """Refresh the local TNS snapshot through TNS's API (full once, then daily files)."""
    import datetime as dt

    import httpx

    from nightjar.context.tns import TnsClient, TnsError, sync

    settings = _settings()
    if not (settings.tns_bot_id and settings.tns_bot_name and settings.tns_api_key):
        err.print("[red]error:[/red] set NIGHTJAR_TNS_BOT_ID, NIGHTJAR_TNS_BOT_NAME and "
                  "NIGHTJAR_TNS_API_KEY (a TNS bot's credentials)")
        raise typer.Exit(2)
    bot_id, bot_name, key = settings.tns_bot_id, settings.tns_bot_name, settings.tns_api_key

    async def run() -> Any:
        async with httpx.AsyncClient(base_url=settings.tns_url, timeout=120.0) as http:
            client = TnsClient(http, bot_id, bot_name, key.get_secret_value())
            return await sync(client, settings.tns_path, dt.datetime.now(dt.UTC).date())

    try:
        report = asyncio.run(run())
    except TnsError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    err.print(f"TNS snapshot: {report.objects} objects ({report.rows_received} rows from "
              f"{len(report.files)} files: {', '.join(report.files)}; "
              f"{report.rate_limit_waits} rate-limit waits)")


@catalogs_app.command("list")
def catalogs_list() -> None:
    """List the imported catalogues."""
    from rich.table import Table

    from nightjar.context.catalogs import CatalogStore

    table = Table(title="catalogues")
    for col in ("name", "rows", "radius″", "order", "source"):
        table.add_column(col)
    for info in CatalogStore(_settings().catalog_path).infos.values():
        table.add_row(info.name, str(info.row_count), f"{info.default_radius_arcsec:g}",
                      str(info.healpix_order), info.source)
    out.print(table)


def execute_query(settings: Settings, query: str,
                  variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one GraphQL query in-process against the configured store.

    The database (the embedded server, when it is not running yet) starts in a thread
    while the schema is imported: they take about as long, so the wait is one, not both.
    """
    from concurrent.futures import ThreadPoolExecutor

    def start() -> tuple[str, contextlib.AbstractContextManager[str]]:
        from nightjar.store.embedded import database_uri

        manager = database_uri(settings)
        return manager.__enter__(), manager

    with ThreadPoolExecutor(1) as pool:
        starting = pool.submit(start)
        from nightjar.store.embedded import store_at
        from services.gateway.schema import GatewayContext, schema

        uri, manager = starting.result()

    async def run() -> Any:
        async with store_at(uri, settings) as store:
            return await schema.execute(query, variable_values=variables,
                                        context_value=GatewayContext(store))

    try:
        result = asyncio.run(run())
    finally:
        manager.__exit__(None, None, None)
    response: dict[str, Any] = {"data": result.data}
    if result.errors:
        response["errors"] = [e.formatted for e in result.errors]
    return response


@app.command()
def query(
    graphql: Annotated[str, typer.Argument(help="GraphQL query text, or @FILE")],
    variables: Annotated[str | None, typer.Option(help="variables as JSON")] = None,
) -> None:
    """Execute a GraphQL query in-process and print the JSON response."""
    text = Path(graphql[1:]).read_text() if graphql.startswith("@") else graphql
    response = execute_query(_settings(), text, json.loads(variables) if variables else None)
    sys.stdout.write(json.dumps(response, indent=2) + "\n")
    if response.get("errors"):
        raise typer.Exit(1)


@app.command()
def demo(
    n: Annotated[int, typer.Option("--n", help="simulated ZTF alerts to add")] = 2000,
    n_lsst: Annotated[int, typer.Option("--n-lsst", help="simulated LSST alerts to add")
                      ] = 1000,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
) -> None:
    """Ingest the real alerts in ../shared (when present) and simulated ones, then serve."""
    from nightjar.surveys.lsst.simulate import write_alerts as write_lsst
    from nightjar.surveys.ztf.simulate import write_alerts

    settings = _settings()
    paths: list[Path] = []
    real = settings.shared_data / "ztf"
    if real.is_dir():
        paths += [real / "alerts", real / "bad"]
        err.print(f"using the real ZTF alerts under {real}")
    else:
        err.print(f"{real} not found: using simulated alerts only")
    with tempfile.TemporaryDirectory(prefix="nightjar-sim-") as tmp:
        lsst = _demo_lsst(settings, Path(tmp) / "lsst-real")
        paths += lsst
        err.print(f"simulating {n} ZTF and {n_lsst} LSST alerts ...")
        simulated = write_alerts(n, Path(tmp) / "ztf", seed=42)
        simulated += write_lsst(n_lsst, Path(tmp) / "lsst", seed=42)
        paths += [Path(tmp) / "ztf", Path(tmp) / "lsst"]
        asyncio.run(_demo_filters(settings, simulated))
        _print_summary(asyncio.run(_ingest(settings, paths, settings.batch_size)))
    asyncio.run(_demo_matches(settings))
    _demo_catalogs(settings)
    err.print("\nexample query (paste into GraphiQL, or run `nightjar query '...'`):")
    out.print(EXAMPLE_QUERY, markup=False, highlight=False)
    if serve_after:
        _serve_until_stopped(settings, "all", None, None)


#: the demo's filters (the operator's, made before the alerts arrive, so they match live)
DEMO_FILTERS = {
    "demo-bright-risers": ('object.ndet >= 3 && alert.mag_diff < 19.5 && '
                           'alert.band in ["g", "r"]', "every"),
    "demo-watched": ('in_watchlist("demo-watchlist") && alert.snr > 5.0', "every"),
    "demo-sn-candidates": ('prob("stamp_classifier", "SN") > 0.6', "first"),
}


def _demo_watchlist(settings: Settings, simulated: list[Path]) -> bytes:
    """A watchlist CSV: the GCVS variable stars (when ../shared has them) and 20 of the
    simulated objects' positions."""
    from nightjar.runner.ingest import alert_parser
    from nightjar.surveys.interface import AlertSource

    lines = ["name,ra,dec,radius"]
    gcvs = settings.shared_data / "catalogs" / "gcvs.parquet"
    if gcvs.is_file():
        import pyarrow.parquet as pq

        table = pq.read_table(gcvs).to_pydict()
        lines += [f"gcvs-{i} {kind or ''},{ra!r},{dec!r},2.0" for i, (ra, dec, kind) in
                  enumerate(zip(table["ra"], table["dec"], table["VarType"], strict=True))]
    parser = alert_parser(settings)
    seen: set[str] = set()
    for path in simulated[::7]:
        alerts, _ = parser.parse(path.read_bytes(), AlertSource("file", path=str(path)))
        for alert in alerts:
            if alert.oid not in seen and len(seen) < 20:
                seen.add(alert.oid)
                lines.append(f"sim-{alert.oid},{alert.detection['ra']!r},"
                             f"{alert.detection['dec']!r},2.0")
    return ("\n".join(lines) + "\n").encode()


async def _demo_filters(settings: Settings, simulated: list[Path]) -> None:
    """The demo's watchlist and filters (kept when they exist from an earlier run)."""
    from nightjar.runner.filters import OPERATOR, configured_filters
    from nightjar.runner.watch import WatchService, configured_watch
    from nightjar.store import open_store
    from nightjar.store.filters import FilterNameTaken
    from nightjar.store.watch import WatchNameTaken, WatchStore

    async with open_store(settings) as store:
        await store.init()
        indexes = await configured_watch(settings, store)
        try:
            made = await WatchService(WatchStore(store), indexes).create_list(
                OPERATOR, "demo-watchlist", _demo_watchlist(settings, simulated))
            err.print(f"watchlist demo-watchlist: {made['rows']:,} positions")
        except WatchNameTaken:
            pass
        await indexes.refresh(force=True)
        service = configured_filters(settings, store, indexes).service
        for name, (expression, notify) in DEMO_FILTERS.items():
            try:
                await service.create(OPERATOR, name, expression, notify=notify,
                                     description="made by `nightjar demo`")
                err.print(f"filter {name}: {expression}", soft_wrap=True)
            except FilterNameTaken:
                pass


async def _demo_matches(settings: Settings) -> None:
    """What the demo's filters and watchlist matched."""
    from nightjar.runner.filters import OPERATOR, configured_filters
    from nightjar.runner.watch import WatchService, configured_watch
    from nightjar.store import open_store
    from nightjar.store.watch import WatchStore

    async with open_store(settings) as store:
        indexes = await configured_watch(settings, store)
        service = configured_filters(settings, store, indexes).service
        err.print("\nwhat the demo's filters matched, live (`nightjar filter matches NAME`):")
        for name in DEMO_FILTERS:
            doc, found = await service.matches(OPERATOR, name, first=100_000)
            err.print(f"  {name} ({doc['stage']} stage): {len(found)} matches")
            for m in found[:3]:
                out.print(f"    {m['survey']} {m['oid']} alert {m['alert_id']} MJD "
                          f"{m['mjd']:.4f}  {m['permalink']}", markup=False, highlight=False,
                          soft_wrap=True)
        _, hits = await WatchService(WatchStore(store), indexes).matches(
            OPERATOR, "demo-watchlist", first=100_000)
        err.print(f"  demo-watchlist: {len(hits)} alerts within a listed position "
                  f"(`nightjar watchlist matches demo-watchlist`)", soft_wrap=True)
        for m in hits[:3]:
            out.print(f"    {m['row_name']}: {m['survey']} {m['oid']} at "
                      f"{m['separation_arcsec']:.2f} arcsec, MJD {m['mjd']:.4f}",
                      markup=False, highlight=False, soft_wrap=True)


#: Rubin's real alerts in ../shared (Fink's parquet) and the schema each was written with
DEMO_LSST = {"rubin_sample_data_10_0.parquet": 1000, "or4_lsst7.1.parquet": 701}


def _demo_lsst(settings: Settings, out: Path) -> list[Path]:
    """Rubin's real sample alerts as wire-format files (when ../shared has them)."""
    from nightjar.surveys.lsst.fink import write_wire_files

    folder = settings.shared_data / "lsst" / "fink"
    written = []
    for name, schema_id in DEMO_LSST.items():
        if (folder / name).is_file():
            written += write_wire_files(folder / name, schema_id, out)
    if written:
        err.print(f"using {len(written)} real LSST alerts under {folder}")
    return [out] if written else []


# Real catalogues the demo serves for cone searches and cross-matches (when ../shared has them)
DEMO_CATALOGS = {"gcvs": "gcvs.parquet", "spicy": "spicy.parquet"}


def _demo_catalogs(settings: Settings) -> None:
    from nightjar.context.catalogs import CatalogStore, import_catalog

    present = set(CatalogStore(settings.catalog_path).infos)
    for name, file in DEMO_CATALOGS.items():
        path = settings.shared_data / "catalogs" / file
        if name in present or not path.is_file():
            continue
        info, _ = import_catalog(path, name, settings.catalog_path)
        err.print(f"catalogue {name}: {info.row_count:,} sources from {path}")


# ---------------------------------------------------------------------------- Kafka
def _dev_kafka(settings: Settings) -> Any:
    from stream.devbroker import DevKafka

    return DevKafka(settings.home / "kafka", settings.kafka_dev_port)


@contextlib.contextmanager
def _kafka_errors(settings: Settings) -> Iterator[None]:
    """Turn a Kafka failure into one clear line and exit status 3."""
    from aiokafka.errors import KafkaError

    try:
        yield
    except KafkaError as exc:
        clusters = (f"Nightjar's cluster {settings.kafka_bootstrap_servers} "
                    f"({settings.kafka_security_protocol})")
        if settings.source_bootstrap_servers:
            clusters += (f", survey cluster {settings.source_bootstrap_servers} "
                         f"({settings.source_security_protocol})")
        err.print(f"[red]error:[/red] Kafka failed: {exc}. {clusters}. Check the bootstrap "
                  "servers and, for SASL/SSL clusters, the *_SASL_* / *_SSL_* settings (wrong "
                  "credentials also show as a failure to bootstrap).", highlight=False)
        raise typer.Exit(3) from exc


@kafka_app.command("start")
def kafka_start() -> None:
    """Start the development broker (fetching Kafka with Maven on first use)."""
    from stream.devbroker import KafkaUnavailable

    broker = _dev_kafka(_settings())
    try:
        bootstrap = broker.start()
    except KafkaUnavailable as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    err.print(f"Kafka {bootstrap} (data and log under {broker.workdir}); "
              f"workers use NIGHTJAR_KAFKA_BOOTSTRAP_SERVERS={bootstrap}")


@kafka_app.command("stop")
def kafka_stop() -> None:
    """Stop the development broker."""
    stopped = _dev_kafka(_settings()).stop()
    err.print("stopped" if stopped else "no development broker was running")


@kafka_app.command("status")
def kafka_status() -> None:
    """Say whether the development broker runs; exit 1 when it does not."""
    broker = _dev_kafka(_settings())
    if not broker.running():
        err.print("not running")
        raise typer.Exit(1)
    err.print(f"running on {broker.bootstrap}")


@app.command()
def produce(
    paths: Annotated[list[Path], typer.Argument(help=".avro files, directories, .tar.gz")],
    rate: Annotated[float | None, typer.Option(help="messages per second (default: max)",
                                               min=0.001)] = None,
    topic: Annotated[str | None, typer.Option(help="topic (default: the alert topic)")] = None,
) -> None:
    """Replay alert files (ZTF Avro, LSST wire format) into Kafka, one message per alert
    keyed by object."""
    from nightjar.runner.ingest import alert_parser, expand_paths, iter_inputs
    from stream.kafka import ensure_topics, new_producer
    from stream.kafka import produce as produce_inputs

    settings = _settings()

    async def run() -> Any:
        await ensure_topics(settings)
        producer = new_producer(settings.kafka_connection())
        await producer.start()
        try:
            return await produce_inputs(producer, topic or settings.topic_alerts,
                                        iter_inputs(expand_paths(paths)), rate,
                                        alert_parser(settings))
        finally:
            await producer.stop()

    try:
        with _kafka_errors(settings):
            summary = asyncio.run(run())
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    err.print(f"sent {summary.sent} messages to {topic or settings.topic_alerts} in "
              f"{summary.seconds:.1f} s ({summary.unkeyed} without a readable objectId)")
    for line in summary.skipped:
        err.print(f"  skipped {line}")


@app.command()
def worker(
    metrics_port: Annotated[int | None, typer.Option(
        help="Prometheus port (default: NIGHTJAR_METRICS_PORT; 0 = any free port)")] = None,
    loglevel: Annotated[str, typer.Option(help="crit, error, warn, info or debug")] = "info",
    agents: Annotated[str, typer.Option(
        help="agents to run, comma-separated: pipeline (ingest to publish), classify "
             "(light-curve classifier), relay (the survey stream of NIGHTJAR_SOURCE_*, e.g. "
             "Rubin's, re-keyed into the alert topic; default when a source is set); run "
             "them in separate workers to scale them separately")] = "",
) -> None:
    """Run a Faust worker: consume the alert topic, store, publish classifications."""
    import faust

    from nightjar.runner.topology import configured_topology
    from nightjar.store import open_store
    from nightjar.store.archive import LocalArchive
    from stream.app import create_app
    from stream.kafka import ensure_topics
    from stream.metrics import WorkerMetrics

    settings = _settings()
    with _kafka_errors(settings):
        asyncio.run(ensure_topics(settings))
    metrics = WorkerMetrics()
    port = metrics.serve(settings.metrics_host,
                         settings.metrics_port if metrics_port is None else metrics_port)
    err.print(f"metrics: http://{settings.metrics_host}:{port}/metrics")
    roles = tuple(a.strip() for a in agents.split(",") if a.strip()) or (
        ("pipeline", "classify", "relay") if settings.source_bootstrap_servers
        else ("pipeline", "classify"))
    if set(roles) - {"pipeline", "classify", "relay"}:
        err.print("[red]error:[/red] --agents takes pipeline, classify and/or relay, not "
                  f"{agents!r}")
        raise typer.Exit(2)
    if "relay" in roles and not settings.source_bootstrap_servers:
        err.print("[red]error:[/red] the relay agent needs NIGHTJAR_SOURCE_BOOTSTRAP_SERVERS")
        raise typer.Exit(2)
    classifier = anomaly_model = lsst_classifier = lsst_anomaly = None
    if settings.lc_classifier and "classify" in roles:
        from nightjar.runner.classify import (
            load_model,
            optional_anomaly_model,
            optional_lsst_anomaly_model,
            optional_lsst_model,
        )

        classifier = load_model(settings.home, settings.lc_classifier_version)
        anomaly_model = optional_anomaly_model(settings)
        lsst_classifier = optional_lsst_model(settings)
        lsst_anomaly = optional_lsst_anomaly_model(settings)
        err.print(f"light-curve classifier {classifier.version} (ZTF), "
                  f"{lsst_classifier.version if lsst_classifier else 'none'} (LSST); "
                  f"anomaly model {anomaly_model.version if anomaly_model else 'off'} (ZTF), "
                  f"{lsst_anomaly.version if lsst_anomaly else 'off'} (LSST)")
    faust_app = create_app(settings, store_factory=lambda: open_store(settings),
                           topology=configured_topology(settings, classify_inline=False),
                           archive=LocalArchive(settings.archive_path), metrics=metrics,
                           classifier=classifier, anomaly_model=anomaly_model,
                           lsst_classifier=lsst_classifier, lsst_anomaly_model=lsst_anomaly,
                           agents=roles, codec=_output_codec(settings))
    # asyncio.run() above left no current loop; Faust's worker runs on the current one
    asyncio.set_event_loop(asyncio.new_event_loop())
    faust.Worker(faust_app, loglevel=loglevel, quiet=True).execute_from_commandline()


def _output_codec(settings: Settings) -> Any:
    """The workers' output codec; exits with a clear error when a configured registry
    refuses or cannot be reached (publishing containers instead would break consumers
    that expect the wire format)."""
    from nightjar.runner.output_schemas import output_codec

    try:
        codec = output_codec(settings)
    except OSError as exc:
        err.print(f"[red]error:[/red] could not register the output schemas in "
                  f"NIGHTJAR_OUTPUT_SCHEMA_REGISTRY_URL: {exc}")
        raise typer.Exit(2) from exc
    if codec.wire_format:
        err.print(f"Output records: Confluent wire format, schema ids {codec.schema_ids}")
    return codec


@app.command("relay")
def relay_command(
    pattern: Annotated[str | None, typer.Option(
        help="regular expression of external topics (default: NIGHTJAR_SOURCE_TOPIC_PATTERN)")
    ] = None,
    idle_exit: Annotated[float | None, typer.Option(
        help="stop after this many seconds without messages (default: run until stopped)")
    ] = None,
) -> None:
    """Re-publish an external survey stream into the alert topic, keyed by object."""
    from nightjar.runner.ingest import alert_parser
    from stream.kafka import ensure_topics, new_producer
    from stream.relay import RelaySummary, relay, source_consumer

    settings = _settings()
    if not settings.source_bootstrap_servers:
        err.print("[red]error:[/red] set NIGHTJAR_SOURCE_BOOTSTRAP_SERVERS (and its "
                  "NIGHTJAR_SOURCE_* security settings) to the survey's cluster")
        raise typer.Exit(2)

    async def run() -> RelaySummary:
        await ensure_topics(settings)
        consumer, producer = source_consumer(settings), new_producer(settings.kafka_connection())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await consumer.start()
        try:
            await producer.start()
            try:
                return await relay(consumer, producer, pattern or settings.source_topic_pattern,
                                   settings.topic_alerts, batch_size=settings.worker_batch_size,
                                   idle_exit=idle_exit, stop=stop,
                                   parser=alert_parser(settings))
            finally:
                await producer.stop()
        finally:
            await consumer.stop()

    with _kafka_errors(settings):
        summary = asyncio.run(run())
    err.print(f"relayed {summary.forwarded} messages to {settings.topic_alerts} in "
              f"{summary.seconds:.1f} s ({summary.unkeyed} without a readable objectId; "
              f"{summary.partitions} source partitions assigned)")


@app.command()
def reconcile(
    topic: Annotated[str | None, typer.Option(help="topic (default: the alert topic)")] = None,
    start: Annotated[str | None, typer.Option(
        "--from", help="first offset, or ISO-8601 time (default: earliest)")] = None,
    end: Annotated[str | None, typer.Option(
        "--to", help="offset or ISO-8601 time to stop before (default: current end)")] = None,
) -> None:
    """Re-read a range of a topic, re-process what the store lacks, report counts."""
    from aiokafka import AIOKafkaConsumer
    from rich.table import Table

    from nightjar.runner.ingest import BatchProcessor, alert_parser
    from nightjar.runner.topology import configured_topology
    from nightjar.store import open_store
    from nightjar.store.archive import LocalArchive
    from stream.driver import StreamDriver
    from stream.kafka import connection_options, new_producer
    from stream.metrics import WorkerMetrics
    from stream.reconcile import ReconcileReport, parse_bound
    from stream.reconcile import reconcile as run_reconcile

    settings = _settings()
    try:
        lo, hi = parse_bound(start), parse_bound(end)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc

    async def run() -> ReconcileReport:
        consumer = AIOKafkaConsumer(**connection_options(settings.kafka_connection()),
                                    group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        producer = new_producer(settings.kafka_connection())
        await consumer.start()
        await producer.start()
        try:
            async with open_store(settings) as store:
                await store.init()
                driver = StreamDriver(
                    BatchProcessor(store, LocalArchive(settings.archive_path),
                                   parser=alert_parser(settings),
                                   topology=configured_topology(settings)),
                    lambda t, k, v: producer.send(t, v, key=k),
                    classifications_topic=settings.topic_classifications,
                    dead_letters_topic=settings.topic_dead_letters, metrics=WorkerMetrics())
                return await run_reconcile(consumer, store, driver,
                                           topic or settings.topic_alerts, lo, hi,
                                           settings.worker_batch_size)
        finally:
            await consumer.stop()
            await producer.stop()

    try:
        with _kafka_errors(settings):
            report = asyncio.run(run())
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    table = Table(title=f"reconcile {topic or settings.topic_alerts}", show_header=False)
    for partition, (lo_off, hi_off) in sorted(report.per_partition.items()):
        table.add_row(f"partition {partition}", f"offsets [{lo_off}, {hi_off})")
    table.add_row("messages read", str(report.read))
    table.add_row("already stored", str(report.present))
    table.add_row("missing", str(report.missing))
    table.add_row("re-processed: stored", str(report.stored))
    table.add_row("re-processed: dead-lettered", str(report.dead_lettered))
    for reason, count in report.reasons.most_common():
        table.add_row(f"  rejected x{count}", reason)
    err.print(table)
    out.print(json.dumps({"read": report.read, "present": report.present,
                          "missing": report.missing, "stored": report.stored,
                          "dead_lettered": report.dead_lettered}), markup=False)


if __name__ == "__main__":
    app()
