"""Transport security and bearer-token authentication of the gRPC services.

Other brokers and TOMs call these services across networks, so a deployment sets:

* server TLS (``NIGHTJAR_GRPC_TLS_CERT`` / ``_KEY``), optionally requiring client
  certificates signed by ``NIGHTJAR_GRPC_TLS_CLIENT_CA`` (mutual TLS);
* bearer tokens (``NIGHTJAR_GRPC_TOKENS`` and/or one per line in
  ``NIGHTJAR_GRPC_TOKENS_FILE``): every call but health checks and reflection then needs
  ``authorization: Bearer <token>`` in its metadata, or it answers UNAUTHENTICATED.

Tokens are compared in constant time (HMAC digests of equal length, every configured
token checked).  Without any of these settings the server is plaintext and open, as
the embedded default on loopback has always been; binding such a server to a
non-loopback address logs a warning.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from nightjar.settings import Settings

log = logging.getLogger(__name__)
#: Services every caller may use: load balancers and tools probe them without tokens.
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                 "/grpc.reflection.v1.ServerReflection/")
_KEY = secrets.token_bytes(32)  # per process: digests are only ever compared here


def _digest(token: str) -> bytes:
    return hmac.new(_KEY, token.encode(), hashlib.sha256).digest()


def read_tokens_file(path: Path) -> list[str]:
    """Tokens from a file: one per line; blank lines and ``#`` comments ignored."""
    tokens = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            tokens.append(line)
    return tokens


@dataclass(frozen=True)
class GrpcSecurity:
    """What the server demands of its callers (all optional)."""

    cert_chain: bytes | None = None  #: PEM certificate chain of the server
    private_key: bytes | None = None  #: PEM private key of the server
    client_ca: bytes | None = None  #: PEM CA bundle; set = client certificates required
    tokens: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> GrpcSecurity:
        if bool(settings.grpc_tls_cert) != bool(settings.grpc_tls_key):
            raise ValueError("set both NIGHTJAR_GRPC_TLS_CERT and NIGHTJAR_GRPC_TLS_KEY")
        if settings.grpc_tls_client_ca and not settings.grpc_tls_cert:
            raise ValueError("NIGHTJAR_GRPC_TLS_CLIENT_CA needs server TLS (GRPC_TLS_CERT/KEY)")
        tokens = [t.get_secret_value() for t in settings.grpc_tokens]
        if settings.grpc_tokens_file:
            tokens += read_tokens_file(settings.grpc_tokens_file)
        return cls(
            cert_chain=settings.grpc_tls_cert.read_bytes() if settings.grpc_tls_cert else None,
            private_key=settings.grpc_tls_key.read_bytes() if settings.grpc_tls_key else None,
            client_ca=(settings.grpc_tls_client_ca.read_bytes()
                       if settings.grpc_tls_client_ca else None),
            tokens=tuple(tokens))

    @property
    def tls(self) -> bool:
        return self.cert_chain is not None

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if self.cert_chain is None or self.private_key is None:
            return None
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)], root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None)

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [BearerTokenInterceptor(self.tokens)] if self.tokens else []


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED for any call outside :data:`OPEN_SERVICES` without a valid token."""

    def __init__(self, tokens: Sequence[str]):
        self._digests = [_digest(t) for t in tokens]

    def authorized(self, metadata: Sequence[tuple[str, Any]] | None) -> bool:
        values = [v for k, v in (metadata or ()) if k == "authorization"]
        if len(values) != 1 or not isinstance(values[0], str):
            return False
        scheme, _, token = values[0].partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        offered = _digest(token.strip())
        # every token is compared, so the time taken does not tell which one was close
        matches = [hmac.compare_digest(offered, known) for known in self._digests]
        return any(matches)

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails],
                                         Awaitable[grpc.RpcMethodHandler]],
            handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_SERVICES) or self.authorized(
                handler_call_details.invocation_metadata):
            return handler
        return _refusal(handler)


async def _deny(request: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                        "a valid 'authorization: Bearer <token>' is required")


async def _deny_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
    await _deny(request, context)
    yield  # pragma: no cover (abort raises)


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that answers UNAUTHENTICATED."""
    kwargs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_deny, **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_deny_stream, **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(_deny, **kwargs)
    return grpc.stream_stream_rpc_method_handler(_deny_stream, **kwargs)


class _BearerMetadata(grpc.aio.UnaryUnaryClientInterceptor,
                      grpc.aio.UnaryStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call of a client channel."""

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._header)
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata,
                                          details.credentials, details.wait_for_ready)

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any,
                                    request: Any) -> Any:
        return await continuation(self._with_token(client_call_details), request)

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any,
                                     request: Any) -> Any:
        return await continuation(self._with_token(client_call_details), request)


def client_channel(target: str, *, ca: bytes | None = None, token: str | None = None,
                   cert_chain: bytes | None = None,
                   private_key: bytes | None = None) -> grpc.aio.Channel:
    """A channel to Nightjar's gRPC services: TLS when a CA to verify the server is
    given, a client certificate for mutual TLS, and the bearer token on every call."""
    interceptors = [_BearerMetadata(token)] if token else None
    if ca is not None:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca,
                                                   private_key=private_key,
                                                   certificate_chain=cert_chain)
        return grpc.aio.secure_channel(target, credentials, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, interceptors=interceptors)
