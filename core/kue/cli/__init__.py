"""Command-line entry points: ``kue-worker``."""
