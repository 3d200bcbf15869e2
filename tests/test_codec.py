from __future__ import annotations

import json

import pytest

import kue
from kue.codec import DecodeError, decode, encode
from kue.job import build_job, envelope_of


class Resize(kue.Job):
    name = "tests.resize"

    def __init__(self, path: str, *, width: int = 100) -> None:
        self.path, self.width = path, width

    def run(self) -> str:
        return f"{self.path}@{self.width}"


@kue.job(queue="emails", max_attempts=5, name="tests.send")
def send(to: str, subject: str = "hi") -> str:
    return f"{to}:{subject}"


def test_a_job_class_travels_as_a_json_envelope_and_comes_back() -> None:
    body = encode(envelope_of(Resize("a.png", width=50)))
    doc = json.loads(body)
    assert doc["job"] == "tests.resize"
    assert doc["args"] == ["a.png"] and doc["kwargs"] == {"width": 50}
    assert set(doc) == {"job", "args", "kwargs", "attempt", "enqueued_at", "id"}
    assert build_job(decode(body)).run() == "a.png@50"


def test_a_job_function_keeps_working_as_a_function_and_carries_its_options() -> None:
    assert send("a@b.c") == "a@b.c:hi"
    message = send.message("a@b.c", subject="yo")
    assert type(message).queue == "emails" and type(message).max_attempts == 5
    assert build_job(decode(encode(envelope_of(message)))).run() == "a@b.c:yo"
    with pytest.raises(TypeError):
        send.message()  # type: ignore[call-arg]


def test_pushing_a_function_uses_its_own_queue_from_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUE_URL", "memory://fnpush")
    job_id = send.push("x@y.z")
    job = kue.connect(queue="emails").reserve(timeout=0)
    assert job is not None and job.id == job_id
    assert job.job().run() == "x@y.z:hi"


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a kue envelope"),
        (b'{"args": []}', "not a kue envelope"),
        (b'{"job": "x", "args": {}}', "'args' must be a list"),
    ],
)
def test_bodies_that_are_not_envelopes_are_refused_with_the_reason(
    body: bytes, problem: str
) -> None:
    with pytest.raises(DecodeError, match=problem):
        decode(body)


def test_an_unregistered_name_is_refused_not_imported() -> None:
    body = json.dumps({"job": "os.system", "args": ["echo pwned"]}).encode()
    with pytest.raises(kue.UnknownJob, match=r"os\.system"):
        build_job(decode(body))


def test_arguments_that_are_not_json_able_fail_before_sending() -> None:
    with pytest.raises(TypeError, match="JSON-able"):
        encode(envelope_of(Resize(object())))  # type: ignore[arg-type]


def test_retry_delay_grows_exponentially_with_jitter_and_a_cap() -> None:
    class Backoff(kue.Job, register=False):
        backoff = 2.0
        backoff_cap = 20.0

    for attempt, ceiling in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 20.0)):
        delays = [Backoff.retry_delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
