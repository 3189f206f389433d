"""Orchestrator: folds each run's events and dispatches the steps that are ready."""
