"""Refuse request bodies over the limit (413) before anything reads them into memory."""
from .problems import problem_response


class BodyLimit:
    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    return await problem_response(413, f"Request body is over {self.max_bytes} bytes.")(
                        scope, receive, send)
        seen = 0
        limit = self.max_bytes

        async def guarded():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _TooLarge()
            return msg

        try:
            await self.app(scope, guarded, send)
        except _TooLarge:
            await problem_response(413, f"Request body is over {self.max_bytes} bytes.")(scope, receive, send)


class _TooLarge(Exception):
    pass
