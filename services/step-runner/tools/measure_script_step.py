"""Median start-to-finish time of a trivial `script` step (python `print(1)`) on this machine.

    .venv/bin/python services/step-runner/tools/measure_script_step.py [runs]

Measures the runner's execute path (Executor.run: secrets, sandbox, spawn, result) for both
isolation modes, plus the parts that make it up, so the cost can be attributed.
"""
import asyncio
import statistics
import subprocess
import sys
import time

from wf_contracts import events as ev
from wf_contracts.envelope import Recorded
from wf_runner.execute import Executor
from wf_runner.sandbox import Limits, Sandbox, interpreter
from wf_runner.steps.script import ScriptStep


def dispatch(code: str) -> Recorded:
    from datetime import datetime, timezone
    e = ev.StepDispatched(run_id="run_m", step_id="s", attempt=1, step_type="script",
                          config={"language": "python", "code": code})
    return Recorded(id="evt_m", seq=1, stream="run_m", version=1, tenant="t", type="step.dispatched", event=e,
                    actor="m", causation_id=None, correlation_id=None, recorded_at=datetime.now(timezone.utc),
                    hash="")


async def median_ms(fn, runs: int) -> float:
    await fn()   # warm-up: probes, imports, page cache
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


async def main(runs: int) -> None:
    py = interpreter(True)[0]
    for isolation in ("bwrap", "basic"):
        ex = Executor({"script": ScriptStep(isolation=isolation)}, {})
        rec = dispatch("print(1)")

        async def step():
            res = await ex.run(rec)
            assert res.ok and res.output["result"] == 1, res

        async def setup_only():
            async with Sandbox(Limits(), isolation) as sb:
                sb.add_file("input.json", b"{}")
                sb.add_file("main.py", b"print(1)")

        async def spawn_only():
            async with Sandbox(Limits(), isolation) as sb:
                await sb.run(sb.python_argv(sb.add_file("main.py", b"print(1)")), timeout=10)

        print(f"{isolation:5s} execute path (Executor.run)      {await median_ms(step, runs):7.2f} ms")
        print(f"{isolation:5s}   sandbox set-up + tear-down     {await median_ms(setup_only, runs):7.2f} ms")
        print(f"{isolation:5s}   set-up + spawn + exit          {await median_ms(spawn_only, runs):7.2f} ms")

    async def bare():
        await asyncio.to_thread(subprocess.run, [py, "-I", "-S", "-B", "-c", "print(1)"], capture_output=True)

    async def bare_sh():
        await asyncio.to_thread(subprocess.run, ["/bin/sh", "-c", "echo 1"], capture_output=True)

    print(f"bare  {py} -I -S -c 'print(1)'  {await median_ms(bare, runs):7.2f} ms")
    print(f"bare  sh -c 'echo 1'                 {await median_ms(bare_sh, runs):7.2f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
