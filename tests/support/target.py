"""A local HTTP server that steps call in tests; it counts every Idempotency-Key it sees."""
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Target:
    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with target.lock:
                    key = self.headers.get("idempotency-key")
                    if key:
                        target.keys[key] += 1
                    target.requests.append({"method": self.command, "path": self.path,
                                            "headers": dict(self.headers), "body": body.decode(errors="replace")})
                status = 200
                if self.path.startswith("/status/"):
                    status = int(self.path.split("/")[2])
                if self.path.startswith("/sleep/"):
                    # a slow endpoint; waits on an event so a test can also release it early
                    target.release.wait(timeout=int(self.path.split("/")[2]) / 1000)
                out = json.dumps({"ok": status < 400, "path": self.path, "method": self.command}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self) -> "Target":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
