"""One grpc.aio server for any set of Nightjar's services: health, reflection, limits.

Each service module offers a :class:`GrpcService` (its full name, the function that
adds its servicer, and whether it can serve now).  :func:`start_server` registers them
with the standard health service and server reflection, binds to a loopback or
configured address, and :func:`stop_server` shuts down gracefully: health reports
NOT_SERVING first, then calls in flight get ``grace`` seconds.

Health follows reality while the server runs: every ``health_interval`` seconds each
service's ``serving`` check runs (off the event loop: checks read files) and its status
is updated when it changed, so ``nightjar catalogs import`` or ``nightjar tns sync``
on a running server turns NOT_SERVING into SERVING, and removed files the reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.grpc_security import GrpcSecurity, is_loopback

#: Largest message either way.  Finding-chart PDFs and FITS cutouts are well under
#: 8 MiB; cone results stream in chunks, so a larger cap would only admit abuse.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Seconds between two runs of the services' health checks.
HEALTH_INTERVAL = 1.0
log = logging.getLogger(__name__)


def always_serving() -> bool:
    return True


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode,
                message: str) -> NoReturn:
    """``context.abort`` typed as what it does: it always raises."""
    await context.abort(code, message)
    raise AssertionError("ServicerContext.abort returned")


@dataclass(frozen=True)
class GrpcService:
    name: str  #: full service name, e.g. "nightjar.v1.CatalogService"
    add_to_server: Callable[[grpc.aio.Server], None]
    #: whether the service can answer now (cheap, may read files; polled while running)
    serving: Callable[[], bool] = always_serving


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


_STATUS = {True: health_pb2.HealthCheckResponse.SERVING,
           False: health_pb2.HealthCheckResponse.NOT_SERVING}


async def _check(service: GrpcService) -> bool:
    try:
        return bool(await asyncio.to_thread(service.serving))
    except Exception:  # a check that fails says "not serving", never stops the server
        log.exception("health check of %s failed", service.name)
        return False


async def _watch_health(services: Sequence[GrpcService], servicer: health.aio.HealthServicer,
                        current: dict[str, bool], interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        for service in services:
            serving = await _check(service)
            if serving != current[service.name]:
                current[service.name] = serving
                log.info("%s is now %s", service.name,
                         "SERVING" if serving else "NOT_SERVING")
                await servicer.set(service.name, _STATUS[serving])


async def start_server(services: Sequence[GrpcService], host: str, port: int,
                       max_message_bytes: int = MAX_MESSAGE_BYTES,
                       health_interval: float = HEALTH_INTERVAL,
                       security: GrpcSecurity | None = None,
                       interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
                       ) -> RunningServer:
    """Start serving ``services`` on host:port (0 = a free port); return the bound port.

    ``security``: TLS and bearer tokens (:mod:`services.grpc_security`); None = plaintext
    and open, as fits loopback.  ``interceptors`` run after the security ones.
    """
    security = security or GrpcSecurity()
    if not is_loopback(host) and not (security.tls and security.tokens):
        log.warning("gRPC on %s without %s: set NIGHTJAR_GRPC_TLS_CERT/KEY and "
                    "NIGHTJAR_GRPC_TOKENS(_FILE) before exposing it to a network", host,
                    " and ".join(w for w, on in (("TLS", security.tls),
                                                 ("tokens", bool(security.tokens))) if not on))
    server = grpc.aio.server(interceptors=[*security.interceptors(), *interceptors], options=[
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
    ])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    current: dict[str, bool] = {}
    for service in services:
        service.add_to_server(server)
        current[service.name] = await _check(service)
        await health_servicer.set(service.name, _STATUS[current[service.name]])
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [s.name for s in services] + [health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    credentials = security.server_credentials()
    bound = (server.add_secure_port(f"{host}:{port}", credentials) if credentials is not None
             else server.add_insecure_port(f"{host}:{port}"))
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {host}:{port}")
    await server.start()
    watcher = asyncio.create_task(_watch_health(services, health_servicer, current,
                                                health_interval))
    return RunningServer(server, bound, health_servicer, watcher)


async def stop_server(running: RunningServer, grace: float = 5.0) -> None:
    """Graceful shutdown: NOT_SERVING for every service, then ``grace`` s for calls."""
    if running.watcher is not None:
        running.watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running.watcher
    await running.health.enter_graceful_shutdown()
    await running.server.stop(grace)
