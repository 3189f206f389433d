"""Adapters shared by every service: Postgres event log, outbox relay, NATS bus, ops endpoints."""
