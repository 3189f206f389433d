"""Stateless step-runner: executes dispatched steps and replies with results."""
