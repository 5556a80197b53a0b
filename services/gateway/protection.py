"""Per-client rate limits, API keys and the gateway's Prometheus metrics.

Clients are told apart by API key (header ``X-API-Key``, or ``Authorization: Bearer
KEY``) or, without one, by IP address.  Each has a token bucket: ``rate`` requests per
minute on average with bursts of up to a quarter of that.  A request beyond it gets
HTTP 429 with ``Retry-After`` (whole seconds) and a GraphQL-shaped ``RATE_LIMITED``
error; a WebSocket connection counts as one request when it opens.
"""

from __future__ import annotations

import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per client key; least recently seen clients are forgotten first."""

    def __init__(self, per_minute: float, max_clients: int = 100_000):
        self.rate = per_minute / 60.0  # tokens per second
        self.capacity = max(1.0, per_minute / 4.0)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def acquire(self, client: str, now: float | None = None) -> float:
        """Take one token; 0 when allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.pop(client, None) or _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[client] = bucket
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class ApiKeys:
    """API keys and their owners; compared in constant time."""

    def __init__(self, owners_by_key: Mapping[str, str]):
        self._owners = dict(owners_by_key)

    def owner(self, key: str) -> str | None:
        for known, owner in self._owners.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                return owner
        return None

    @staticmethod
    def presented(headers: Mapping[str, str]) -> str | None:
        """The key a request presents, if any."""
        key = headers.get("x-api-key")
        if key:
            return key.strip()
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip() or None
        return None


class GatewayMetrics:
    """The gateway's metrics in their own registry (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("nightjar_gateway_requests_total", "HTTP requests and "
                                "WebSocket connections", ["route", "status"], registry=r)
        self.latency = Histogram("nightjar_gateway_request_seconds", "time to answer",
                                 ["route"], registry=r,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.errors = Counter("nightjar_gateway_errors_total", "errors returned, by "
                              "extensions.code", ["code"], registry=r)
        self.subscriptions = Gauge("nightjar_gateway_active_subscriptions",
                                   "subscriptions open now", registry=r)
        self.dropped = Counter("nightjar_gateway_dropped_messages_total", "events dropped "
                               "from slow subscriptions' queues", registry=r)
        self.live_events = Counter("nightjar_gateway_live_events_total",
                                   "events received from the live feed", registry=r)
        self.feed_ready = Gauge("nightjar_gateway_live_feed_ready",
                                "1 when the live feed is positioned and running", registry=r)
