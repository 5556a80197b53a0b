"""Stopping the local servers Nightjar starts (the embedded database, the dev broker)."""

from __future__ import annotations

import subprocess
import sys
import time

from nightjar.processes import terminate

# A server that, like nx-27017 when SIGTERM lands inside a __del__, lets the first
# SIGTERM go unnoticed and exits cleanly on the next one.
SWALLOWS_FIRST_SIGTERM = """
import signal, sys, time
seen = []
def handler(signum, frame):
    seen.append(signum)
    if len(seen) > 1:
        sys.exit(0)
signal.signal(signal.SIGTERM, handler)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""

IGNORES_SIGTERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def _start(script: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def test_a_swallowed_sigterm_is_repeated_and_the_server_exits_cleanly_at_once() -> None:
    proc = _start(SWALLOWS_FIRST_SIGTERM)
    start = time.monotonic()
    status = terminate(proc, grace=10.0, every=0.3)
    assert status == 0  # exited by its own handler, not killed
    assert time.monotonic() - start < 2.0


def test_a_server_deaf_to_sigterm_is_killed_after_the_grace() -> None:
    proc = _start(IGNORES_SIGTERM)
    start = time.monotonic()
    status = terminate(proc, grace=1.0, every=0.3)
    assert status == -9
    assert 0.9 < time.monotonic() - start < 3.0
