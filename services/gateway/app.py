"""The ASGI application: GraphQL (HTTP and graphql-transport-ws) at /graphql, downloads,
/metrics and /healthz, behind API keys, rate limits and CORS.

Everything it talks to is injected: the store, the channel to the gRPC services, the
live feed (store- or Kafka-backed, see :mod:`services.gateway.live`) and the model
registry.  The caller owns them; :func:`create_app`'s app closes only its live hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from graphql import GraphQLError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

from ml.registry import ModelRegistry
from nightjar.context.tns_report import TnsReporter
from nightjar.runner.filters import FilterService
from nightjar.runner.watch import WatchService
from nightjar.settings import Settings
from nightjar.store.mongo import NightjarStore
from services.gateway.counts import CountCache
from services.gateway.downloads import download_routes
from services.gateway.errors import (
    QUERY_TOO_COMPLEX,
    RATE_LIMITED,
    UNAUTHENTICATED,
    UNAVAILABLE,
    error_body,
)
from services.gateway.explorer import explorer_routes
from services.gateway.graphiql import asset_route, local_page
from services.gateway.limits import GatewayLimits, length_error
from services.gateway.live import LiveFeed, LiveHub
from services.gateway.protection import ApiKeys, GatewayMetrics, RateLimiter, retry_after_header
from services.gateway.schema import GatewayContext, make_schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayConfig:
    """How one gateway protects itself (``NIGHTJAR_GATEWAY_*`` settings)."""

    limits: GatewayLimits = field(default_factory=GatewayLimits)
    #: API key -> its owner's name (who labels are stored under)
    api_keys: Mapping[str, str] = field(default_factory=dict)
    rate_anonymous: float = 300.0  #: requests per minute per IP address without a key
    rate_api_key: float = 3000.0  #: requests per minute per API key
    cors_origins: tuple[str, ...] = ()
    subscription_queue: int = 1000  #: events queued per subscription before dropping
    count_ttl_s: float = 10.0  #: seconds a count (totalCount, status) is reused
    #: users whose ARTEFACT labels make the shared anomaly score treat an object as bogus
    artefact_votes: int = 2
    #: API key owners who may send TNS reports (empty: every key holder)
    tns_reporters: tuple[str, ...] = ()
    #: installed GraphiQL packages (tools/graphiql/node_modules); None = from the CDN
    graphiql_assets: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayConfig:
        return cls(
            limits=GatewayLimits(
                max_query_chars=settings.gateway_max_query_chars,
                max_depth=settings.gateway_max_depth, max_aliases=settings.gateway_max_aliases,
                max_cost=settings.gateway_max_cost, max_page=settings.gateway_max_page,
                timeout_s=settings.gateway_timeout),
            api_keys={key.get_secret_value(): owner
                      for owner, key in settings.gateway_api_keys.items()},
            rate_anonymous=settings.gateway_rate_anonymous,
            rate_api_key=settings.gateway_rate_api_key,
            cors_origins=tuple(settings.gateway_cors_origins),
            subscription_queue=settings.gateway_subscription_queue,
            count_ttl_s=settings.gateway_count_ttl,
            artefact_votes=settings.anomaly_artefact_votes,
            tns_reporters=tuple(settings.tns_reporters),
            graphiql_assets=settings.gateway_graphiql_assets)


def _route_label(path: str) -> str:
    if path.startswith("/download/"):
        return "/download/" + path.split("/")[2]
    if path.startswith("/explorer"):
        return "/explorer"
    return path if path in ("/graphql", "/metrics", "/healthz", "/") else "other"


class _GraphQL(GraphQL[GatewayContext, None]):
    def __init__(self, store: NightjarStore, channel: grpc.aio.Channel | None,
                 hub: LiveHub | None, registry: ModelRegistry | None, config: GatewayConfig,
                 metrics: GatewayMetrics):
        super().__init__(make_schema(config.limits,
                                     lambda code: metrics.errors.labels(code=code).inc()),
                         graphql_ide="graphiql", allowed_origins=config.cors_origins,
                         max_subscriptions_per_connection=20)
        self.store, self.channel, self.hub, self.registry = store, channel, hub, registry
        self.config = config
        self.filters: FilterService | None = None
        self.watch: WatchService | None = None
        self.tns: TnsReporter | None = None
        self.counts = CountCache(config.count_ttl_s)
        self._page, missing = local_page(super().graphql_ide_html, config.graphiql_assets)
        if missing:
            log.warning("GraphiQL loads %d file(s) from the CDN (not installed under %s; "
                        "run `make setup`): %s", len(missing), config.graphiql_assets,
                        ", ".join(missing))

    @property
    def graphql_ide_html(self) -> str:
        return self._page

    async def get_context(self, request: Request | WebSocket,
                          response: Response | WebSocket | None) -> GatewayContext:
        return GatewayContext(self.store, self.channel, self.hub, self.registry,
                              self.config.limits, user=request.state.user,
                              artefact_votes=self.config.artefact_votes,
                              filters=self.filters, watch=self.watch, tns=self.tns,
                              tns_reporters=frozenset(self.config.tns_reporters),
                              counts=self.counts)

    async def execute_single(self, request: Request, request_adapter: Any,
                             sub_response: Any, context: GatewayContext, root_value: Any,
                             request_data: GraphQLRequestData) -> ExecutionResult:
        limits = self.config.limits
        too_long = length_error(request_data.query or "", limits)
        if too_long is not None:  # refused before parsing
            return ExecutionResult(data=None, errors=[too_long])
        try:
            return await asyncio.wait_for(super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data),
                timeout=limits.timeout_s)
        except TimeoutError:
            return ExecutionResult(data=None, errors=[GraphQLError(
                f"the query ran longer than {limits.timeout_s:g} s and was stopped",
                extensions={"code": QUERY_TOO_COMPLEX, "limit": "timeout",
                            "max": limits.timeout_s})])


class _Guard:
    """ASGI middleware: API key check, rate limit, request metrics."""

    UNLIMITED = frozenset({"/healthz", "/metrics"})

    def __init__(self, app: ASGIApp, config: GatewayConfig, metrics: GatewayMetrics):
        self.app = app
        self.keys = ApiKeys(config.api_keys)
        self.anonymous = RateLimiter(config.rate_anonymous)
        self.keyed = RateLimiter(config.rate_api_key)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path, route = scope["path"], _route_label(scope["path"])
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        presented = ApiKeys.presented(headers)
        user = self.keys.owner(presented) if presented else None
        scope.setdefault("state", {})["user"] = user
        if presented and user is None:
            await self._refuse(scope, send, route, 401, UNAUTHENTICATED, "unknown API key")
            return
        if path not in self.UNLIMITED:
            client = f"key:{user}" if user else f"ip:{(scope.get('client') or ('?',))[0]}"
            wait = (self.keyed if user else self.anonymous).acquire(client)
            if wait > 0:
                await self._refuse(scope, send, route, 429, RATE_LIMITED,
                                   f"rate limit exceeded; retry in {retry_after_header(wait)} s",
                                   retry_after=wait)
                return
        start = time.perf_counter()
        status = {"code": 101 if scope["type"] == "websocket" else 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(route=route, status=str(status["code"])).inc()
            if scope["type"] == "http":
                self.metrics.latency.labels(route=route).observe(time.perf_counter() - start)

    async def _refuse(self, scope: Scope, send: Send, route: str, status: int, code: str,
                      message: str, retry_after: float | None = None) -> None:
        self.metrics.requests.labels(route=route, status=str(status)).inc()
        self.metrics.errors.labels(code=code).inc()
        if scope["type"] == "websocket":  # closing before accepting answers HTTP 403
            await send({"type": "websocket.close", "code": 4000 + status})
            return
        extra = {"retryAfter": float(retry_after_header(retry_after))} if retry_after else {}
        response = JSONResponse(error_body(code, message, **extra), status_code=status,
                                headers={"Retry-After": retry_after_header(retry_after)}
                                if retry_after else None)
        await response(scope, lambda: _empty(), send)


async def _empty() -> Message:
    return {"type": "http.disconnect"}


def create_app(store: NightjarStore, grpc_channel: grpc.aio.Channel | None = None, *,
               config: GatewayConfig | None = None, feed: LiveFeed | None = None,
               registry: ModelRegistry | None = None, filters: FilterService | None = None,
               watch: WatchService | None = None, tns: TnsReporter | None = None
               ) -> Starlette:
    """GraphQL at /graphql, downloads under /download, the explorer at /explorer, /metrics
    and /healthz.

    Parameters
    ----------
    store : NightjarStore
        The database (owned by the caller).
    grpc_channel : grpc.aio.Channel, optional
        Channel to the gRPC services (catalogue, TNS, stamps, finding charts).
    config : GatewayConfig, optional
        Limits, API keys, rate limits, CORS.
    feed : LiveFeed, optional
        Where subscriptions' events come from; None = subscriptions answer UNAVAILABLE.
    registry : ModelRegistry, optional
        Registered classifier models (``classifiers``).
    filters, watch : optional
        Users' filters, watchlists and watchmaps (their mutations and queries).
    tns : TnsReporter, optional
        Sends AT reports to TNS (sendTnsReport); None = reports cannot be sent.
    """
    config = config or GatewayConfig()
    metrics = GatewayMetrics()
    hub = None
    if feed is not None:
        hub = LiveHub(feed, config.subscription_queue, on_drop=metrics.dropped.inc,
                      on_events=metrics.live_events.inc, on_count=metrics.subscriptions.set)
    graphql: Any = _GraphQL(store, grpc_channel, hub, registry, config, metrics)
    graphql.filters, graphql.watch, graphql.tns = filters, watch, tns

    async def health(request: Request) -> JSONResponse:
        try:
            await asyncio.wait_for(store.db.command("ping"), timeout=2.0)
        except Exception:
            return JSONResponse({"status": "unavailable", **error_body(
                UNAVAILABLE, "the database does not answer")}, status_code=503)
        return JSONResponse({"status": "ok", "liveFeed": None if hub is None else (
            "ready" if hub.ready.is_set() else "idle"),
            "process": os.getpid()})  # which of `serve --workers N`'s processes answered

    async def metrics_route(request: Request) -> Response:
        metrics.feed_ready.set(1 if hub is not None and hub.ready.is_set() else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def root(request: Request) -> RedirectResponse:
        return RedirectResponse("/graphql")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if hub is not None:
            await hub.close()

    middleware = [Middleware(_Guard, config=config, metrics=metrics)]
    if config.cors_origins:
        middleware.insert(0, Middleware(
            CORSMiddleware, allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["content-type", "authorization", "x-api-key"], max_age=600))
    app = Starlette(routes=[
        Route("/", root),
        Route("/healthz", health),
        Route("/metrics", metrics_route),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),  # subscriptions (graphql-transport-ws)
        *download_routes(store, grpc_channel),
        asset_route(config.graphiql_assets),
        *explorer_routes(),
    ], middleware=middleware, lifespan=lifespan)
    app.state.hub = hub
    app.state.metrics = metrics
    return app
