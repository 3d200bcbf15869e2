from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

import kue
from kue.backend import PutItem, QueueStats
from kue.errors import BackendUnavailable, ConfigError, JobTooBig, ReservationLost
from kue_contract.servers import ServerUnavailable, free_port, serve
from kue_redis.backend import RedisBackend
from kue_redis.keys import QueueKeys
from kue_redis.server import SERVER
from kue_redis.settings import parse_settings

from redis_support import blocked_clients, wait_until

PASSWORD = "s3cr3t-pw"


def test_a_refused_connection_raises_backend_unavailable_with_the_password_masked() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    backend = RedisBackend(url)
    for call in (
        lambda: backend.put("q", b"x", 1, 0, 5),
        lambda: backend.put_many("q", [PutItem(b"x")]),
        lambda: backend.reserve(["q"], 1),
        lambda: backend.stats("q"),
    ):
        with pytest.raises(BackendUnavailable) as info:
            call()
        message = str(info.value)
        assert PASSWORD not in message
        assert ":***@127.0.0.1:" in message
        assert PASSWORD not in info.value.url


def test_a_password_url_works_and_a_wrong_password_is_reported_masked() -> None:
    spec = replace(SERVER, url=f"redis://:{PASSWORD}@{{host}}:{{port}}/0")
    with serve(spec, "local", "--requirepass", PASSWORD) as server:
        url = server.url
        assert PASSWORD in url
        queue = kue.connect(url, queue="secret")
        job_id = queue.put({"n": 1})
        job = queue.reserve(timeout=1)
        assert job is not None and job.id == job_id
        job.delete()
        queue.close()
        wrong = RedisBackend(url.replace(PASSWORD, "not-it"))
        with pytest.raises(BackendUnavailable) as info:
            wrong.put("q", b"x", 1, 0, 5)
        assert "not-it" not in str(info.value)
        anonymous = RedisBackend(url.replace(f":{PASSWORD}@", ""))
        with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1"):
            anonymous.put("q", b"x", 1, 0, 5)


