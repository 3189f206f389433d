"""Shared, pure message types for every service: events, bus messages, subjects, the run fold."""
