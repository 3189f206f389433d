"""Prometheus metrics shared by the services (one registry per process)."""
from prometheus_client import Counter, Gauge, Histogram

RELAY_PUBLISHED = Counter("wf_relay_published_total", "Events published to NATS by the outbox relay")
RELAY_LAG = Gauge("wf_relay_lag_events", "Events committed to the log but not yet published")
EVENTS_APPENDED = Counter("wf_events_appended_total", "Events appended to the log", ["service"])
APPEND_CONFLICTS = Counter("wf_append_conflicts_total", "Optimistic-concurrency conflicts on append", ["service"])
RUNS = Counter("wf_runs_total", "Runs that reached a final status", ["status"])
STEPS = Counter("wf_steps_total", "Step attempts that finished", ["type", "outcome"])
STEP_SECONDS = Histogram("wf_step_seconds", "Step execution time in the runner", ["type"])
DISPATCH_LATENCY = Histogram(
    "wf_dispatch_latency_seconds", "From step.dispatched being recorded to a runner starting it",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INFLIGHT = Gauge("wf_inflight_messages", "Bus messages being handled by this process")
