-- Outbox relay position and lease. Not a projection: it records how far NATS has been fed.
CREATE TABLE IF NOT EXISTS relay_checkpoint (
    name        text PRIMARY KEY,
    seq         bigint NOT NULL DEFAULT 0,
    holder      text,
    lease_until timestamptz
);
INSERT INTO relay_checkpoint (name) VALUES ('nats') ON CONFLICT DO NOTHING;
