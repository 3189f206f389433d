-- Orchestration: admission (concurrency slots, FIFO queue) and durable timers (issue 4).
--
-- run_schedule is a projection of each run's state, written by upsert_run in the transaction
-- of every append to the run's stream (so it is exactly as durable and as current as the log):
--   phase   queued (waiting for a slot) | holding (running or paused: holds a slot) | done
--   pos     arrival order of the run (assigned when its run.created is projected)
--   due_at  the run's next durable timer (run_state.next_wakeup), NULL when none
-- A slot is therefore held exactly while the log says the run is running or paused: a crash
-- can leave no slot behind and a cancel frees it in the same transaction. claimed_until is a
-- soft lease so replicas polling for due timers rarely tick the same run twice; correctness
-- never depends on it (the run stream's expected version decides).
CREATE TABLE IF NOT EXISTS run_schedule (
    run_id         text PRIMARY KEY,
    tenant         text NOT NULL,
    workflow_id    text NOT NULL,
    phase          text NOT NULL,
    wf_cap         integer,            -- the pinned definition's max_concurrent_runs
    pos            bigserial,
    due_at         timestamptz,
    claimed_until  timestamptz,
    stream_version integer NOT NULL
);
CREATE INDEX IF NOT EXISTS run_schedule_queue ON run_schedule (pos) WHERE phase = 'queued';
CREATE INDEX IF NOT EXISTS run_schedule_holding ON run_schedule (workflow_id) WHERE phase = 'holding';
CREATE INDEX IF NOT EXISTS run_schedule_due ON run_schedule (due_at) WHERE due_at IS NOT NULL;

-- One row whose lock serializes admissions (only admissions: other appends never take it).
CREATE TABLE IF NOT EXISTS admission (
    id integer PRIMARY KEY CHECK (id = 1)
);
INSERT INTO admission VALUES (1) ON CONFLICT DO NOTHING;

-- Who may start now, oldest first: queued runs ranked by arrival within their workflow, each
-- workflow contributing no more than its free max_concurrent_runs, cut at the free global slots
-- (p_limit = WORKFLOW_MAX_CONCURRENT_RUNS, deployment-wide). A run of a workflow at its cap
-- does not hold back a newer run of another workflow.
CREATE OR REPLACE FUNCTION wf_admissible(p_limit integer) RETURNS TABLE (run_id text)
LANGUAGE sql STABLE AS $$
    WITH held AS (
        SELECT workflow_id, count(*) AS n FROM run_schedule WHERE phase = 'holding' GROUP BY workflow_id
    ), queued AS (
        SELECT q.run_id, q.pos, q.workflow_id, q.wf_cap,
               row_number() OVER (PARTITION BY q.workflow_id ORDER BY q.pos) AS rank
        FROM run_schedule q WHERE q.phase = 'queued'
    )
    SELECT queued.run_id FROM queued LEFT JOIN held USING (workflow_id)
    WHERE queued.wf_cap IS NULL OR queued.rank <= queued.wf_cap - coalesce(held.n, 0)
    ORDER BY queued.pos
    LIMIT greatest(0, p_limit - (SELECT coalesce(sum(n), 0) FROM held))
$$;

-- Called by the orchestrator inside the transaction that appends a run's run.started, before
-- its projection is written. Under the admission lock it admits the run only if it is the head
-- of wf_admissible(p_limit), evaluated on committed state: a free slot exists and no older run
-- that could take it is waiting, so runs start strictly in arrival order. Otherwise it raises
-- WF429 and the whole append rolls back (the run stays queued). Two admissions can't both take
-- the last slot, nor start out of order: the second waits for the lock until the first
-- committed, and each statement in this function sees what committed before it started.
CREATE OR REPLACE FUNCTION wf_admit(p_run text, p_limit integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM admission WHERE id = 1 FOR UPDATE;
    IF EXISTS (SELECT 1 FROM run_schedule WHERE run_id = p_run AND phase = 'holding') THEN
        RETURN;
    END IF;
    IF (SELECT a.run_id FROM wf_admissible(p_limit) a LIMIT 1) IS DISTINCT FROM p_run THEN
        RAISE EXCEPTION 'run % cannot start yet: no free slot, or an older run goes first', p_run
            USING ERRCODE = 'WF429';
    END IF;
END $$;
