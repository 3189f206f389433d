"""Opaque, prefixed, unguessable ids (SPEC §1)."""
import secrets

PREFIXES = ("wf", "run", "sched", "tpl", "key", "evt", "disp")


def new_id(prefix: str) -> str:
    # 128 bits of randomness in url-safe base32-ish hex; prefix tells the kind at a glance.
    return f"{prefix}_{secrets.token_hex(12)}"


class IdFactory:
    """Injected into pure decision code so tests can make ids deterministic."""

    def __call__(self, prefix: str) -> str:
        return new_id(prefix)


class SequentialIds:
    """Deterministic ids for tests and golden histories."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n:06d}"
