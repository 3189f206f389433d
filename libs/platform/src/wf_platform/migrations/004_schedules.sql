CREATE TABLE IF NOT EXISTS schedules (
    id              text PRIMARY KEY,
    tenant          text NOT NULL,
    workflow_id     text NOT NULL,
    cron_expression text NOT NULL,
    timezone        text NOT NULL,
    input_data      jsonb NOT NULL,
    enabled         boolean NOT NULL,
    overlap         text NOT NULL DEFAULT 'allow',
    catchup         text NOT NULL DEFAULT 'latest',
    next_run_at     timestamptz,
    last_run_at     timestamptz,
    created_at      timestamptz NOT NULL,
    stream_version  integer NOT NULL,
    deleted         boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_run_at) WHERE enabled AND NOT deleted;
CREATE INDEX IF NOT EXISTS schedules_workflow ON schedules (workflow_id) WHERE NOT deleted;
