"""Users' filters, watchlists and watchmaps: create, test, edit, read matches, subscribe.

Thin resolvers over :class:`nightjar.runner.filters.FilterService` and
:class:`nightjar.runner.watch.WatchService` (ownership is checked there, once).  Changing
anything needs an API key; reading shows the caller's own and the public ones.  A refused
expression answers ``BAD_USER_INPUT`` with the checker's ``line`` and ``column`` in the
error's extensions; ``dryRunFilter`` answers ``valid: false`` with the same instead, so
an editor can show the error inline as the user types.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from enum import Enum
from typing import Any

import strawberry

from nightjar.core.filters.language import FilterError
from nightjar.core.watch import WatchlistError
from nightjar.runner.filters import FilterAccessError, FilterService
from nightjar.runner.watch import WatchAccessError, WatchService
from nightjar.store.filters import FILTER_MATCH, FilterNameTaken
from nightjar.store.watch import WatchNameTaken
from services.gateway.errors import BAD_USER_INPUT, NOT_FOUND, UNAVAILABLE, GatewayError
from services.gateway.schema.anomaly import user_of
from services.gateway.schema.context import GatewayInfo, Survey

log = logging.getLogger(__name__)

#: who reads without an API key: only what is public
ANONYMOUS = "anonymous"


@strawberry.enum(description="When a filter delivers a match")
class FilterNotify(Enum):
    EVERY = "every"
    FIRST = "first"
    CLASS_CHANGE = "class_change"


@strawberry.enum(description="Whether a filter runs")
class FilterState(Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    MUTED = "muted"
    EXPIRED = "expired"


@strawberry.type(description="One saved version of a filter's expression")
class FilterVersion:
    version: int
    expression: str
    created: dt.datetime


@strawberry.type(description="A notice to a filter's owner: muted, expired (and why)")
class FilterNotice:
    time: dt.datetime
    state: FilterState
    reason: str


@strawberry.type(description="What a filter did since it was created")
class FilterStats:
    evaluations: int
    matches: int = strawberry.field(description="matches stored (after notify and quotas)")
    undefined: int = strawberry.field(description="evaluations that read an absent value")
    errors: int
    overruns: int = strawberry.field(description="evaluations over the CPU budget")
    seconds: float = strawberry.field(description="CPU time of its evaluations [s]")


@strawberry.type(description="Where a filter's matches go besides the store (the webhook's "
                              "secret is never shown)")
class FilterDelivery:
    kafka_topic: str | None = strawberry.field(description="its own Kafka topic (Avro)")
    webhook_url: str | None
    slack: bool = strawberry.field(description="the webhook body is Slack's {text}")
    email: str | None
    digest_minutes: int | None
    last_digest_seq: int | None


@strawberry.input(description="Where a filter's matches go besides the store")
class DeliveryInput:
    kafka: bool = strawberry.field(default=False, description=(
        "publish each match on the filter's own topic"))
    webhook_url: str | None = strawberry.field(default=None, description=(
        "POST each match here, signed (HMAC-SHA256); public addresses only"))
    webhook_secret: str | None = strawberry.field(default=None, description=(
        "the signing key (at least 16 characters)"))
    slack: bool = False
    email: str | None = None
    digest_minutes: int = strawberry.field(default=60, description="e-mail cadence [min]")


@strawberry.type(description="A user's filter: a CEL expression over the alert context")
class Filter:
    id: strawberry.ID
    name: str
    owner: str
    version: int
    expression: str
    description: str
    stage: str = strawberry.field(description="alert (after the store) or classification "
                                              "(after the classifiers)")
    notify: FilterNotify
    state: FilterState
    state_reason: str | None
    public: bool
    created: dt.datetime
    updated: dt.datetime
    expires: dt.datetime | None
    versions: list[FilterVersion]
    notices: list[FilterNotice]
    stats: FilterStats
    delivery: FilterDelivery


@strawberry.type(description="Where the checker refused an expression")
class FilterCheckError:
    message: str
    line: int
    column: int


@strawberry.type(description="One value a filter read for a match (value as JSON)")
class FilterRead:
    path: str
    value: str


@strawberry.type(description="One alert a filter matched")
class FilterMatch:
    seq: int = strawberry.field(description="its order among the filter's matches (the "
                                            "cursor)")
    filter_id: strawberry.ID
    filter_name: str
    version: int = strawberry.field(description="the filter version that matched")
    oid: str
    survey: Survey
    alert_id: str
    mjd: float
    ra: float
    dec: float
    stage: str
    source: str = strawberry.field(description="live or backfill")
    permalink: str
    read: list[FilterRead]
    created: dt.datetime | None = None


@strawberry.type(description="A page of matches, oldest first")
class FilterMatchPage:
    items: list[FilterMatch]
    end_cursor: str | None = strawberry.field(description="pass as after: for the next page")
    has_next_page: bool


@strawberry.type(description="What an expression would match over the stored alerts")
class FilterDryRun:
    valid: bool
    error: FilterCheckError | None
    stage: str | None
    objects_read: int
    evaluations: int
    matched_alerts: int
    matched_objects: int
    undefined: int
    errors: int
    complete: bool = strawberry.field(description="false when only the first candidate "
                                                  "objects were read")
    seconds: float
    examples: list[FilterMatch]


@strawberry.type(description="A watchlist: positions with radii, matched on every alert")
class Watchlist:
    id: strawberry.ID
    name: str
    owner: str
    rows: int
    state: str = strawberry.field(description="loading or ready")
    public: bool
    default_radius: float = strawberry.field(description="[arcsec]")
    rows_loaded: int
    rows_total: int
    retroactive_done: bool | None
    matches: int


@strawberry.type(description="A watchmap: a MOC or a sky map's credible regions")
class Watchmap:
    id: strawberry.ID
    name: str
    owner: str
    kind: str = strawberry.field(description="moc or skymap")
    public: bool
    event: str | None
    event_mjd: float | None
    since: float | None = strawberry.field(description="window start [MJD]")
    until: float | None = strawberry.field(description="window end [MJD]")
    area90: float | None = strawberry.field(description="90% credible area [deg^2]")


@strawberry.input(description="A new filter")
class FilterInput:
    name: str
    expression: str
    notify: FilterNotify = FilterNotify.EVERY
    public: bool = False
    description: str = ""
    delivery: DeliveryInput | None = None


@strawberry.input(description="Changes to a filter (null: unchanged); a new expression is a "
                              "new version, and any change renews it")
class FilterUpdateInput:
    expression: str | None = None
    notify: FilterNotify | None = None
    public: bool | None = None
    description: str | None = None
    state: FilterState | None = strawberry.field(default=None, description=(
        "ACTIVE resumes a paused, muted or expired filter; PAUSED pauses it"))
    delivery: DeliveryInput | None = None


@strawberry.input(description="A new watchlist: CSV or VOTable text")
class WatchlistInput:
    name: str
    content: str = strawberry.field(description="CSV (name, ra, dec [deg], radius "
                                                "[arcsec]) or VOTable")
    radius: float = strawberry.field(default=2.0, description="rows without one [arcsec]")
    public: bool = False
    retroactive: bool = strawberry.field(default=True, description=(
        "match the list over the stored alerts once loaded"))


@strawberry.input(description="A new watchmap: a MOC or a multi-order sky map (FITS)")
class WatchmapInput:
    name: str
    content_base64: str = strawberry.field(description="the FITS file, base64")
    since: float | None = None
    until: float | None = None
    window_days: float | None = None
    public: bool = False


def _dt(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(0, dt.UTC)


def _delivery_dict(value: DeliveryInput | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"kafka": value.kafka, "webhook_url": value.webhook_url,
            "webhook_secret": value.webhook_secret, "slack": value.slack,
            "email": value.email, "digest_minutes": value.digest_minutes}


def delivery_type(doc: Mapping[str, Any], topic_prefix: str) -> FilterDelivery:
    delivery = doc.get("delivery") or {}
    webhook = delivery.get("webhook") or {}
    email = delivery.get("email") or {}
    return FilterDelivery(
        kafka_topic=f"{topic_prefix}{doc['_id']}" if delivery.get("kafka") else None,
        webhook_url=webhook.get("url"), slack=bool(webhook.get("slack")),
        email=email.get("to"), digest_minutes=email.get("digest_minutes"),
        last_digest_seq=email.get("last_seq"))


def filter_type(doc: Mapping[str, Any], topic_prefix: str, reader: str) -> Filter:
    """A filter as ``reader`` sees it: where its matches go (addresses) only to its
    owner, never to the gallery."""
    stats = doc.get("stats") or {}
    return Filter(
        id=strawberry.ID(doc["_id"]), name=doc["name"], owner=doc["owner"],
        version=int(doc["version"]), expression=doc["expression"],
        description=doc.get("description", ""), stage=doc["stage"],
        notify=FilterNotify(doc.get("notify", "every")), state=FilterState(doc["state"]),
        state_reason=doc.get("state_reason"), public=bool(doc.get("public")),
        created=_dt(doc.get("created")), updated=_dt(doc.get("updated")),
        expires=_dt(doc["expires"]) if doc.get("expires") else None,
        versions=[FilterVersion(version=int(v["version"]), expression=v["expression"],
                                created=_dt(v.get("created")))
                  for v in doc.get("versions", [])],
        notices=[FilterNotice(time=_dt(n.get("time")), state=FilterState(n["state"]),
                              reason=n["reason"]) for n in doc.get("notices", [])],
        stats=FilterStats(evaluations=int(stats.get("evaluations", 0)),
                          matches=int(stats.get("stored", 0)),
                          undefined=int(stats.get("undefined", 0)),
                          errors=int(stats.get("errors", 0)),
                          overruns=int(stats.get("overruns", 0)),
                          seconds=float(stats.get("seconds", 0.0))),
        delivery=delivery_type(doc if reader == doc['owner'] else {'_id': doc['_id']},
                               topic_prefix))


def match_type(doc: Mapping[str, Any]) -> FilterMatch:
    return FilterMatch(
        seq=int(doc.get("seq", 0)), filter_id=strawberry.ID(doc["filter_id"]),
        filter_name=doc.get("filter_name", ""), version=int(doc["version"]), oid=doc["oid"],
        survey=Survey(doc.get("survey", "ZTF")), alert_id=str(doc["alert_id"]),
        mjd=float(doc["mjd"]), ra=float(doc["ra"]), dec=float(doc["dec"]),
        stage=doc["stage"], source=doc.get("source", "live"),
        permalink=doc.get("permalink", f"/explorer/object/{doc['oid']}"),
        read=[FilterRead(path=k, value=json.dumps(v))
              for k, v in sorted((doc.get("read") or {}).items())],
        created=_dt(doc["created"]) if doc.get("created") else None)


def watchlist_type(doc: Mapping[str, Any], matches: int) -> Watchlist:
    progress = doc.get("progress") or {}
    retro = doc.get("retroactive")
    return Watchlist(id=strawberry.ID(doc["_id"]), name=doc["name"], owner=doc["owner"],
                     rows=int(doc.get("rows", 0)), state=doc.get("state", "loading"),
                     public=bool(doc.get("public")),
                     default_radius=float(doc.get("default_radius_arcsec", 2.0)),
                     rows_loaded=int(progress.get("done", 0)),
                     rows_total=int(progress.get("total", 0)),
                     retroactive_done=None if retro is None else bool(retro.get("done")),
                     matches=matches)


def watchmap_type(doc: Mapping[str, Any]) -> Watchmap:
    event = doc.get("event") or {}
    window = doc.get("window") or {}
    return Watchmap(id=strawberry.ID(doc["_id"]), name=doc["name"], owner=doc["owner"],
                    kind=doc["kind"], public=bool(doc.get("public")),
                    event=event.get("object"), event_mjd=event.get("mjd"),
                    since=window.get("since"), until=window.get("until"),
                    area90=doc.get("area90_deg2"))


def _service(info: GatewayInfo) -> FilterService:
    service = info.context.filters
    if service is None:
        raise GatewayError(UNAVAILABLE, "this gateway serves no filters")
    return service


def _watch(info: GatewayInfo) -> WatchService:
    service = info.context.watch
    if service is None:
        raise GatewayError(UNAVAILABLE, "this gateway serves no watchlists")
    return service


def _refused(exc: FilterError) -> GatewayError:
    return GatewayError(BAD_USER_INPUT, f"refused: {exc}", line=exc.line, column=exc.column,
                        reason=exc.reason)


async def _guarded(work: Any) -> Any:
    """Run a service call, mapping its refusals onto the error contract."""
    try:
        return await work
    except FilterError as exc:
        raise _refused(exc) from exc
    except (FilterAccessError, WatchAccessError) as exc:
        raise GatewayError(NOT_FOUND, str(exc)) from exc
    except (FilterNameTaken, WatchNameTaken, WatchlistError, ValueError) as exc:
        raise GatewayError(BAD_USER_INPUT, str(exc)) from exc


def _reader(info: GatewayInfo) -> str:
    return info.context.user or ANONYMOUS


@strawberry.type
class FilterQueries:
    @strawberry.field(description="your filters and the public gallery")
    async def filters(self, info: GatewayInfo) -> list[Filter]:
        docs = await _service(info).visible(_reader(info))
        return [filter_type(d, _service(info).topic_prefix, _reader(info)) for d in docs]

    @strawberry.field(name="filter", description="one filter by id (yours or a public one)")
    async def filter_(self, info: GatewayInfo, id: strawberry.ID) -> Filter:
        doc = await _guarded(_service(info).get(_reader(info), str(id)))
        return filter_type(doc, _service(info).topic_prefix, _reader(info))

    @strawberry.field(description="check an expression and count what it would match over "
                                  "the stored alerts (between since and until [MJD])")
    async def dry_run_filter(self, info: GatewayInfo, expression: str,
                             since: float | None = None, until: float | None = None,
                             max_objects: int = 2000) -> FilterDryRun:
        if not 1 <= max_objects <= 20_000:
            raise GatewayError(BAD_USER_INPUT, "maxObjects is within [1, 20000]")
        service = _service(info)
        try:
            report = await service.dry_run(_reader(info), expression, since=since,
                                           until=until, max_objects=max_objects)
        except FilterError as exc:
            return FilterDryRun(
                valid=False, error=FilterCheckError(message=exc.reason, line=exc.line,
                                                    column=exc.column),
                stage=None, objects_read=0, evaluations=0, matched_alerts=0,
                matched_objects=0, undefined=0, errors=0, complete=False, seconds=0.0,
                examples=[])
        stage = service.check(_reader(info), expression).stage
        return FilterDryRun(
            valid=True, error=None, stage=stage, objects_read=report.objects,
            evaluations=report.evaluations, matched_alerts=report.matched_alerts,
            matched_objects=len(report.matched_objects), undefined=report.undefined,
            errors=report.errors, complete=report.done, seconds=report.seconds,
            examples=[match_type({**s, "seq": 0}) for s in report.samples[:10]])

    @strawberry.field(description="a filter's matches in the order they were stored "
                                  "(what matched while you were away)")
    async def filter_matches(self, info: GatewayInfo, filter: strawberry.ID,
                             first: int = 100, after: str | None = None) -> FilterMatchPage:
        if not 1 <= first <= info.context.limits.max_page:
            raise GatewayError(BAD_USER_INPUT,
                               f"first is within [1, {info.context.limits.max_page}]")
        try:
            start = int(after) if after else 0
        except ValueError:
            raise GatewayError(BAD_USER_INPUT, "after is a cursor from endCursor") from None
        _, found = await _guarded(_service(info).matches(_reader(info), str(filter),
                                                         after=start, first=first + 1))
        items = [match_type(m) for m in found[:first]]
        return FilterMatchPage(items=items,
                               end_cursor=str(items[-1].seq) if items else after,
                               has_next_page=len(found) > first)

    @strawberry.field(description="your watchlists and the public ones")
    async def watchlists(self, info: GatewayInfo) -> list[Watchlist]:
        watch = _watch(info)
        docs = await watch.lists(_reader(info))
        return [watchlist_type(d, await watch.watch.count_matches(d["_id"])) for d in docs]

    @strawberry.field(description="your watchmaps and the public ones")
    async def watchmaps(self, info: GatewayInfo) -> list[Watchmap]:
        return [watchmap_type(d) for d in await _watch(info).maps(_reader(info))]


@strawberry.type
class FilterMutation:
    @strawberry.mutation(description="save a filter (checked first; refused with the position "
                                     "of the error)")
    async def create_filter(self, info: GatewayInfo, input: FilterInput) -> Filter:
        user = user_of(info, "createFilter")
        doc = await _guarded(_service(info).create(
            user, input.name, input.expression, notify=input.notify.value,
            public=input.public, description=input.description,
            delivery=_delivery_dict(input.delivery)))
        return filter_type(doc, _service(info).topic_prefix, _reader(info))

    @strawberry.mutation(description="edit, pause or resume one of your filters")
    async def update_filter(self, info: GatewayInfo, id: strawberry.ID,
                            input: FilterUpdateInput) -> Filter:
        user = user_of(info, "updateFilter")
        service = _service(info)
        doc = await _guarded(service.update(
            user, str(id), expression=input.expression,
            notify=input.notify.value if input.notify else None, public=input.public,
            description=input.description, delivery=_delivery_dict(input.delivery)))
        if input.state is not None:
            if input.state not in (FilterState.ACTIVE, FilterState.PAUSED):
                raise GatewayError(BAD_USER_INPUT, "state is ACTIVE or PAUSED")
            doc = await _guarded(service.set_state(user, str(id), input.state.value))
        return filter_type(doc, _service(info).topic_prefix, _reader(info))

    @strawberry.mutation(description="delete one of your filters and its matches")
    async def delete_filter(self, info: GatewayInfo, id: strawberry.ID) -> bool:
        user = user_of(info, "deleteFilter")
        return bool(await _guarded(_service(info).delete(user, str(id))))

    @strawberry.mutation(description="copy a public filter (or one of yours) into your "
                                     "filters, under a name of yours")
    async def copy_filter(self, info: GatewayInfo, id: strawberry.ID, name: str) -> Filter:
        user = user_of(info, "copyFilter")
        doc = await _guarded(_service(info).copy(user, str(id), name))
        return filter_type(doc, _service(info).topic_prefix, _reader(info))

    @strawberry.mutation(description="upload a watchlist: validated at once (a radius over "
                                     "1 deg is refused with its row), loaded and matched "
                                     "over the archive in the background (see watchlists)")
    async def create_watchlist(self, info: GatewayInfo, input: WatchlistInput) -> Watchlist:
        user = user_of(info, "createWatchlist")
        watch = _watch(info)
        doc = await _guarded(watch.create_list(
            user, input.name, input.content.encode(), radius_arcsec=input.radius,
            public=input.public, retroactive=input.retroactive, background=True))
        return watchlist_type(doc, 0)

    @strawberry.mutation(description="upload a watchmap: a MOC or a sky map (FITS, base64)")
    async def create_watchmap(self, info: GatewayInfo, input: WatchmapInput) -> Watchmap:
        user = user_of(info, "createWatchmap")
        try:
            data = base64.b64decode(input.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise GatewayError(BAD_USER_INPUT, "contentBase64 is not base64") from None
        doc = await _guarded(_watch(info).create_map(
            user, input.name, data, since=input.since, until=input.until,
            window_days=input.window_days, public=input.public))
        return watchmap_type(doc)


async def filter_match_stream(info: GatewayInfo, filter_id: str
                              ) -> AsyncGenerator[FilterMatch, None]:
    """Live matches of one filter the caller may read (from the live feed)."""
    hub = info.context.hub
    if hub is None:
        raise GatewayError(UNAVAILABLE, "this gateway has no live feed")
    doc = await _guarded(_service(info).get(_reader(info), filter_id))
    wanted = doc["_id"]

    def select(event: Mapping[str, Any]) -> list[Any]:
        return [event] if event.get("kind") == FILTER_MATCH and event.get(
            "filter_id") == wanted else []

    async with hub.subscribe(select) as sub:
        while True:
            event, _missed = await sub.get()
            yield match_type({**event, "filter_name": doc["name"],
                              "permalink": f"/explorer/object/{event['oid']}"})
            await asyncio.sleep(0)
