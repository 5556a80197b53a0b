"""The gateway's error contract: a fixed set of ``extensions.code`` values, no leaks.

Every error a client sees carries one of :data:`CODES`.  Resolvers raise
:class:`GatewayError` with a code and a message meant for the user; GraphQL's own
syntax, validation and argument-coercion errors become ``BAD_USER_INPUT``; the store
or a gRPC service being down becomes ``UNAVAILABLE``; anything else is logged with an
error id and reaches the client as ``INTERNAL`` with that id only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import grpc
from graphql.error import GraphQLError
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
from strawberry.extensions import MaskErrors

log = logging.getLogger(__name__)

BAD_USER_INPUT = "BAD_USER_INPUT"
NOT_FOUND = "NOT_FOUND"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
RATE_LIMITED = "RATE_LIMITED"
UNAUTHENTICATED = "UNAUTHENTICATED"
UNAVAILABLE = "UNAVAILABLE"
INTERNAL = "INTERNAL"
CODES = (BAD_USER_INPUT, NOT_FOUND, QUERY_TOO_COMPLEX, RATE_LIMITED, UNAUTHENTICATED,
         UNAVAILABLE, INTERNAL)

_UNAVAILABLE_GRPC = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class GatewayError(Exception):
    """An error whose message is meant for the client, with its code."""

    def __init__(self, code: str, message: str, **extensions: Any):
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.extensions = extensions


def limit_error(message: str, limit: str, **details: Any) -> GatewayError:
    """A QUERY_TOO_COMPLEX error naming the limit (``depth``, ``aliases``, ``cost``...)."""
    return GatewayError(QUERY_TOO_COMPLEX, message, limit=limit, **details)


def classify(error: GraphQLError) -> tuple[str, str, dict[str, Any]]:
    """(code, client message, extra extensions) of one GraphQL error."""
    original = error.original_error
    ext = dict(error.extensions or {})
    if original is None or (error.path is None and not isinstance(original, GatewayError)):
        # GraphQL's syntax, validation and variable-coercion errors: about the request
        code = ext.pop("code", BAD_USER_INPUT)
        return (code if code in CODES else BAD_USER_INPUT), error.message, ext
    if isinstance(original, GatewayError):
        return original.code, original.message, dict(original.extensions)
    if isinstance(original, (ConnectionFailure, ServerSelectionTimeoutError)):
        return UNAVAILABLE, "the database is unavailable; retry later", {}
    if isinstance(original, grpc.aio.AioRpcError):
        if original.code() in _UNAVAILABLE_GRPC:
            return UNAVAILABLE, "a backend service is unavailable; retry later", {}
        if original.code() == grpc.StatusCode.NOT_FOUND:
            return NOT_FOUND, original.details() or "not found", {}
        if original.code() == grpc.StatusCode.INVALID_ARGUMENT:
            return BAD_USER_INPUT, original.details() or "invalid argument", {}
    error_id = uuid.uuid4().hex[:12]
    log.error("internal error %s at %s", error_id, error.path, exc_info=original)
    return INTERNAL, f"internal error (id {error_id})", {"errorId": error_id}


class ErrorCodes(MaskErrors):
    """Rewrite every error to carry a code of :data:`CODES` and a safe message."""

    def __init__(self, on_error: Callable[[str], None] | None = None):
        super().__init__()
        self.on_error = on_error

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        out = []
        for error in errors:
            code, message, ext = classify(error)
            if self.on_error is not None:
                self.on_error(code)
            out.append(GraphQLError(message, nodes=error.nodes, source=error.source,
                                    positions=error.positions, path=error.path,
                                    extensions={"code": code, **ext}))
        return out


def error_body(code: str, message: str, **extensions: Any) -> dict[str, Any]:
    """A GraphQL-shaped JSON error body (HTTP routes, rate limiting)."""
    return {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}
