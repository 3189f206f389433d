-- Projections: disposable tables rebuilt from the log (wfctl audit replay).
CREATE TABLE IF NOT EXISTS api_keys (
    key_id     text PRIMARY KEY,
    tenant     text NOT NULL,
    name       text NOT NULL,
    scopes     text[] NOT NULL,
    key_hash   text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    revoked    boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS workflows (
    id             text PRIMARY KEY,
    tenant         text NOT NULL,
    name           text NOT NULL,
    description    text NOT NULL DEFAULT '',
    version        integer NOT NULL,
    status         text NOT NULL,
    trigger_type   text NOT NULL,
    tags           text[] NOT NULL DEFAULT '{}',
    definition     jsonb NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    stream_version integer NOT NULL,
    deleted        boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS workflows_tenant ON workflows (tenant, created_at DESC) WHERE NOT deleted;

CREATE TABLE IF NOT EXISTS workflow_versions (
    workflow_id    text NOT NULL,
    version        integer NOT NULL,
    definition     jsonb NOT NULL,
    change_summary text NOT NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

CREATE TABLE IF NOT EXISTS runs (
    id             text PRIMARY KEY,
    tenant         text NOT NULL,
    workflow_id    text NOT NULL,
    status         text NOT NULL,
    created_at     timestamptz NOT NULL,
    doc            jsonb NOT NULL,   -- the SPEC §5 run object, rendered from the fold
    stream_version integer NOT NULL,
    deleted        boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS runs_workflow ON runs (workflow_id, created_at DESC) WHERE NOT deleted;

-- Idempotency-Key records (SPEC §1): a projection of the events that carry the key.
CREATE TABLE IF NOT EXISTS idempotency (
    tenant       text NOT NULL,
    scope        text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    resource_id  text NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant, scope, key)
);