def _tls_files(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_rediss_urls_talk_tls(tmp_path: Path) -> None:
    if subprocess.run(["openssl", "version"], capture_output=True).returncode != 0:
        pytest.fail("openssl is needed to make the test certificate")
    cert, key = _tls_files(tmp_path)
    spec = replace(
        SERVER, args=("--tls-port", *SERVER.args[1:]), ready=None,  # the port: a PING needs TLS
        url=f"rediss://{{host}}:{{port}}/0?ssl_ca_certs={cert}&ssl_check_hostname=false",
    )
    with serve(spec, "local", "--port", "0", "--tls-cert-file", str(cert), "--tls-key-file",
               str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no") as server:
        url = server.url
        queue = kue.connect(url, queue="tls")
        assert queue.backend.capabilities.name == "redis"
        queue.put(b"over tls")
        job = queue.reserve(timeout=1)
        assert job is not None and job.body == b"over tls"
        job.delete()
        queue.close()


def test_a_forked_child_opens_its_own_connections(backend: RedisBackend) -> None:
    backend.put("q", b"from parent", 1, 0, 5)
    # Every connection the parent has open: the script lane's and the client's.
    parent_ids = {int(c["id"]) for c in backend.client.client_list()}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        status = 1
        try:
            os.close(read)
            child_id = backend.client.client_id()
            job = backend.reserve(["q"], 1)
            ok = job is not None and job.body == b"from parent" and child_id not in parent_ids
            if job is not None:
                backend.delete(job)
            backend.put("q", b"from child", 1, 0, 5)
            os.write(write, b"ok" if ok else b"bad")
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read()
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == b"ok"
    # The parent's connections are still open (the child closed none of them), and work.
    assert parent_ids <= {int(c["id"]) for c in backend.client.client_list()}
    job = backend.reserve(["q"], 1)
    assert job is not None and job.body == b"from child"
    backend.delete(job)


def test_threads_share_one_backend(backend: RedisBackend) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ids = set(backend.put_many("q", [PutItem(str(i).encode()) for i in range(200)]))

    def drain(_: int) -> list[str]:
        got = []
        while (job := backend.reserve(["q"], 0)) is not None:
            backend.delete(job)
            got.append(job.id)
        return got

    with ThreadPoolExecutor(4) as pool:
        seen = [i for part in pool.map(drain, range(4)) for i in part]
    assert sorted(seen) == sorted(ids)


def test_max_body_comes_from_the_url(redis_url: str) -> None:
    backend = RedisBackend(f"{redis_url}?max_body=10")
    assert backend.capabilities.max_body == 10
    with pytest.raises(JobTooBig):
        backend.put("q", b"x" * 11, 1, 0, 5)
    assert RedisBackend(redis_url).capabilities.max_body == 64 * 2**20
    with pytest.raises(ConfigError, match="max_body"):
        RedisBackend(f"{redis_url}?max_body=lots")


def test_both_schemes_load_the_same_plugin_module() -> None:
    from kue.plugins import backend_entry_points

    eps = backend_entry_points()
    assert eps["redis"].value == eps["rediss"].value == "kue_redis.plugin"


def test_importing_the_plugin_does_not_import_redis() -> None:
    code = "import sys, kue_redis.plugin; sys.exit('redis' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_containers_mode_without_an_engine_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kue_contract import servers

    monkeypatch.setattr(servers, "engine_answers", lambda: False)
    with pytest.raises(ServerUnavailable, match="no container engine answers"), \
            serve(SERVER, "containers"):
        pass


def test_commands_after_the_server_dropped_every_connection_are_resent(
    backend: RedisBackend, redis_url: str
) -> None:
    import redis

    backend.put("q", b"before", 1, 0, 5)
    killer = redis.Redis.from_url(redis_url)
    assert killer.client_kill_filter(_type="normal", skipme=True) >= 1
    killer.close()
    backend.put("q", b"after", 1, 0, 5)
    assert backend.stats("q").ready == 2



def test_threads_that_end_give_their_connections_back(backend: RedisBackend) -> None:
    import threading

    # More short-lived threads than redis-py's pool allows connections (100): each thread's
    # script connection must go back to the pool when the thread ends.
    errors: list[BaseException] = []

    def put_once() -> None:
        try:
            backend.put("q", b"x", 1, 0, 5)
        except BaseException as exc:
            errors.append(exc)

    for _ in range(150):
        thread = threading.Thread(target=put_once)
        thread.start()
        thread.join()
    assert errors == []
    assert backend.stats("q").ready == 150
    assert len(backend.client.client_list()) < 10


def test_a_thread_blocked_in_reserve_waits_on_its_own_script_connection(
    backend: RedisBackend,
) -> None:
    import threading

    backend.put("warm", b"x", 1, 0, 5)  # this thread's connection, opened before counting
    before = len(backend.client.client_list())
    got: list[bytes] = []

    def take() -> None:
        job = backend.reserve(["q"], 10)
        if job is not None:
            got.append(job.body)
            backend.delete(job)

    threads = [threading.Thread(target=take) for _ in range(20)]
    for thread in threads:
        thread.start()
    # Every thread blocks in BLPOP on the one connection it also runs its scripts on.
    client = backend.client
    assert isinstance(client, redis.Redis)
    wait_until(lambda: blocked_clients(client) == 20)
    assert len(backend.client.client_list()) == before + 20
    for n in range(20):
        backend.put("q", b"job %d" % n, 1, 0, 5)
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(got) == sorted(b"job %d" % n for n in range(20))


class _LoseOneReply:
    """Make the lane's next call run on the server and then lose its reply, once.

    Every script is loaded first, so that call is the script itself, not a SCRIPT LOAD.
    """

    def __init__(self, backend: RedisBackend, monkeypatch: pytest.MonkeyPatch) -> None:
        assert backend._lane is not None
        for script in backend._scripts.values():
            backend._lane.script_load(script.source)
        real = backend._lane._call
        self.armed = True

        def call(conn: Any, packed: Any) -> Any:
            reply = real(conn, packed)
            if self.armed:
                self.armed = False
                conn.disconnect()
                raise redis.ConnectionError("reply lost on its way (test)")
            return reply

        monkeypatch.setattr(backend._lane, "_call", call)


def test_a_delete_whose_reply_was_lost_and_resent_succeeds(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.put("acked", b"x", 0, 0, 60)
    job = backend.reserve(["acked"], 0)
    assert job is not None
    lose = _LoseOneReply(backend, monkeypatch)
    backend.delete(job)  # ran twice on the server: the second run found no such job
    assert not lose.armed
    assert backend.stats("acked").total == 0
    with pytest.raises(ReservationLost):  # no resend now: a stale ack is still refused
        backend.delete(job)


def test_a_fused_delete_whose_reply_was_lost_still_reserves_the_next_job(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    for body in (b"first", b"second", b"third"):
        backend.put("fused", body, 0, 0, 60)
    job = backend.reserve(["fused"], 0)
    assert job is not None
    _LoseOneReply(backend, monkeypatch)
    nxt = backend.delete_and_reserve(job, ["fused"], 0)
    # The lost first run reserved "second"; the resend's own reserve takes "third".
    assert nxt is not None and nxt.body == b"third"
    assert backend.stats("fused") == QueueStats(reserved=2)


def test_kick_with_a_count_over_luas_exact_integers_moves_what_there_is(
    backend: RedisBackend,
) -> None:
    for body in (b"a", b"b"):
        backend.put("kick", body, 0, 0, 60)
        job = backend.reserve(["kick"], 0)
        assert job is not None
        backend.bury(job, None)
    assert backend.kick("kick", 10**17) == 2
    backend.put("kick", b"later", 0, 600, 60)
    assert backend.kick("kick", 2**64) == 1


@pytest.mark.parametrize("slot", ["}x", "{shop}", "a.b", "-x", "x" * 49])
def test_a_slot_outside_the_queue_name_rule_is_refused_naming_it(slot: str) -> None:
    with pytest.raises(ConfigError, match=r"slot=.*queue-name rule, 1 to 48 ASCII letters"):
        parse_settings(f"redis://127.0.0.1:1/0?slot={quote(slot)}")


def test_a_slot_puts_its_tag_before_every_queue_name_in_the_keys() -> None:
    settings = parse_settings("redis://127.0.0.1:1/0?slot=shop&prefix=p")
    assert settings.slot == "shop"
    assert QueueKeys.of("p", "mail", settings.slot).ready == "p:{{shop}mail}:ready"
    assert QueueKeys.of("p", "mail").ready == "p:{mail}:ready"
