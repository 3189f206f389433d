"""Agent definitions from the JSON file named by WORKFLOW_AGENTS_FILE (SPEC §6 agent_task).

    {"agent_123": {"kind": "openai", "base_url": "http://host:11434/v1", "model": "llama3",
                   "api_key_env": "OPENAI_API_KEY", "system_prompt": "...",
                   "temperature": 0.2, "max_tokens": 512},
     "agent_9": {"kind": "http", "url": "https://agents.example/run", "api_key_env": "AGENT9_KEY",
                 "headers": {"x-team": "data"}}}

The file is re-read when it changes (mtime/size), so agents can be added without a restart. A bad
entry fails only the steps that use it, with a message naming what is wrong.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from .steps.base import StepError

KINDS = ("openai", "http")


@dataclass(frozen=True)
class Agent:
    id: str
    kind: str
    url: str                          # http: the endpoint; openai: <base_url>/chat/completions
    model: str = ""
    system_prompt: str = ""
    api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)   # temperature, max_tokens


def _config_error(agent_id: str, what: str) -> StepError:
    return StepError(f"agent '{agent_id}' is misconfigured in WORKFLOW_AGENTS_FILE: {what}",
                     retryable=False, error_type="agent_config")


def parse_agent(agent_id: str, raw: Any) -> Agent:
    if not isinstance(raw, dict):
        raise _config_error(agent_id, "its entry must be an object")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise _config_error(agent_id, f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    strings = {k: raw.get(k) for k in ("base_url", "url", "model", "system_prompt", "api_key_env")}
    for k, v in strings.items():
        if v is not None and not isinstance(v, str):
            raise _config_error(agent_id, f"'{k}' must be a string")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise _config_error(agent_id, "'headers' must be an object of strings")
    if kind == "openai":
        if not strings["base_url"] or not strings["model"]:
            raise _config_error(agent_id, "kind 'openai' needs 'base_url' and 'model'")
        url = strings["base_url"].rstrip("/") + "/chat/completions"
    else:
        if not strings["url"]:
            raise _config_error(agent_id, "kind 'http' needs 'url'")
        url = strings["url"]
    params = {k: raw[k] for k in ("temperature", "max_tokens") if raw.get(k) is not None}
    return Agent(agent_id, kind, url, strings["model"] or "", strings["system_prompt"] or "",
                 strings["api_key_env"] or None, headers, params)


class AgentBook:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, Any] = {}

    def get(self, agent_id: str) -> Agent:
        if not self.path:
            raise StepError(f"unknown agent '{agent_id}' (WORKFLOW_AGENTS_FILE is not set)",
                            retryable=False, error_type="unknown_agent")
        entries = self._load()
        if agent_id not in entries:
            raise StepError(f"unknown agent '{agent_id}'", retryable=False, error_type="unknown_agent")
        return parse_agent(agent_id, entries[agent_id])

    def _load(self) -> dict[str, Any]:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                with open(self.path, encoding="utf-8") as f:
                    entries = json.load(f)
                if not isinstance(entries, dict):
                    raise ValueError("the file must hold a JSON object of agents")
                self._entries, self._stamp = entries, stamp
        except (OSError, ValueError) as exc:
            raise StepError(f"cannot read WORKFLOW_AGENTS_FILE: {exc}", retryable=False,
                            error_type="agent_config") from None
        return self._entries
