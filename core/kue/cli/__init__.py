"""Command-line entry points: ``kue-worker`` (run jobs) and ``kue`` (look at and manage queues)."""
