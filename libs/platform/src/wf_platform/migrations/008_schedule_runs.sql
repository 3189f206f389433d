-- Scheduler support (issue 7).
--
-- Overlap policies ask "is a run this schedule started still going?". Scheduled runs carry their
-- schedule id in the run object's metadata; the index holds only unfinished runs, so it stays
-- small however many finished runs pile up. Queries must repeat the predicate literally.
CREATE INDEX IF NOT EXISTS runs_schedule_active ON runs ((doc->'metadata'->>'schedule_id'))
    WHERE status NOT IN ('completed', 'failed', 'cancelled') AND NOT deleted;

-- overlap "buffer_one": the one fire held back until the schedule's previous run finishes.
ALTER TABLE schedules ADD COLUMN IF NOT EXISTS buffered_fire_at timestamptz;
CREATE INDEX IF NOT EXISTS schedules_buffered ON schedules (id)
    WHERE buffered_fire_at IS NOT NULL AND enabled AND NOT deleted;
