"""The ``nightjar`` command line: simulate, ingest, db, serve, query, demo.

Settings are read from the environment once, here, and passed down.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nightjar.archive import LocalArchive
from nightjar.ingest import (
    BatchProcessor,
    IngestSummary,
    expand_paths,
    ingest,
    iter_inputs,
)
from nightjar.settings import Settings
from nightjar.store import open_store
from nightjar.store.schema import shard_script

app = typer.Typer(help="Nightjar alert broker", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database set-up", no_args_is_help=True)
app.add_typer(db_app, name="db")
err = Console(stderr=True)
out = Console()

EXAMPLE_QUERY = """{
  objects(ndetMin: 2, first: 5) {
    nodes { oid ndet meanra meandec magstats { band ndet magmean magmeanCorr } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@app.callback()
def _main() -> None:
    # SIGTERM must unwind like Ctrl-C so the embedded database server is stopped too
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _settings() -> Settings:
    return Settings()


@app.command()
def simulate(
    n: Annotated[int, typer.Option("--n", help="number of alerts", min=1)] = 1000,
    out_dir: Annotated[Path, typer.Option("--out", help="output directory")] = Path("alerts"),
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """Write N schema-valid simulated ZTF v4.02 alerts into a directory."""
    from nightjar.simulate import write_alerts

    paths = write_alerts(n, out_dir, seed=seed)
    err.print(f"wrote {len(paths)} alerts to {out_dir}")


def _print_summary(summary: IngestSummary) -> None:
    table = Table(title="ingest summary", show_header=False)
    table.add_row("inputs", str(summary.inputs))
    table.add_row("alerts stored", str(summary.alerts_stored))
    table.add_row("dead-lettered", str(summary.dead_lettered))
    table.add_row("objects", str(len(summary.objects_seen)))
    table.add_row("new detections", str(summary.new_detections))
    table.add_row("objects updated", str(summary.objects_written))
    table.add_row("elapsed", f"{summary.seconds:.1f} s ({summary.rate:.0f} inputs/s)")
    for reason, count in summary.reasons.most_common():
        table.add_row(f"  rejected x{count}", reason)
    err.print(table)


async def _ingest(settings: Settings, paths: list[Path], batch_size: int) -> IngestSummary:
    files = expand_paths(paths)
    async with open_store(settings) as store:
        await store.init()
        processor = BatchProcessor(store, LocalArchive(settings.archive_path))
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

    async def run() -> dict[str, list[tuple[tuple[str, int | str], ...]]]:
        async with open_store(_settings()) as store:
            await store.init()
            return await store.index_keys()

    for coll, keys in asyncio.run(run()).items():
        out.print(f"{coll}: " + ", ".join(str(dict(k)) for k in keys), markup=False)


@db_app.command("shard-script")
def db_shard_script(
    shard: Annotated[list[str], typer.Option(help="shard name (repeat for each shard)")],
    zone_order: Annotated[int, typer.Option(min=0, max=29, help="HEALPix order of zones")] = 1,
) -> None:
    """Print the mongosh script that shards the collections and pins sky zones."""
    out.print(shard_script(_settings().database, shard, zone_order), end="", markup=False,
              highlight=False)


async def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from services.gateway.app import create_app

    async with open_store(settings) as store:
        await store.init()
        config = uvicorn.Config(create_app(store), host=host, port=port, log_level="info")
        server = uvicorn.Server(config)
        err.print(f"GraphQL (GraphiQL in a browser): http://{host}:{port}/graphql")
        await server.serve()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
) -> None:
    """Serve GraphQL at http://HOST:PORT/graphql until interrupted."""
    settings = _settings()
    asyncio.run(_serve(settings, host or settings.graphql_host, port or settings.graphql_port))


async def execute_query(settings: Settings, query: str,
                        variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one GraphQL query in-process against the configured store."""
    from services.gateway.schema import GatewayContext, schema

    async with open_store(settings) as store:
        result = await schema.execute(query, variable_values=variables,
                                      context_value=GatewayContext(store))
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
    response = asyncio.run(execute_query(_settings(), text,
                                         json.loads(variables) if variables else None))
    sys.stdout.write(json.dumps(response, indent=2) + "\n")
    if response.get("errors"):
        raise typer.Exit(1)


@app.command()
def demo(
    n: Annotated[int, typer.Option("--n", help="simulated alerts to add")] = 2000,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
) -> None:
    """Ingest the real alerts in ../shared (when present) and simulated ones, then serve."""
    from nightjar.simulate import write_alerts

    settings = _settings()
    paths: list[Path] = []
    real = settings.shared_data / "ztf"
    if real.is_dir():
        paths += [real / "alerts", real / "bad"]
        err.print(f"using the real ZTF alerts under {real}")
    else:
        err.print(f"{real} not found: using simulated alerts only")
    with tempfile.TemporaryDirectory(prefix="nightjar-sim-") as tmp:
        err.print(f"simulating {n} alerts ...")
        write_alerts(n, Path(tmp), seed=42)
        paths.append(Path(tmp))
        _print_summary(asyncio.run(_ingest(settings, paths, settings.batch_size)))
    err.print("\nexample query (paste into GraphiQL, or run `nightjar query '...'`):")
    out.print(EXAMPLE_QUERY, markup=False, highlight=False)
    if serve_after:
        asyncio.run(_serve(settings, settings.graphql_host, settings.graphql_port))


if __name__ == "__main__":
    app()
