"""The web app example end to end: a request queues the work, a real kue-worker does it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask.testing import FlaskClient

EXAMPLE = Path(__file__).parents[1] / "examples" / "webapp"


@pytest.fixture
def webapp(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return importlib.import_module("webapp")


@pytest.fixture
def outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "outbox.txt"
    monkeypatch.setenv("WEBAPP_OUTBOX", str(path))
    return path


@pytest.fixture
def client(webapp: ModuleType, sqlite_url: str) -> FlaskClient:
    app = webapp.create_app(sqlite_url)
    app.testing = True
    client: FlaskClient = app.test_client()
    return client


def stats(client: FlaskClient, queue: str = "signups") -> dict[str, Any]:
    response = client.get(f"/jobs/{queue}/stats")
    assert response.status_code == 200
    doc: dict[str, Any] = response.get_json()
    return doc


def run_worker(sqlite_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE)}
    kue_worker = Path(sys.executable).with_name("kue-worker")
    return subprocess.run(
        [str(kue_worker), "--url", sqlite_url, "--burst", "--import", "webapp_jobs",
         "-q", "signups"],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60,
    )


def test_signup_answers_at_once_and_the_worker_sends_the_mail(
    client: FlaskClient, sqlite_url: str, outbox: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    response = client.post("/signup", json={"email": "ada@example.com"})
    assert time.monotonic() - started < 2.0
    assert response.status_code == 202
    body = response.get_json()
    assert body["job_id"] and body["queue"] == "signups"
    assert not outbox.exists()  # the request only queued the work
    waiting = client.get(body["status"]).get_json()
    assert (waiting["state"], waiting["result"]) == ("ready", None)
    assert stats(client) == {"queue": "signups", "ready": 1, "delayed": 0, "reserved": 0,
                             "buried": 0}

    client.post("/signup", data={"email": "grace@example.com"})  # a form post works too
    proc = run_worker(sqlite_url, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    assert outbox.read_text().splitlines() == [
        "welcome mail to ada@example.com", "welcome mail to grace@example.com",
    ]
    assert stats(client) == {"queue": "signups", "ready": 0, "delayed": 0, "reserved": 0,
                             "buried": 0}
    done = client.get(body["status"]).get_json()
    assert done["state"] == "done" and done["attempts"] == 1
    assert done["result"] == {"sent_to": "ada@example.com", "outbox": str(outbox)}
    assert client.get("/jobs/signups/999999").status_code == 404


@pytest.mark.parametrize("payload", [{"email": "not an address"}, {"name": "ada"}, {}])
def test_a_bad_signup_is_refused_and_queues_nothing(
    client: FlaskClient, payload: dict[str, str]
) -> None:
    response = client.post("/signup", json=payload)
    assert response.status_code == 400
    assert "email" in response.get_json()["error"]
    assert stats(client)["ready"] == 0
