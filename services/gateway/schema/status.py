"""``status``: how the broker is doing, for the explorer's status page and operators'
scripts: alerts stored per minute and how far behind the stream they are (from the live
feed's last two minutes, so it covers every writer process), objects per survey, dead
letters by reason."""

from __future__ import annotations

import datetime as dt
import statistics
from functools import partial
from typing import Any

import strawberry

from nightjar.core.live import ALERT
from nightjar.store.mongo import NightjarStore
from nightjar.store.schema import OBJECTS
from services.gateway.schema.context import GatewayInfo

#: MJD of the Unix epoch
_MJD_UNIX = 40587.0


@strawberry.type(description="A count of one survey's objects")
class SurveyCount:
    survey: str
    count: int


@strawberry.type(description="Dead letters (rejected inputs) of one reason")
class DeadLetterCount:
    reason: str
    count: int


@strawberry.type(description="The broker's ingest, lag and rejects")
class ServiceStatus:
    window_seconds: float = strawberry.field(description="the window the rates are over [s]")
    alerts_in_window: int
    alerts_per_minute: float
    last_stored_at: float | None = strawberry.field(
        description="when the newest alert in the window was stored [Unix s]")
    seconds_since_last_alert: float | None
    median_latency_seconds: float | None = strawberry.field(description=(
        "median time from exposure (the alert's MJD) to stored [s] over the window: how far "
        "behind the stream the broker is (replayed archival alerts show their age)"))
    objects: list[SurveyCount]
    dead_letters: list[DeadLetterCount]


def status_of(feed_docs: list[dict[str, Any]], now: dt.datetime, window_s: float,
              objects: dict[str, int], dead_letters: dict[str, int]) -> ServiceStatus:
    """The status of the live-feed documents of the last ``window_s`` seconds (pure)."""
    alerts = [e for d in feed_docs for e in d.get("events", []) if e.get("kind") == ALERT]
    stored = [e["stored_ms"] / 1000.0 for e in alerts if e.get("stored_ms")]
    latencies = [e["stored_ms"] / 1000.0 - (e["mjd"] - _MJD_UNIX) * 86400.0
                 for e in alerts if e.get("stored_ms") and e.get("mjd") is not None]
    last = max(stored) if stored else None
    return ServiceStatus(
        window_seconds=window_s, alerts_in_window=len(alerts),
        alerts_per_minute=len(alerts) * 60.0 / window_s, last_stored_at=last,
        seconds_since_last_alert=None if last is None else max(0.0, now.timestamp() - last),
        median_latency_seconds=statistics.median(latencies) if latencies else None,
        objects=[SurveyCount(survey=s, count=n) for s, n in sorted(objects.items())],
        dead_letters=[DeadLetterCount(reason=r, count=n) for r, n in
                      sorted(dead_letters.items(), key=lambda kv: (-kv[1], kv[0]))])


@strawberry.type
class StatusQueries:
    @strawberry.field(description="ingest rate and lag (last two minutes of the live feed), "
                                  "objects per survey, dead letters by reason")
    async def status(self, info: GatewayInfo) -> ServiceStatus:
        store: NightjarStore = info.context.store
        now = dt.datetime.now(dt.UTC)
        window = store.LIVE_RETENTION_S
        docs = await store.live_window(now - dt.timedelta(seconds=window))
        counts = info.context.counts
        objects = {s: await counts.get(f"survey {s}", partial(store.count, OBJECTS,
                                                              {"survey": s}))
                   for s in ("ZTF", "LSST")}
        return status_of(docs, now, window, objects, await store.dead_letter_reasons())
