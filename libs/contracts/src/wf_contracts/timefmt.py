"""RFC 3339 UTC timestamps with 'Z' (SPEC §1)."""
from datetime import datetime, timezone


def iso_z(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")

