"""``nightjar filter``: users' filters from the command line.

Without ``--api-key`` the CLI acts as the local operator (who may act on every filter);
with one, as the user the gateway maps that key to (``NIGHTJAR_GATEWAY_API_KEYS``).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from nightjar.runner.filters import FilterService
    from nightjar.settings import Settings

filter_app = typer.Typer(help="Users' filters: create, test, backfill, read matches",
                         no_args_is_help=True)
err = Console(stderr=True)
T = TypeVar("T")

ApiKeyOpt = Annotated[str | None, typer.Option(
    "--api-key", envvar="NIGHTJAR_API_KEY",
    help="act as the user of this gateway API key (default: the local operator)")]
ExpressionOpt = Annotated[str, typer.Option("--expression", "-e", help="the filter, in CEL")]
NotifyOpt = Annotated[str, typer.Option(
    help="every (each alert or classification), first (per object) or class_change")]


def _settings() -> Settings:
    from nightjar.cli import _settings as settings

    return settings()


def actor_of(settings: Settings, api_key: str | None) -> str:
    """The user an API key maps to, or the local operator without one."""
    from nightjar.runner.filters import OPERATOR

    if api_key is None:
        return OPERATOR
    for owner, key in settings.gateway_api_keys.items():
        if key.get_secret_value() == api_key:
            return owner
    err.print("[red]error:[/red] unknown API key")
    raise typer.Exit(2)


def _run(settings: Settings, work: Callable[[FilterService], Awaitable[T]]) -> T:
    """Run ``work`` with the deployment's filter service; refusals exit 1 with the
    message (a refused expression with the checker's position and a caret)."""
    from nightjar.core.filters.language import FilterError
    from nightjar.runner.filters import FilterAccessError, configured_filters
    from nightjar.runner.watch import configured_watch
    from nightjar.store import open_store
    from nightjar.store.filters import FilterNameTaken

    async def go() -> T:
        async with open_store(settings) as store:
            await store.init()
            watch = await configured_watch(settings, store)
            return await work(configured_filters(settings, store, watch).service)

    try:
        return asyncio.run(go())
    except FilterError as exc:  # unwrapped: the caret must stay under its column
        sys.stderr.write(f"refused: {exc.render()}\n")
        raise typer.Exit(1) from None
    except (FilterAccessError, FilterNameTaken, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    stats = doc.get("stats") or {}
    return {"id": doc["_id"], "name": doc["name"], "owner": doc["owner"],
            "version": doc["version"], "state": doc["state"],
            "state_reason": doc.get("state_reason"), "stage": doc["stage"],
            "notify": doc.get("notify", "every"), "public": bool(doc.get("public")),
            "expression": doc["expression"], "matches": int(stats.get("stored", 0)),
            "expires": doc["expires"].isoformat() if doc.get("expires") else None,
            "delivery": {"kafka": bool((doc.get("delivery") or {}).get("kafka")),
                         "webhook": ((doc.get("delivery") or {}).get("webhook") or {}).get("url"),
                         "email": ((doc.get("delivery") or {}).get("email") or {}).get("to")}}


KafkaOpt = Annotated[bool, typer.Option(help="also publish matches on the filter's own "
                                            "Kafka topic (Avro)")]
WebhookOpt = Annotated[str | None, typer.Option(help="POST each match to this URL, signed")]
SecretOpt = Annotated[str | None, typer.Option(
    envvar="NIGHTJAR_WEBHOOK_SECRET", help="the webhook's HMAC key (>= 16 characters)")]
SlackOpt = Annotated[bool, typer.Option(help="send Slack's {text} body to the webhook")]
EmailOpt = Annotated[str | None, typer.Option(help="e-mail a digest of matches here")]
DigestOpt = Annotated[int, typer.Option(help="digest cadence [minutes]")]


def _delivery(kafka: bool, webhook: str | None, secret: str | None, slack: bool,
              email: str | None, digest_minutes: int) -> dict[str, Any] | None:
    if not (kafka or webhook or email):
        return None
    return {"kafka": kafka, "webhook_url": webhook, "webhook_secret": secret,
            "slack": slack, "email": email, "digest_minutes": digest_minutes}


@filter_app.command("create")
def create(name: Annotated[str, typer.Argument(help="a name unique among your filters")],
           expression: ExpressionOpt, notify: NotifyOpt = "every",
           public: Annotated[bool, typer.Option(help="share it in the public gallery")] = False,
           description: Annotated[str, typer.Option(help="what it looks for")] = "",
           kafka: KafkaOpt = False, webhook: WebhookOpt = None, webhook_secret: SecretOpt = None,
           slack: SlackOpt = False, email: EmailOpt = None, digest_minutes: DigestOpt = 60,
           api_key: ApiKeyOpt = None) -> None:
    """Save a filter (checked first: a refused expression exits 1 with the reason)."""
    settings = _settings()
    actor = actor_of(settings, api_key)
    delivery = _delivery(kafka, webhook, webhook_secret, slack, email, digest_minutes)
    doc = _run(settings, lambda svc: svc.create(actor, name, expression, notify=notify,
                                                public=public, description=description,
                                                delivery=delivery))
    print(json.dumps(_summary(doc), indent=2))


@filter_app.command("update")
def update(name: str, expression: Annotated[str | None, typer.Option(
        "--expression", "-e", help="a new expression (a new version)")] = None,
           notify: Annotated[str | None, typer.Option(help="every, first or class_change")] = None,
           public: Annotated[bool | None, typer.Option(help="share it or not")] = None,
           api_key: ApiKeyOpt = None) -> None:
    """Edit a filter (a new expression is a new version; any edit renews it)."""
    settings = _settings()
    actor = actor_of(settings, api_key)
    doc = _run(settings, lambda svc: svc.update(actor, name, expression=expression,
                                                notify=notify, public=public))
    print(json.dumps(_summary(doc), indent=2))


@filter_app.command("dry-run")
def dry_run(expression: ExpressionOpt,
            since: Annotated[float | None, typer.Option(help="from MJD")] = None,
            until: Annotated[float | None, typer.Option(help="to MJD")] = None,
            max_objects: Annotated[int, typer.Option(help="candidate objects to read")] = 2000,
            api_key: ApiKeyOpt = None) -> None:
    """How many stored alerts and objects an expression matches, before saving it."""
    settings = _settings()
    actor = actor_of(settings, api_key)
    report = _run(settings, lambda svc: svc.dry_run(actor, expression, since=since,
                                                    until=until, max_objects=max_objects))
    out = report.as_dict()
    out["examples"] = [{"oid": s["oid"], "alert_id": s["alert_id"], "mjd": s["mjd"]}
                       for s in report.samples[:10]]
    print(json.dumps(out, indent=2))


@filter_app.command("backfill")
def backfill(name: str, since: Annotated[float | None, typer.Option(help="from MJD")] = None,
             until: Annotated[float | None, typer.Option(help="to MJD")] = None,
             restart: Annotated[bool, typer.Option(
                 help="start over instead of resuming an interrupted run")] = False,
             api_key: ApiKeyOpt = None) -> None:
    """Run a saved filter over the archive (resumes an interrupted run of the same range)."""
    settings = _settings()
    actor = actor_of(settings, api_key)

    def progress(report: Any) -> None:
        err.print(f"backfill: {report.objects} objects, {report.evaluations} evaluations, "
                  f"{report.stored} new matches, {report.seconds:.1f} s", highlight=False)

    report = _run(settings, lambda svc: svc.backfill(actor, name, since=since, until=until,
                                                     resume=not restart, progress=progress))
    print(json.dumps(report.as_dict(), indent=2))


MATCH_COLUMNS = ("seq", "filter_name", "version", "oid", "survey", "alert_id", "mjd", "ra",
                 "dec", "source", "permalink", "created")


@filter_app.command("matches")
def matches(name: str,
            fmt: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
            after: Annotated[int, typer.Option(help="only matches after this seq")] = 0,
            first: Annotated[int, typer.Option(help="at most this many")] = 1000,
            api_key: ApiKeyOpt = None) -> None:
    """A filter's matches, oldest first (``seq`` pages them: --after the last seen)."""
    if fmt not in ("json", "csv"):
        err.print("[red]error:[/red] --format is json or csv")
        raise typer.Exit(2)
    settings = _settings()
    actor = actor_of(settings, api_key)
    _, found = _run(settings, lambda svc: svc.matches(actor, name, after=after, first=first))
    if fmt == "json":
        print(json.dumps([{k: _plain(m.get(k)) for k in (*MATCH_COLUMNS, "read")}
                          for m in found], indent=2))
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(MATCH_COLUMNS)
    for m in found:
        writer.writerow([_plain(m.get(k)) for k in MATCH_COLUMNS])
    sys.stdout.write(buffer.getvalue())


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


@filter_app.command("list")
def list_filters(fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
                 api_key: ApiKeyOpt = None) -> None:
    """Your filters and the public ones (every filter for the operator)."""
    settings = _settings()
    actor = actor_of(settings, api_key)
    docs = _run(settings, lambda svc: svc.visible(actor))
    if fmt == "json":
        print(json.dumps([_summary(d) for d in docs], indent=2))
        return
    table = Table("name", "owner", "v", "state", "stage", "matches", "expression")
    for d in docs:
        s = _summary(d)
        table.add_row(s["name"], s["owner"], str(s["version"]), s["state"], s["stage"],
                      str(s["matches"]), s["expression"])
    Console().print(table)


def _state_command(state: str) -> Callable[..., None]:
    def command(name: str, api_key: ApiKeyOpt = None) -> None:
        settings = _settings()
        actor = actor_of(settings, api_key)
        doc = _run(settings, lambda svc: svc.set_state(actor, name, state))
        print(json.dumps(_summary(doc), indent=2))
    return command


filter_app.command("pause", help="Stop evaluating a filter (its matches are kept).")(
    _state_command("paused"))
filter_app.command("resume", help="Evaluate a paused or muted filter again (renews it).")(
    _state_command("active"))


@filter_app.command("copy")
def copy(source: Annotated[str, typer.Argument(help="a public filter: its id, or OWNER/NAME")],
         name: Annotated[str, typer.Argument(help="the copy's name")],
         api_key: ApiKeyOpt = None) -> None:
    """Copy a public filter (the gallery) into your own filters."""
    settings = _settings()
    actor = actor_of(settings, api_key)
    print(json.dumps(_summary(_run(settings, lambda svc: svc.copy(actor, source, name))),
                     indent=2))


@filter_app.command("delete")
def delete(name: str, api_key: ApiKeyOpt = None) -> None:
    """Delete a filter and its matches."""
    settings = _settings()
    actor = actor_of(settings, api_key)
    _run(settings, lambda svc: svc.delete(actor, name))
    err.print(f"deleted {name}")


# -- watchlists and watchmaps -------------------------------------------------------------
watchlist_app = typer.Typer(help="Watchlists: positions with radii, matched on every alert",
                            no_args_is_help=True)
watchmap_app = typer.Typer(help="Watchmaps: MOCs and sky maps (credible regions) in filters",
                           no_args_is_help=True)


def _run_watch(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from nightjar.core.watch import WatchlistError
    from nightjar.runner.watch import WatchAccessError, WatchService, configured_watch
    from nightjar.store import open_store
    from nightjar.store.watch import WatchNameTaken, WatchStore

    async def go() -> T:
        async with open_store(settings) as store:
            await store.init()
            indexes = await configured_watch(settings, store)
            return await work(WatchService(WatchStore(store), indexes))

    try:
        return asyncio.run(go())
    except (WatchlistError, WatchAccessError, WatchNameTaken, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _read_file(path: str) -> bytes:
    from pathlib import Path

    try:
        return Path(path).read_bytes()
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot read {path}: {exc.strerror}")
        raise typer.Exit(2) from None


def _list_summary(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "name": doc["name"], "owner": doc["owner"],
            "rows": doc.get("rows", 0), "state": doc.get("state"),
            "public": bool(doc.get("public")),
            "default_radius_arcsec": doc.get("default_radius_arcsec"),
            "retroactive": doc.get("retroactive")}


@watchlist_app.command("create")
def watchlist_create(
        name: str, file: Annotated[str, typer.Argument(help="CSV or VOTable: name, ra, dec "
                                                            "[deg], optional radius [arcsec]")],
        radius: Annotated[float, typer.Option(help="radius of rows without one [arcsec]")] = 2.0,
        public: Annotated[bool, typer.Option(help="share it")] = False,
        retroactive: Annotated[bool, typer.Option(
            help="match it over the stored alerts once loaded")] = True,
        api_key: ApiKeyOpt = None) -> None:
    """Upload a watchlist (a radius over 1 deg is refused with its row number)."""
    settings = _settings()
    actor = actor_of(settings, api_key)
    data = _read_file(file)

    def progress(p: Any) -> None:
        err.print(f"{p.stage}: {p.done}/{p.total}" + (f", {p.matches} matches"
                                                      if p.stage == "archive" else ""),
                  highlight=False)

    doc = _run_watch(settings, lambda svc: svc.create_list(
        actor, name, data, radius_arcsec=radius, public=public, retroactive=retroactive,
        progress=progress))
    print(json.dumps(_list_summary(doc), indent=2))


@watchlist_app.command("add")
def watchlist_add(name: str, file: str, api_key: ApiKeyOpt = None) -> None:
    """Add rows to a watchlist (matched over the archive like a new list)."""
    settings = _settings()
    actor = actor_of(settings, api_key)
    data = _read_file(file)
    doc = _run_watch(settings, lambda svc: svc.add_rows(actor, name, data))
    print(json.dumps(_list_summary(doc), indent=2))


@watchlist_app.command("remove")
def watchlist_remove(name: str, rows: Annotated[list[str], typer.Argument(
        help="row names to remove")], api_key: ApiKeyOpt = None) -> None:
    """Remove rows from a watchlist by name."""
    settings = _settings()
    actor = actor_of(settings, api_key)
    removed = _run_watch(settings, lambda svc: svc.remove_rows(actor, name, names=rows))
    print(json.dumps({"removed": removed}))


WATCH_COLUMNS = ("list_name", "row_id", "row_name", "oid", "survey", "alert_id", "mjd", "ra",
                 "dec", "separation_arcsec", "source", "created")


@watchlist_app.command("matches")
def watchlist_matches(
        name: str, fmt: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
        first: Annotated[int, typer.Option(help="at most this many")] = 10_000,
        api_key: ApiKeyOpt = None) -> None:
    """Detections within a row's radius, live and retroactive."""
    if fmt not in ("json", "csv"):
        err.print("[red]error:[/red] --format is json or csv")
        raise typer.Exit(2)
    settings = _settings()
    actor = actor_of(settings, api_key)
    _, found = _run_watch(settings, lambda svc: svc.matches(actor, name, first=first))
    if fmt == "json":
        print(json.dumps([{k: _plain(m.get(k)) for k in WATCH_COLUMNS} for m in found],
                         indent=2))
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(WATCH_COLUMNS)
    for m in found:
        writer.writerow([_plain(m.get(k)) for k in WATCH_COLUMNS])
    sys.stdout.write(buffer.getvalue())


@watchlist_app.command("list")
def watchlist_list(api_key: ApiKeyOpt = None) -> None:
    """Your watchlists and the public ones."""
    settings = _settings()
    actor = actor_of(settings, api_key)
    docs = _run_watch(settings, lambda svc: svc.lists(actor))
    print(json.dumps([_list_summary(d) for d in docs], indent=2))


@watchlist_app.command("delete")
def watchlist_delete(name: str, api_key: ApiKeyOpt = None) -> None:
    """Delete a watchlist, its rows and matches."""
    settings = _settings()
    actor = actor_of(settings, api_key)
    _run_watch(settings, lambda svc: svc.delete_list(actor, name))
    err.print(f"deleted {name}")


@watchmap_app.command("create")
def watchmap_create(
        name: str, file: Annotated[str, typer.Argument(
            help="a MOC (FITS) or a multi-order HEALPix sky map (LIGO/Virgo/KAGRA)")],
        since: Annotated[float | None, typer.Option(help="window start [MJD]")] = None,
        until: Annotated[float | None, typer.Option(help="window end [MJD]")] = None,
        window_days: Annotated[float | None, typer.Option(
            help="window length from the event [days] (sky maps: 30 by default)")] = None,
        public: Annotated[bool, typer.Option(help="share it")] = False,
        api_key: ApiKeyOpt = None) -> None:
    """Upload a watchmap; filters use it as in_watchmap("NAME", 0.9)."""
    settings = _settings()
    actor = actor_of(settings, api_key)
    data = _read_file(file)
    doc = _run_watch(settings, lambda svc: svc.create_map(
        actor, name, data, since=since, until=until, window_days=window_days, public=public))
    print(json.dumps({k: _plain(v) for k, v in doc.items() if k != "created"}, indent=2,
                     default=str))


@watchmap_app.command("list")
def watchmap_list(api_key: ApiKeyOpt = None) -> None:
    """Your watchmaps and the public ones."""
    settings = _settings()
    actor = actor_of(settings, api_key)
    docs = _run_watch(settings, lambda svc: svc.maps(actor))
    print(json.dumps([{k: _plain(v) for k, v in d.items()} for d in docs], indent=2,
                     default=str))
