"""The ASGI application serving GraphQL (with GraphiQL) at /graphql."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from nightjar.store.mongo import NightjarStore
from services.gateway.schema import GatewayContext, schema


class _GraphQL(GraphQL[GatewayContext, None]):
    def __init__(self, store: NightjarStore):
        super().__init__(schema, graphql_ide="graphiql")
        self._context = GatewayContext(store)

    async def get_context(self, request: Request | WebSocket,
                          response: Response | WebSocket | None) -> GatewayContext:
        return self._context


def create_app(store: NightjarStore) -> Starlette:
    """GraphQL at /graphql, a health check at /healthz; the store is injected."""
    graphql: Any = _GraphQL(store)

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
