"""The step types this runner executes, listed explicitly (STYLE §8)."""
from .steps.base import StepExecutor


def build_registry(settings) -> dict[str, StepExecutor]:
    from .steps.http_request import HttpRequestStep
    from .steps.script import ScriptStep

    executors: list[StepExecutor] = [
        HttpRequestStep(settings),
        ScriptStep(),
    ]
    return {e.type: e for e in executors}
