"""The built-in backends, registered through kue's own ``kue.backends`` entry points."""
