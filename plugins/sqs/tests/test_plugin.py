"""Registration: the entry point, lazy import of boto3, the contract-server hook."""

from __future__ import annotations

import subprocess
import sys

import pytest

import kue
from kue.plugins import backend_entry_points
from kue_sqs.backend import SqsBackend


def test_the_entry_point_is_named_after_the_url_scheme() -> None:
    assert backend_entry_points()["sqs"].value == "kue_sqs.plugin"


def test_importing_the_plugin_does_not_import_boto3() -> None:
    code = "import kue, kue_sqs.plugin, sys; assert 'boto3' not in sys.modules, 'boto3 imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_connect_opens_an_sqs_queue(moto_url: str) -> None:
    with kue.connect(moto_url, queue="via-connect") as queue:
        assert isinstance(queue.backend, SqsBackend)
        job_id = queue.put({"processVideo": 4871})
        job = queue.reserve(timeout=5)
        assert job is not None and job.id == job_id and job.json() == {"processVideo": 4871}
        job.delete()


def test_the_contract_server_hook_serves_only_sqs() -> None:
    from kue_sqs.plugin import kue_contract_server

    assert kue_contract_server(name="redis") is None


def test_containers_without_an_engine_say_how_to_get_a_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import kue_contract.servers as servers
    from kue_sqs.server import SERVER

    monkeypatch.setattr(servers, "engine_answers", lambda: False)
    with pytest.raises(servers.ServerUnavailable, match="--kue-servers=local"), \
            servers.serve(SERVER, "containers"):
        pass
