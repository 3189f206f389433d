"""A pinned workflow definition parsed once into what the rules need: the step graph and policies.

Branch targets of a `condition` step are treated as depending on it (SPEC §6: the branch not
taken is skipped), so readiness, trigger rules and "downstream of" all see one graph.
Definitions were validated by the gateway; this parser still tolerates odd values (defaults
instead of errors) because a decision function must never raise on recorded history.
"""
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from wf_contracts.run_state import iteration_of


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    backoff_seconds: float = 1.0
    backoff_multiplier: float = 2.0
    max_backoff_seconds: float = 300.0

    def delay(self, failed_attempt: int, jitter: float) -> float:
        """Exponential backoff for the attempt after `failed_attempt`, times a jitter in [0.8, 1.2)."""
        base = self.backoff_seconds * self.backoff_multiplier ** max(0, failed_attempt - 1)
        return round(min(self.max_backoff_seconds, base * (0.8 + 0.4 * jitter)), 3)


@dataclass(frozen=True)
class StepDef:
    id: str
    type: str
    config: dict[str, Any]
    deps: tuple[str, ...]                      # depends_on plus conditions that branch to it
    trigger_rule: str = "all_success"
    if_expr: str | None = None
    on_error: str = "fail"
    retry: RetryPolicy = RetryPolicy()
    timeout_seconds: float | None = None
    branches: tuple[tuple[str, str], ...] = ()  # (condition id, "then" | "else") naming this step

    @property
    def body(self) -> tuple[str, dict[str, Any]]:
        """A loop's body: (type, config)."""
        b = self.config.get("step") if isinstance(self.config.get("step"), dict) else {}
        cfg = b.get("config") if isinstance(b.get("config"), dict) else {}
        return str(b.get("type", "")), cfg


@dataclass
class Plan:
    steps: "OrderedDict[str, StepDef]"
    timeout_seconds: float | None
    dependents: dict[str, list[str]] = field(default_factory=dict)

    def unit(self, unit_id: str) -> StepDef:
        """The definition governing a step or a loop iteration (the loop's policies)."""
        it = iteration_of(unit_id)
        return self.steps[it[0] if it else unit_id]

    def downstream(self, step_id: str) -> list[str]:
        """Every step that transitively depends on step_id, in definition order."""
        seen: set[str] = set()
        todo = [step_id]
        while todo:
            for d in self.dependents.get(todo.pop(), ()):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return [s for s in self.steps if s in seen]


def _num(v: Any, default: float | None) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default


def _retry(raw: Any) -> RetryPolicy:
    if not isinstance(raw, dict):
        return RetryPolicy()
    d = RetryPolicy()
    attempts = raw.get("max_attempts", 1)
    return RetryPolicy(
        max_attempts=attempts if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts >= 1 else 1,
        backoff_seconds=_num(raw.get("backoff_seconds"), d.backoff_seconds),
        backoff_multiplier=_num(raw.get("backoff_multiplier"), d.backoff_multiplier),
        max_backoff_seconds=_num(raw.get("max_backoff_seconds"), d.max_backoff_seconds),
    )


def parse(definition: dict[str, Any]) -> Plan:
    raw_steps = [s for s in definition.get("steps", []) if isinstance(s, dict) and isinstance(s.get("id"), str)]
    ids = {s["id"] for s in raw_steps}
    extra: dict[str, list[str]] = {}
    branches: dict[str, list[tuple[str, str]]] = {}
    for s in raw_steps:
        if s.get("type") != "condition" or not isinstance(s.get("config"), dict):
            continue
        for arm in ("then", "else"):
            for target in s["config"].get(arm) or []:
                if target in ids and target != s["id"]:
                    extra.setdefault(target, []).append(s["id"])
                    branches.setdefault(target, []).append((s["id"], arm))
    steps: OrderedDict[str, StepDef] = OrderedDict()
    for s in raw_steps:
        deps = [d for d in (s.get("depends_on") or []) if d in ids]
        deps += [c for c in extra.get(s["id"], []) if c not in deps]
        cond = s.get("if")
        steps[s["id"]] = StepDef(
            id=s["id"], type=str(s.get("type", "")),
            config=s.get("config") if isinstance(s.get("config"), dict) else {},
            deps=tuple(deps), trigger_rule=s.get("trigger_rule") or "all_success",
            if_expr=cond if isinstance(cond, str) and cond.strip() else None,
            on_error=s.get("on_error") or "fail", retry=_retry(s.get("retry")),
            timeout_seconds=_num(s.get("timeout_seconds"), None), branches=tuple(branches.get(s["id"], ())),
        )
    dependents: dict[str, list[str]] = {}
    for sd in steps.values():
        for d in sd.deps:
            dependents.setdefault(d, []).append(sd.id)
    return Plan(steps=steps, timeout_seconds=_num(definition.get("timeout_seconds"), None), dependents=dependents)


_CACHE: "OrderedDict[int, tuple[dict, Plan]]" = OrderedDict()
_CACHE_SIZE = 4096


def plan_for(definition: dict[str, Any]) -> Plan:
    """Memoized parse. Keyed by object identity, holding the definition so the id stays unique;
    a run's definition object is shared by every state folded from it."""
    key = id(definition)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is definition:
        _CACHE.move_to_end(key)
        return hit[1]
    plan = parse(definition)
    _CACHE[key] = (definition, plan)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return plan
