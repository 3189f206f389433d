"""The step types this runner executes, listed explicitly (STYLE §8).

condition, loop and wait are decided by the orchestrator and never reach a runner.
"""
from .steps.base import StepExecutor


def build_registry(settings) -> dict[str, StepExecutor]:
    from . import egress
    from .steps.agent_task import AgentTaskStep
    from .steps.http_request import HttpRequestStep
    from .steps.script import ScriptStep
    from .steps.webhook import WebhookStep

    policy = egress.EgressPolicy.from_env(settings.egress_allow)   # one policy: parsed once, shared
    executors: list[StepExecutor] = [
        HttpRequestStep(settings, policy),
        WebhookStep(settings, policy),
        ScriptStep(),
        AgentTaskStep(settings, policy),
    ]
    return {e.type: e for e in executors}
