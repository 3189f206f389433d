-- The append-only event log: the single source of truth (SPEC §8).
--
-- Ordering choice: appends are serialized on the one-row log_head table, so seq is assigned in
-- commit order and is gapless. A reader following seq (WHERE seq > $last ORDER BY seq) can never
-- skip an event that commits late, because event N+1 cannot be numbered before N committed or
-- rolled back (a rollback frees its numbers for the next appender). The cost is one short lock
-- per append transaction (the lock is taken last, just before commit); see docs/event-log.md.
CREATE TABLE IF NOT EXISTS events (
    seq            bigint      PRIMARY KEY,
    id             text        NOT NULL UNIQUE,
    stream         text        NOT NULL,
    version        integer     NOT NULL,
    tenant         text        NOT NULL,
    type           text        NOT NULL,
    payload        text        NOT NULL,  -- canonical JSON; exactly the bytes the hash covers
    actor          text        NOT NULL,
    causation_id   text,
    correlation_id text,
    recorded_at    timestamptz NOT NULL,
    hash           bytea       NOT NULL,
    CONSTRAINT events_stream_version UNIQUE (stream, version)
);

CREATE TABLE IF NOT EXISTS log_head (
    id   integer PRIMARY KEY CHECK (id = 1),
    seq  bigint  NOT NULL,
    hash bytea   NOT NULL
);
INSERT INTO log_head VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT DO NOTHING;

-- The log is append-only: refuse UPDATE and DELETE outright. (A superuser can still drop the
-- trigger; that is what the hash chain is for.)
CREATE OR REPLACE FUNCTION wf_events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only' USING ERRCODE = 'WF403';
END $$;
DROP TRIGGER IF EXISTS events_immutable ON events;
CREATE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION wf_events_immutable();

-- hash = sha256(previous hash || text), text = the fields below joined by newlines, payload last.
-- recorded_at enters as integer microseconds since the Unix epoch. Mirrored in wf_platform/chain.py.
CREATE OR REPLACE FUNCTION wf_append(p_stream text, p_expected integer, p_tenant text, p_events jsonb)
RETURNS TABLE (o_seq bigint, o_version integer, o_hash bytea)
LANGUAGE plpgsql AS $$
DECLARE
    v_seq  bigint;
    v_hash bytea;
    v_cur  integer;
    v_ver  integer;
    v_at   timestamptz;
    e      jsonb;
BEGIN
    SELECT seq, hash INTO v_seq, v_hash FROM log_head WHERE id = 1 FOR UPDATE;
    SELECT coalesce(max(version), 0) INTO v_cur FROM events WHERE stream = p_stream;
    IF v_cur <> p_expected THEN
        RAISE EXCEPTION 'stream % is at version %, expected %', p_stream, v_cur, p_expected
            USING ERRCODE = 'WF409';
    END IF;
    v_ver := v_cur;
    FOR e IN SELECT * FROM jsonb_array_elements(p_events) LOOP
        v_seq := v_seq + 1;
        v_ver := v_ver + 1;
        v_at := (e->>'recorded_at')::timestamptz;
        v_hash := sha256(v_hash || convert_to(concat_ws(E'\n',
            v_seq::text, e->>'id', p_stream, v_ver::text, p_tenant, e->>'type', e->>'actor',
            coalesce(e->>'causation_id', ''), coalesce(e->>'correlation_id', ''),
            (extract(epoch FROM v_at) * 1000000)::bigint::text, e->>'payload'), 'UTF8'));
        INSERT INTO events (seq, id, stream, version, tenant, type, payload, actor,
                            causation_id, correlation_id, recorded_at, hash)
        VALUES (v_seq, e->>'id', p_stream, v_ver, p_tenant, e->>'type', e->>'payload', e->>'actor',
                e->>'causation_id', e->>'correlation_id', v_at, v_hash);
        o_seq := v_seq; o_version := v_ver; o_hash := v_hash;
        RETURN NEXT;
    END LOOP;
    UPDATE log_head SET seq = v_seq, hash = v_hash WHERE id = 1;
    PERFORM pg_notify('wf_events', v_seq::text);
END $$;
