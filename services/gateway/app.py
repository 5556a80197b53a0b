"""The ASGI application serving GraphQL (with GraphiQL) at /graphql."""

from __future__ import annotations

from typing import Any

import grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from nightjar.store.mongo import NightjarStore
from services.gateway.schema import GatewayContext, schema


class _GraphQL(GraphQL[GatewayContext, None]):
    def __init__(self, store: NightjarStore, grpc_channel: grpc.aio.Channel | None):
        super().__init__(schema, graphql_ide="graphiql")
        self._context = GatewayContext(store, grpc_channel)

    async def get_context(self, request: Request | WebSocket,
                          response: Response | WebSocket | None) -> GatewayContext:
        return self._context


def create_app(store: NightjarStore, grpc_channel: grpc.aio.Channel | None = None) -> Starlette:
    """GraphQL at /graphql, a health check at /healthz.

    The store and the channel to the gRPC services (catalogue, TNS) are injected.
    """
    graphql: Any = _GraphQL(store, grpc_channel)

    async def health(request: Request) -> JSONResponse:
        await store.db.command("ping")
        return JSONResponse({"status": "ok"})

    async def root(request: Request) -> RedirectResponse:
        return RedirectResponse("/graphql")

    return Starlette(routes=[
        Route("/", root),
        Route("/healthz", health),
        Route("/graphql", graphql, methods=["GET", "POST"]),
    ])
