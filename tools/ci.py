"""Whether this run is CI, where nothing may be skipped for want of a tool or of data."""

from __future__ import annotations

import os


def in_ci() -> bool:
    """True when ``CI`` is set to anything but empty, ``false`` or ``0`` (any case).

    CI services set ``CI=true``, some ``CI=1`` or ``CI=yes``; a person opts out with
    ``CI=false`` or ``CI=0``.
    """
    return os.environ.get("CI", "").strip().lower() not in ("", "false", "0")
