"""A fake agent server for runner tests, on 127.0.0.1 in a thread (usable from sync and async tests).

- `POST /v1/chat/completions`: OpenAI-compatible; the `model` picks the behaviour:
  `text` a plain answer, `json` a ```json fenced object echoing the goal, `echo` the received
  messages as JSON, `nousage` text without a usage block, `hang` never answers, `garbage` an HTML
  page with status 200, `shape` JSON without `choices`, `error` a 500.
- `POST /agent[/<mode>]`: the `http` kind; answers {"output": {goal, context, run_id, step_id},
  "usage"}; modes `hang`, `garbage`, `nooutput`.
- `GET /redirect?to=<url>`: a 302 to `url` (for redirect-to-loopback tests).
- A plain upstream for http_request and webhook tests, any method: `/echo...` answers what it
  received as JSON, `/text` plain text, `/bytes/<n>` n bytes, `/lying-json` a JSON content type
  over a non-JSON body, `/status/<n>` that status, `/flaky/<n>/<name>` 503 for the first n calls
  then 200, `/slow` never answers.
Requests are recorded in `requests`. With `api_key`, a missing or wrong bearer token gets a 401
(on the agent routes only).
"""
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

USAGE = {"prompt_tokens": 21, "completion_tokens": 7, "total_tokens": 28}
TEXT_ANSWER = "Hello from the fake agent"


def _goal(messages: list) -> str:
    return next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")


class FakeAgent:
    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[dict] = []
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.closing = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                req = self._record(b"")
                if req["route"] == "/redirect":
                    self.send_response(302)
                    self.send_header("location", req["query"]["to"][0])
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self._upstream(req)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                body = self._record(raw)["json"]
                if self.path.startswith(("/v1/", "/agent")):
                    if fake.api_key and self.headers.get("authorization") != f"Bearer {fake.api_key}":
                        return self._send(401, {"error": {"message": "bad api key"}})
                    if self.path == "/v1/chat/completions":
                        return self._chat(body or {})
                    return self._agent(self.path[len("/agent/"):], body or {})
                self._upstream(fake.requests[-1])

            def do_PUT(self):
                self._upstream(self._record(self.rfile.read(int(self.headers.get("content-length") or 0))))

            do_PATCH = do_DELETE = do_OPTIONS = do_PUT

            def do_HEAD(self):
                self._record(b"")
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()

            def _record(self, raw: bytes) -> dict:
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = None
                url = urlsplit(self.path)
                entry = {"method": self.command, "path": self.path, "route": url.path, "query": parse_qs(url.query),
                         "headers": {k.lower(): v for k, v in self.headers.items()},
                         "body": raw.decode("utf-8", "replace"), "raw": raw, "json": parsed}
                with fake.lock:
                    fake.requests.append(entry)
                    fake.calls[url.path] += 1
                return entry

            def _upstream(self, req: dict):
                route = req["route"]
                parts = route.strip("/").split("/")
                if route.startswith("/echo"):
                    return self._send(200, {k: req[k] for k in ("method", "path", "query", "headers", "body", "json")})
                if route == "/text":
                    return self._raw(200, b"plain text", "text/plain; charset=utf-8")
                if parts[0] == "bytes":
                    return self._raw(200, b"x" * int(parts[1]), "application/octet-stream")
                if route == "/lying-json":
                    return self._raw(200, b"<html>not json</html>", "application/json")
                if parts[0] == "status":
                    return self._send(int(parts[1]), {"status": int(parts[1])})
                if parts[0] == "flaky":
                    with fake.lock:
                        n = fake.calls[route]
                    return self._send(503 if n <= int(parts[1]) else 200, {"call": n})
                if route == "/slow":
                    return self._hang()
                self._send(404, {"error": "not found"})

            def _chat(self, body: dict):
                model, messages = body.get("model", ""), body.get("messages", [])
                if model == "hang":
                    return self._hang()
                if model == "garbage":
                    return self._raw(200, b"<html><body>502 Bad Gateway (not really)</body></html>", "text/html")
                if model == "shape":
                    return self._send(200, {"id": "x", "object": "chat.completion", "answer": "where?"})
                if model == "error":
                    return self._send(500, {"error": {"message": "model crashed"}})
                content = {"text": TEXT_ANSWER, "nousage": TEXT_ANSWER,
                           "json": "```json\n" + json.dumps({"answer": 42, "goal": _goal(messages)}) + "\n```",
                           "echo": json.dumps({"messages": messages})}.get(model, TEXT_ANSWER)
                answer = {"id": "chatcmpl-1", "object": "chat.completion", "model": model,
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": content}}]}
                if model != "nousage":
                    answer["usage"] = USAGE
                self._send(200, answer)

            def _agent(self, mode: str, body: dict):
                if mode == "hang":
                    return self._hang()
                if mode == "garbage":
                    return self._raw(200, b"\x00\xffnot json at all", "application/json")
                if mode == "nooutput":
                    return self._send(200, {"result": "misnamed"})
                self._send(200, {"output": {k: body.get(k) for k in ("goal", "context", "run_id", "step_id")},
                                 "usage": USAGE})

            def _hang(self):
                fake.closing.wait(120)     # until the server stops: the client must give up first

            def _send(self, status: int, obj) -> None:
                self._raw(status, json.dumps(obj).encode(), "application/json")

            def _raw(self, status: int, data: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def agents(self, host: str = "127.0.0.1", api_key_env: str | None = None) -> dict:
        """A WORKFLOW_AGENTS_FILE body with one openai agent per behaviour and the http ones."""
        base = f"http://{host}:{self.port}"
        out = {}
        for model in ("text", "json", "echo", "nousage", "hang", "garbage", "shape", "error"):
            out[f"oa_{model}"] = {"kind": "openai", "base_url": f"{base}/v1", "model": model,
                                  "system_prompt": "You are a test agent.",
                                  **({"api_key_env": api_key_env} if api_key_env else {})}
        for mode in ("", "hang", "garbage", "nooutput"):
            out[f"http_{mode or 'ok'}"] = {"kind": "http", "url": f"{base}/agent" + (f"/{mode}" if mode else ""),
                                           **({"api_key_env": api_key_env} if api_key_env else {})}
        return out

    def __enter__(self) -> "FakeAgent":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
