"""kue's Redis backend, ``redis://`` and ``rediss://``.

The plugin module is :mod:`kue_redis.plugin`; the backend is
:class:`kue_redis.backend.RedisBackend` and its key layout is described in
:mod:`kue_redis.keys`. Importing this package does not import redis-py: that happens only
when a queue is opened.
"""

from __future__ import annotations

__all__: list[str] = []
