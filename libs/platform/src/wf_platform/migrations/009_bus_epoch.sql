-- Which incarnation of the JetStream stream the log was last fed into (its creation time). When the
-- broker comes back with a new stream (store lost), the first orchestrator to notice swaps this
-- value and runs the reconciliation sweep (services/orchestrator/.../reconcile.py).
ALTER TABLE relay_checkpoint ADD COLUMN IF NOT EXISTS bus_epoch text;
