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

# Queue depth of the shared JetStream consumers, refreshed by queue_metrics.QueueMetrics in every
# orchestrator, step-runner and scheduler replica. Cluster-wide figures: every replica reports the
# same numbers, so aggregate with max(), never sum().
QUEUE_PENDING = Gauge("wf_queue_pending_messages",
                      "Messages in the stream for this consumer not yet delivered to any replica", ["consumer"])
QUEUE_ACK_PENDING = Gauge("wf_queue_ack_pending_messages",
                          "Messages delivered to a replica and not yet acked (being worked on, or lost with a "
                          "dead replica until ack wait expires)", ["consumer"])
QUEUE_REDELIVERED = Gauge("wf_queue_redelivered_messages",
                          "Messages not yet acked that have been delivered more than once", ["consumer"])
QUEUE_WAITING_PULLS = Gauge("wf_queue_waiting_pulls",
                            "Pull requests waiting on the consumer, i.e. replicas idle and asking for work",
                            ["consumer"])
STREAM_MESSAGES = Gauge("wf_stream_messages", "Messages held in the JetStream stream", ["stream"])
STREAM_BYTES = Gauge("wf_stream_bytes", "Bytes held in the JetStream stream", ["stream"])
STREAM_REPLICAS = Gauge("wf_stream_replicas", "Replicas the stream is configured with (NATS_STREAM_REPLICAS)",
                        ["stream"])
STREAM_REPLICAS_CURRENT = Gauge("wf_stream_replicas_current",
                                "Stream replicas that are online and caught up, the leader included", ["stream"])
# The relay's backlog as Postgres sees it (log head minus the relay checkpoint), refreshed by the same
# poller in every replica that has a database: right even while NATS is down or no relay is active,
# unlike wf_relay_lag_events, which only the active relay updates after a successful publish.
RELAY_BACKLOG = Gauge("wf_relay_backlog_events", "Events committed to the log and not yet published to NATS "
                      "(log head seq minus the relay checkpoint)")
RELAY_BACKLOG_AGE = Gauge("wf_relay_backlog_age_seconds",
                          "Age of the oldest committed event not yet published (0 when none)")
RELAY_LEASE_HELD = Gauge("wf_relay_lease_held", "1 when some replica holds a live relay lease, 0 when none does")
METRICS_POLL_OK = Gauge("wf_metrics_poll_ok",
                        "1 when the last poll of this source succeeded, 0 when it failed (its figures are stale)",
                        ["source"])
