"""agent_task: ask an agent declared in WORKFLOW_AGENTS_FILE (SPEC §6), through the egress guard.

kind `openai` posts a chat completion (system prompt, then the goal with the context as JSON) to
any OpenAI-compatible server; kind `http` posts {"goal", "context", "run_id", "step_id"} and reads
{"output"}. The output is the answer: a string, or JSON when the answer is a JSON object or array
(a ```json fenced block counts). Token usage, when reported, goes to the result's metadata.
"""
import json
import os
import re
from typing import Any, Mapping

from wf_expr.templates import redact

from .. import egress
from ..agents import Agent, AgentBook
from .base import StepContext, StepError, number
from .http_request import invalid

DEFAULT_TIMEOUT = 300.0
EXCERPT = 200
_FENCE = re.compile(r"^```(?:json)?\s*\n(.*?)\n?```$", re.S)
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def default_context(ctx: StepContext) -> dict[str, Any]:
    """The dependencies' outputs, {step_id: output}, from what the orchestrator put in the dispatch."""
    steps = ctx.context.get("steps") or {}
    return {sid: (v.get("output") if isinstance(v, dict) else v) for sid, v in steps.items()}


def parse_answer(text: str) -> Any:
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if body[:1] in ("{", "["):
        try:
            return json.loads(body)
        except ValueError:
            pass
    return text


def user_message(goal: str, context: Any) -> str:
    if context in (None, {}, [], ""):
        return goal
    return f"{goal}\n\nContext (JSON):\n{json.dumps(context, ensure_ascii=False, default=str)}"


class AgentTaskStep:
    type = "agent_task"

    def __init__(self, settings, policy: egress.EgressPolicy | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.policy = policy or egress.EgressPolicy.from_env(settings.egress_allow)
        self.max_bytes = settings.max_response_bytes
        self.book = AgentBook(settings.agents_file)
        self.env = os.environ if env is None else env

    async def execute(self, ctx: StepContext) -> Any:
        c = ctx.config
        agent_id, goal = c.get("agent_id"), c.get("goal")
        if not isinstance(agent_id, str) or not agent_id:
            raise invalid("config.agent_id must be a non-empty string")
        if not isinstance(goal, str) or not goal.strip():
            raise invalid("config.goal must be a non-empty string")
        context = c["context"] if "context" in c else default_context(ctx)
        timeout = ctx.time_limit(number(c, "timeout_seconds", DEFAULT_TIMEOUT))
        agent = self.book.get(agent_id)
        key = self._api_key(agent)
        headers = {**agent.headers, "Idempotency-Key": ctx.idempotency_key}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        ctx.metadata["agent_id"] = agent.id
        try:
            if agent.kind == "openai":
                messages = ([{"role": "system", "content": agent.system_prompt}] if agent.system_prompt else [])
                messages.append({"role": "user", "content": user_message(goal, context)})
                body = {"model": agent.model, "messages": messages, "stream": False, **agent.parameters}
                data = await self._post(agent, headers, body, timeout, ctx)
                return self._chat_answer(agent, data, ctx)
            body = {"goal": goal, "context": context, "run_id": ctx.run_id, "step_id": ctx.step_id}
            data = await self._post(agent, headers, body, timeout, ctx)
            if not isinstance(data, dict) or "output" not in data:
                raise _bad(agent, 'its answer has no "output" field', data)
            self._usage(data.get("usage"), ctx)
            return data["output"]
        except StepError as exc:   # the agent's own key must not come back in an echoed error
            exc.message = redact(exc.message, [key] if key else [])
            exc.args = (exc.message,)
            raise

    def _api_key(self, agent: Agent) -> str | None:
        if not agent.api_key_env:
            return None
        key = self.env.get(agent.api_key_env)
        if not key:
            raise StepError(f"agent '{agent.id}': environment variable {agent.api_key_env} is not set",
                            retryable=False, error_type="agent_config")
        return key

    async def _post(self, agent: Agent, headers: dict, body: dict, timeout: float, ctx: StepContext) -> Any:
        try:
            resp = await egress.safe_request(self.policy, "POST", agent.url, headers=headers, json=body,
                                             max_bytes=self.max_bytes, timeout=timeout, cancel=ctx.cancel)
        except egress.RequestFailed as exc:
            if "timed out" in exc.message:
                raise StepError(f"agent '{agent.id}' did not answer within {timeout:g}s",
                                error_type="timeout") from None
            raise StepError(f"agent '{agent.id}' could not be reached: {exc.message}",
                            error_type="agent_error") from None
        if not 200 <= resp.status_code < 300:
            raise StepError(f"agent '{agent.id}' answered HTTP {resp.status_code}: {_excerpt(resp.text)}",
                            retryable=resp.status_code >= 500 or resp.status_code in (408, 429),
                            error_type="agent_error")
        try:
            return json.loads(resp.body)
        except ValueError:
            raise StepError(f"agent '{agent.id}' returned a response that is not JSON: {_excerpt(resp.text)}",
                            error_type="agent_error") from None

    def _chat_answer(self, agent: Agent, data: Any, ctx: StepContext) -> Any:
        try:
            choice = data["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise _bad(agent, "no choices[0].message.content in its answer", data) from None
        if not isinstance(content, str):
            raise _bad(agent, "choices[0].message.content is not text", data)
        self._usage(data.get("usage"), ctx)
        ctx.metadata["model"] = data.get("model") if isinstance(data.get("model"), str) else agent.model
        if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
            ctx.metadata["finish_reason"] = choice["finish_reason"]
        return parse_answer(content)

    @staticmethod
    def _usage(raw: Any, ctx: StepContext) -> None:
        if isinstance(raw, dict):
            usage = {k: raw[k] for k in USAGE_FIELDS if isinstance(raw.get(k), int) and not isinstance(raw[k], bool)}
            if usage:
                ctx.metadata["usage"] = usage


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return (flat[:EXCERPT] + "…") if len(flat) > EXCERPT else (flat or "(empty body)")


def _bad(agent: Agent, what: str, data: Any) -> StepError:
    return StepError(f"agent '{agent.id}' returned an unusable answer: {what}: "
                     f"{_excerpt(json.dumps(data, default=str))}", error_type="agent_error")
