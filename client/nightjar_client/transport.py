"""HTTP and WebSocket transport: the generated client plus retries, keys and errors.

A request is retried, with exponential backoff and jitter, when it could not have
taken effect or repeating it is harmless:

- the connection could not be made (any request);
- HTTP 429 or the ``RATE_LIMITED`` code (any request): after the server's
  ``Retry-After``;
- HTTP 502/503/504, a timeout or a dropped connection, or the ``UNAVAILABLE`` code:
  queries only (a mutation may have been applied).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import httpx

from nightjar_client.errors import TRANSIENT_CODES, APIError, ObjectNotFoundError, error_for
from nightjar_client.generated import Client
from nightjar_client.generated.exceptions import (
    GraphQLClientGraphQLMultiError,
)

RETRY_STATUSES = frozenset({502, 503, 504})
USER_AGENT = f"nightjar-client/{version('nightjar-client')}"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure.

    Parameters
    ----------
    max_retries : int
        Retries after the first attempt (0: never retry).
    backoff : float
        First delay [s]; each retry doubles it, with up to 50 % random jitter.
    max_backoff : float
        Longest delay [s]; a ``Retry-After`` longer than this is not waited for.
    timeout : float
        Per-request timeout [s] (connect, read, write).
    """

    max_retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0
    timeout: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        base = min(self.max_backoff, self.backoff * 2 ** attempt)
        wait = base * (0.5 + random.random() / 2)  # jitter spreads retrying clients apart
        return max(wait, retry_after) if retry_after is not None else wait


def _retry_after(response: httpx.Response, body: Any) -> float | None:
    """The server's wait [s]: the Retry-After header, else ``extensions.retryAfter``."""
    header = response.headers.get("retry-after")
    if header is not None:
        try:
            return float(header)
        except ValueError:
            return None
    for error in (body.get("errors") or []) if isinstance(body, dict) else []:
        after = (error.get("extensions") or {}).get("retryAfter")
        if isinstance(after, int | float):
            return float(after)
    return None


def _codes(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    return [str((e.get("extensions") or {}).get("code")) for e in body.get("errors") or []]


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def http_error(response: httpx.Response) -> APIError:
    """The exception for a non-2xx answer (its GraphQL-shaped body when it has one)."""
    body = _json(response)
    if isinstance(body, dict) and body.get("errors"):
        return error_for(body["errors"])
    if response.status_code == 404:
        return ObjectNotFoundError(f"not found: {response.request.url.path}")
    code = {401: "UNAUTHENTICATED", 429: "RATE_LIMITED"}.get(
        response.status_code, "UNAVAILABLE" if response.status_code >= 500 else "INTERNAL")
    return APIError(code, f"HTTP {response.status_code} from {response.request.url}",
                    {"status": response.status_code, "body": response.text[:500]})


def websocket_url(http_url: str) -> str:
    """``ws(s)://host/graphql`` for the gateway at ``http(s)://host``."""
    parts = urlsplit(http_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


class GatewayClient(Client):
    """The generated client, sending the API key and retrying transient failures.

    Parameters
    ----------
    base_url : str
        The gateway, e.g. ``http://127.0.0.1:8000`` (GraphQL at ``/graphql``).
    api_key : str or None
        Sent as ``X-API-Key``; needed by mutations, raises rate limits.
    policy : RetryPolicy
        Retries and timeouts.
    """

    def __init__(self, base_url: str, api_key: str | None, policy: RetryPolicy):
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.AsyncClient(headers={**headers, "User-Agent": USER_AGENT},
                                       timeout=policy.timeout)
        super().__init__(
            # the generated HttpClient protocol is narrower than httpx's own signature
            url=f"{self.base_url}/graphql", headers=headers, http_client=cast(Any, self._http),
            # the key on the WebSocket too: private filters' matches and `mine` need it
            # (a browser cannot send it there, and subscribes to public data)
            ws_url=websocket_url(f"{self.base_url}/graphql"), ws_headers=headers)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def execute(self, query: str, operation_name: str | None = None,
                      variables: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        mutation = query.lstrip().startswith("mutation")
        response = await self._send(lambda: super(GatewayClient, self).execute(
            query, operation_name, variables, **kwargs), idempotent=not mutation)
        assert isinstance(response, httpx.Response)
        return response

    def get_data(self, response: Any) -> dict[str, Any]:
        """``data`` of a GraphQL answer; the matching :class:`APIError` for ``errors``."""
        if not 200 <= response.status_code <= 299:
            raise http_error(response)
        body = _json(response)
        if not isinstance(body, dict) or ("data" not in body and "errors" not in body):
            raise APIError("INTERNAL", "the gateway's answer is not GraphQL",
                           {"body": response.text[:500]})
        if body.get("errors"):
            raise error_for(body["errors"])
        data: dict[str, Any] = body["data"]
        return data

    async def get(self, path: str) -> httpx.Response:
        """GET a download (``/download/...``, relative to the gateway), with retries."""
        url = f"{self.base_url}{path}"
        response = await self._send(lambda: self._http.get(url), idempotent=True)
        if response.status_code != 200:
            raise http_error(response)
        return response

    async def _send(self, request: Callable[[], Awaitable[Any]],
                    idempotent: bool) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response: httpx.Response = await request()
            except httpx.TransportError as exc:
                # nothing reached the server when the connection failed; a timeout or a
                # dropped connection may have run a mutation already
                safe = idempotent or isinstance(exc, httpx.ConnectError)
                if not safe or attempt >= self.policy.max_retries:
                    raise APIError("UNAVAILABLE", f"{type(exc).__name__}: {exc} "
                                                  f"({attempt + 1} attempts)") from exc
                await asyncio.sleep(self.policy.delay(attempt))
                attempt += 1
                continue
            wait = self._transient(response, idempotent)
            if wait is None or attempt >= self.policy.max_retries:
                return response
            await asyncio.sleep(self.policy.delay(attempt, wait if wait > 0 else None))
            attempt += 1

    def _transient(self, response: httpx.Response, idempotent: bool) -> float | None:
        """None when ``response`` is final; else the server's wait [s] (0: none given)."""
        if response.status_code == 200 and b'"errors"' not in response.content:
            return None  # cheap path for the common answer: no decoding, no parsing
        body = _json(response)
        codes = _codes(body)
        limited = response.status_code == 429 or "RATE_LIMITED" in codes
        unavailable = response.status_code in RETRY_STATUSES or "UNAVAILABLE" in codes
        if not limited and not (unavailable and idempotent):
            return None
        if codes and not set(codes) <= TRANSIENT_CODES:
            return None  # another error in the same answer will not go away
        after = _retry_after(response, body)
        if after is not None and after > self.policy.max_backoff:
            return None  # longer than we are told to wait: report it
        return after or 0.0


def graphql_error(exc: GraphQLClientGraphQLMultiError) -> APIError:
    """The client's exception for errors the generated WebSocket code raised."""
    return error_for([e.original or {"message": e.message, "extensions": e.extensions}
                      for e in exc.errors])
