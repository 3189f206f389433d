"""Typed id segments in paths: `/api/workflows/{workflow_id:wf_id}` only matches `wf_…`.

So `/api/workflows/validate` or `/api/workflows/templates` can never be taken for a workflow id
(an unsupported method there is a 405, not a 404), and a malformed id (say, one holding a NUL)
is a 404 before any handler or query sees it.
"""
from starlette.convertors import Convertor, register_url_convertor

ID_BODY = "[A-Za-z0-9_-]{1,64}"
PREFIXES = {"wf_id": "wf", "tpl_id": "tpl", "key_id": "key", "run_id": "run", "sched_id": "sched"}


def pattern(kind: str) -> str:
    return f"^{PREFIXES[kind]}_{ID_BODY}$"


class _IdConvertor(Convertor):
    def __init__(self, prefix: str) -> None:
        self.regex = f"{prefix}_{ID_BODY}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def register() -> None:
    for kind, prefix in PREFIXES.items():
        register_url_convertor(kind, _IdConvertor(prefix))
