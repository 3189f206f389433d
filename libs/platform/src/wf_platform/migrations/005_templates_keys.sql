-- Tenant templates (builtin ones ship with the gateway and are not stored), and lookups the
-- keys and idempotency endpoints need. Projections: rebuilt from the log like the others.
CREATE TABLE IF NOT EXISTS templates (
    id             text PRIMARY KEY,
    tenant         text NOT NULL,
    name           text NOT NULL,
    description    text NOT NULL DEFAULT '',
    category       text NOT NULL,
    definition     jsonb NOT NULL,
    created_at     timestamptz NOT NULL,
    stream_version integer NOT NULL,
    deleted        boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS templates_tenant ON templates (tenant, created_at DESC) WHERE NOT deleted;

CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant, created_at DESC);

-- Unfinished runs of a workflow block its deletion (SPEC §3): found without scanning its history.
CREATE INDEX IF NOT EXISTS runs_workflow_status ON runs (workflow_id, status) WHERE NOT deleted;
