"""The entry point, URL parsing, lazy import and the contract-suite server hook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import kue
from kue_beanstalk.backend import BeanstalkBackend
from kue_beanstalk.server import SERVER
from kue_beanstalk.settings import BeanstalkSettings
from kue_contract.servers import LocalServer, ServerUnavailable, serve, throwaway


def test_kue_connect_finds_the_backend_through_its_entry_point(
    server: LocalServer, tube: str
) -> None:
    queue = kue.connect(server.url, queue=tube)
    assert isinstance(queue.backend, BeanstalkBackend)
    assert isinstance(queue.backend, kue.Backend)
    job_id = queue.put({"processVideo": 4871})
    job = queue.reserve(timeout=2)
    assert job is not None and job.id == job_id
    job.delete()
    queue.close()


def test_importing_the_plugin_does_not_import_greenstalk() -> None:
    code = (
        "import sys, kue_beanstalk.plugin; "
        "assert 'greenstalk' not in sys.modules, 'greenstalk imported too early'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("beanstalk://example.org:11301", "example.org", 11301),
        ("beanstalk://example.org", "example.org", 11300),
        ("beanstalk://", "127.0.0.1", 11300),
        ("BEANSTALK://[::1]:5", "::1", 5),
    ],
)
def test_urls_name_host_and_port(url: str, host: str, port: int) -> None:
    settings = BeanstalkSettings.from_url(url)
    assert (settings.host, settings.port) == (host, port)


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("redis://x:1", {}, "beanstalk://HOST:PORT"),
        ("beanstalk://x:99999", {}, "cannot read"),
        ("beanstalk://x:1/tube", {}, "no path"),
        ("beanstalk://x:1", {"socket_timeout": 0}, "above 0 seconds"),
        ("beanstalk://x:1", {"socket_timeout": "soon"}, "not a number"),
        ("beanstalk://x:1?connect_timeout=-1", {}, "connect_timeout='-1' .* above 0"),
        ("beanstalk://x:1?tube=a", {}, "unknown beanstalk option 'tube'.*connect_timeout"),
        ("beanstalk://x:1", {"pool_size": 5}, "unknown beanstalk option"),
        ("beanstalk://u:secret@x:1/t", {}, r"u:\*\*\*@x"),
    ],
)
def test_bad_urls_and_options_are_refused_clearly(
    url: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(kue.ConfigError, match=message) as info:
        BeanstalkSettings.from_url(url, options)
    assert "secret" not in str(info.value)


def test_the_contract_server_hook_describes_a_beanstalkd_kue_contract_starts() -> None:
    with throwaway("beanstalk", "local") as server:
        assert server.url.startswith("beanstalk://127.0.0.1:")
        queue = kue.connect(server.url, queue="hook")
        queue.put(b"x")
        assert queue.stats().ready == 1
        queue.close()


def test_an_unknown_server_mode_is_refused() -> None:
    with pytest.raises(ServerUnavailable, match="unknown server mode"):
        serve(SERVER, "cloud")


def test_containers_mode_without_an_engine_says_how_to_get_a_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An engine socket where none listens: what a machine without one looks like.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(ServerUnavailable, match="no container engine answers"), \
            serve(SERVER, "containers"):
        pass


def test_the_url_query_sets_the_timeouts_over_the_configuration() -> None:
    settings = BeanstalkSettings.from_url("beanstalk://x:1?socket_timeout=2.5",
                                 {"socket_timeout": 7, "connect_timeout": "3"})
    assert (settings.socket_timeout, settings.connect_timeout) == (2.5, 3.0)
