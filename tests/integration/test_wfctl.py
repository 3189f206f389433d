"""wfctl audit export/verify against a real log, and offline on the exported file."""
import asyncio
import json
from datetime import datetime, timezone

from wf_contracts import events as ev
from wf_contracts.envelope import NewEvent
from wf_contracts.ids import new_id
from wf_platform import cli
from wf_platform.eventlog import EventLog


async def test_export_then_verify_offline_and_detect_tampering(pool, migrated_db, tmp_path):
    log = EventLog(pool)
    for i in range(25):
        await log.append(f"run_x{i % 4}", "t1", i // 4,
                         [NewEvent(id=new_id("evt"), event=ev.RunStarted(run_id=f"run_x{i % 4}"), actor="t")],
                         datetime.now(timezone.utc))
    out = tmp_path / "log.jsonl"
    with open(out, "w") as f:
        assert cli.export(migrated_db, None, f) == 25
    assert cli.verify_file(str(out)) == {"ok": True, "events_checked": 25, "first_bad": None, "reason": None}
    assert (await asyncio.to_thread(cli.verify_db, migrated_db))["ok"]
    lines = out.read_text().splitlines()
    d = json.loads(lines[7])
    d["actor"] = "mallory"
    lines[7] = json.dumps(d)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    r = cli.verify_file(str(bad))
    assert r["ok"] is False and r["first_bad"] == 8
