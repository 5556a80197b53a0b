"""A webhook receiver for tests, run as its own process: ``python -m tests.webhook_receiver
PORT OUT``.  Under /retry it answers 500 to the first request of each delivery id, then
204; elsewhere 204 at once.  Each accepted request is appended to OUT as a JSON line
(receive time, headers, body in base64)."""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    port, out = int(sys.argv[1]), sys.argv[2]
    failed_once: set[str] = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received = time.time()
            delivery = self.headers.get("X-Nightjar-Delivery", "")
            with lock:
                fail = self.path.startswith("/retry") and delivery not in failed_once
                failed_once.add(delivery)
                if not fail:
                    with open(out, "a") as fh:
                        fh.write(json.dumps({"t": received, "path": self.path,
                                             "headers": dict(self.headers),
                                             "body": base64.b64encode(body).decode()}) + "\n")
            self.send_response(500 if fail else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 128  # the stdlib default of 5 drops SYNs
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
