"""Named crash points for fault tests: WORKFLOW_FAULT=<name> kills the process there.

Off unless the variable is set; it costs one dict lookup on the paths that call it.
"""
import os
import signal

_ARMED = frozenset(filter(None, os.environ.get("WORKFLOW_FAULT", "").split(",")))


def crash_point(name: str) -> None:
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
