"""One grpc.aio server for any set of Nightjar's services: health, reflection, limits.

Each service module offers a :class:`GrpcService` (its full name, the function that
adds its servicer, and whether it can serve now).  :func:`start_server` registers them
with the standard health service and server reflection, binds to a loopback or
configured address, and :func:`stop_server` shuts down gracefully: health reports
NOT_SERVING first, then calls in flight get ``grace`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

#: Largest message either way.  Finding-chart PDFs and FITS cutouts are well under
#: 8 MiB; cone results stream in chunks, so a larger cap would only admit abuse.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode,
                message: str) -> NoReturn:
    """``context.abort`` typed as what it does: it always raises."""
    await context.abort(code, message)
    raise AssertionError("ServicerContext.abort returned")


@dataclass(frozen=True)
class GrpcService:
    name: str  #: full service name, e.g. "nightjar.v1.CatalogService"
    add_to_server: Callable[[grpc.aio.Server], None]
    serving: bool = True  #: health status at start


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer


async def start_server(services: Sequence[GrpcService], host: str, port: int,
                       max_message_bytes: int = MAX_MESSAGE_BYTES) -> RunningServer:
    """Start serving ``services`` on host:port (0 = a free port); return the bound port."""
    server = grpc.aio.server(options=[
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
    ])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in services:
        service.add_to_server(server)
        await health_servicer.set(service.name, health_pb2.HealthCheckResponse.SERVING
                                  if service.serving else
                                  health_pb2.HealthCheckResponse.NOT_SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [s.name for s in services] + [health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {host}:{port}")
    await server.start()
    return RunningServer(server, bound, health_servicer)


async def stop_server(running: RunningServer, grace: float = 5.0) -> None:
    """Graceful shutdown: NOT_SERVING for every service, then ``grace`` s for calls."""
    await running.health.enter_graceful_shutdown()
    await running.server.stop(grace)
