"""Exceptions of the client, named as ALeRCE's client names them.

Every error the gateway reports carries a fixed ``extensions.code`` (BAD_USER_INPUT,
NOT_FOUND, QUERY_TOO_COMPLEX, RATE_LIMITED, UNAUTHENTICATED, UNAVAILABLE, INTERNAL);
:func:`error_for` turns it into the matching exception class.
"""

from __future__ import annotations

from typing import Any

#: codes of a request the client got wrong
BAD_REQUEST_CODES = frozenset({"BAD_USER_INPUT", "QUERY_TOO_COMPLEX"})
#: codes worth retrying: the same request may succeed later
TRANSIENT_CODES = frozenset({"RATE_LIMITED", "UNAVAILABLE"})


class APIError(Exception):
    """The gateway answered with an error, or could not be reached.

    Attributes
    ----------
    code : str
        The gateway's ``extensions.code`` (``UNAVAILABLE`` when it could not be
        reached at all).
    message : str
        The gateway's message, meant for a person.
    data : dict
        The error's other fields (``extensions``, ``path``; every error when several).
    """

    def __init__(self, code: str, message: str, data: dict[str, Any] | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data or {}


class ParseError(APIError):
    """A bad argument: refused by the client before sending, or by the gateway."""

    def __init__(self, message: str, code: str = "BAD_USER_INPUT",
                 data: dict[str, Any] | None = None):
        super().__init__(code, message, data)


class ObjectNotFoundError(APIError):
    """No such object (or alert, feature, classifier...)."""

    def __init__(self, message: str, code: str = "NOT_FOUND",
                 data: dict[str, Any] | None = None):
        super().__init__(code, message, data)


def error_for(errors: list[dict[str, Any]]) -> APIError:
    """The exception for a GraphQL ``errors`` list (the first error decides the class)."""
    first = errors[0] if errors else {}
    extensions = first.get("extensions") or {}
    code = str(extensions.get("code") or "INTERNAL")
    message = str(first.get("message") or "unknown error")
    data = {"extensions": extensions, "path": first.get("path"), "errors": errors}
    if code == "NOT_FOUND":
        return ObjectNotFoundError(message, code, data)
    if code in BAD_REQUEST_CODES:
        return ParseError(message, code, data)
    return APIError(code, message, data)
