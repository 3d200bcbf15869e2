"""The Lua scripts, loaded once per server and run by SHA1.

Each script is ``lua/common.lua`` followed by ``lua/<name>.lua``. A script runs with EVALSHA;
a NOSCRIPT reply (the server restarted, failed over, or ran SCRIPT FLUSH) makes it load the
script and run it again, which is safe because a NOSCRIPT reply means nothing ran.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from kue_redis.lane import ScriptLane

__all__ = [
    "SCRIPT_NAMES", "Client", "Runner", "Script", "ScriptArg", "load_scripts", "run_pipelined",
]

#: A client of one server (or primary) or of a Redis Cluster.
Client = redis.Redis | RedisCluster
#: What a script runs on: a client, or a lane of one server's pool (same two methods).
Runner = Client | ScriptLane

#: Every script the backend runs, by file name under ``lua/``.
SCRIPT_NAMES = (
    "put", "put_many", "reserve", "head", "delete", "delete_reserve", "release", "bury", "touch",
    "kick", "peek", "stats", "complete", "complete_reserve", "update_record", "read_record",
    "job_info", "watch_record", "unwatch_record", "buried", "kick_job", "put_unique", "claim",
    "settle_many",
)

ScriptArg = str | bytes | int


@dataclass(frozen=True)
class Script:
    """One Lua script: its name, full source and SHA1."""

    name: str
    source: str
    sha: str

    def run(self, client: Runner, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        """Run by SHA; on NOSCRIPT load the source and run again."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)


def _read(name: str) -> str:
    return resources.files("kue_redis").joinpath("lua", f"{name}.lua").read_text("utf-8")


def load_scripts() -> dict[str, Script]:
    """Read every script from the package, each with the common helpers in front."""
    common = _read("common")
    scripts = {}
    for name in SCRIPT_NAMES:
        source = f"{common}\n-- {name}.lua\n{_read(name)}"
        sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()
        scripts[name] = Script(name, source, sha)
    return scripts


def run_pipelined(
    client: Client, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[ScriptArg]]]
) -> list[Any]:
    """Run ``script`` once per (keys, args) in one round trip; results in order.

    On NOSCRIPT the script is loaded and the whole batch sent again, so every call in a batch
    must be idempotent (put is: it is a no-op for an id that exists). redis-py refuses EVALSHA
    in a cluster pipeline, so on a cluster the calls go one after the other.
    """
    if isinstance(client, RedisCluster):
        return [script.run(client, keys, args) for keys, args in calls]
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        results: list[Any] = pipe.execute(raise_on_error=False)
        if attempt == 1 and any(isinstance(r, NoScriptError) for r in results):
            client.script_load(script.source)
            continue
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results
    raise AssertionError("unreachable: the second attempt returns or raises")
