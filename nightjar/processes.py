"""Helpers for the local server processes Nightjar starts (embedded database, dev broker)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate(proc: subprocess.Popen[bytes], grace: float = 10.0, every: float = 1.0) -> int:
    """Stop a child with SIGTERM, repeated every ``every`` s, and SIGKILL after ``grace`` s.

    The repetition is for servers that exit by ``sys.exit()`` in a signal handler
    (nx-27017): a signal that lands while the interpreter runs a ``__del__`` is
    swallowed ("Exception ignored in ...") and the server runs on; seen in CI as a
    10 s stop.  Returns the exit status.
    """
    deadline = time.monotonic() + grace
    while proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=every)
    if proc.poll() is None:
        proc.kill()
    return proc.wait()
