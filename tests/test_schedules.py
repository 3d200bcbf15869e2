"""Periodic jobs: schedules, the scheduler's ticks and catch-up (injected clock), config, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import kue
from kue.backends.memory import MemoryBackend
from kue.cli.admin import main as kue_main
from kue.config import load_settings
from kue.errors import ConfigError
from kue.schedules import Schedule, from_config, schedules_for
from kue.status import Records
from kue.worker.scheduler import Scheduler, Tick, read_state

from support import HERE, wait_until

BERLIN = ZoneInfo("Europe/Berlin")


@kue.job(name="test_schedules.report", queue="reports")
def report(kind: str = "daily") -> str:
    return kind


class Clock:
    """A wall clock the test moves."""

    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc,arg-type]


def scheduler(backend: MemoryBackend, clock: Clock, *schedules: Schedule) -> Scheduler:
    return Scheduler(backend, schedules, records=Records.of(backend), clock=clock)


def run_until(s: Scheduler, clock: Clock, end: datetime, step: float = 60.0) -> list[Tick]:
    ticks = []
    while clock.now < end.timestamp():
        ticks += s.run_due()
        clock.now += step
    return ticks


def local(ticks: list[Tick], name: str) -> list[str]:
    return [datetime.fromtimestamp(t.time, BERLIN).isoformat() for t in ticks
            if t.schedule == name]


def fresh_backend(request: pytest.FixtureRequest) -> MemoryBackend:
    return MemoryBackend(f"schedules-{request.node.name}", clock=None)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> MemoryBackend:
    return fresh_backend(request)


# -- DST: a daily job neither skips nor doubles ---------------------------------------------


# 02:30 does not exist on 29 March: the job runs once, as the clocks jump to 03:00.
SPRING_FORWARD = (
    (2026, 3, 27), (2026, 3, 31),
    ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00",
     "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"],
    ["2026-03-28T03:00:00+01:00", "2026-03-29T03:00:00+02:00",
     "2026-03-30T03:00:00+02:00", "2026-03-31T03:00:00+02:00"])
# 02:30 comes twice on 25 October (+02:00, then +01:00): the job runs at the first only.
FALL_BACK = (
    (2026, 10, 23), (2026, 10, 27),
    ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00",
     "2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00"],
    ["2026-10-24T03:00:00+02:00", "2026-10-25T03:00:00+01:00",
     "2026-10-26T03:00:00+01:00", "2026-10-27T03:00:00+01:00"])


@pytest.mark.parametrize(("start", "stop", "at_0230", "at_0300"),
                         [SPRING_FORWARD, FALL_BACK], ids=["spring-forward", "fall-back"])
def test_a_daily_0230_job_runs_once_a_day_across_a_clock_change(
        backend: MemoryBackend, start: tuple[int, int, int], stop: tuple[int, int, int],
        at_0230: list[str], at_0300: list[str]) -> None:
    clock = Clock(berlin(*start, 12))
    s = scheduler(backend, clock,
                  Schedule(name="at-0230", job="test_schedules.report", cron="30 2 * * *",
                           tz="Europe/Berlin"),
                  Schedule(name="at-0300", job="test_schedules.report", cron="0 3 * * *",
                           tz="Europe/Berlin"))
    ticks = run_until(s, clock, berlin(*stop, 12))
    assert local(ticks, "at-0230") == at_0230
    assert local(ticks, "at-0300") == at_0300
    assert all(t.created for t in ticks)
    assert kue.Queue(backend, "reports").stats().ready == 8


def test_a_half_hourly_job_runs_in_both_passes_of_the_repeated_hour(
        backend: MemoryBackend) -> None:
    clock = Clock(berlin(2026, 10, 25, 1, 10))
    s = scheduler(backend, clock, Schedule(name="half-hourly", job="test_schedules.report",
                                           cron="*/30 * * * *", tz="Europe/Berlin"))
    ticks = run_until(s, clock, berlin(2026, 10, 25, 3, 10))
    assert local(ticks, "half-hourly") == [
        "2026-10-25T01:30:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"]


# -- many schedulers, downtime and catch-up ----------------------------------------------------


def every_minute(catch_up: str | int = "latest") -> Schedule:
    return Schedule(name=f"every-minute-{catch_up}", job="test_schedules.report", every=60,
                    catch_up=catch_up)


def test_two_schedulers_on_one_store_put_each_tick_once(backend: MemoryBackend) -> None:
    clock = Clock(datetime(2026, 1, 1, 12, 0, 30))
    a = scheduler(backend, clock, every_minute())
    b = scheduler(backend, clock, every_minute())
    ticks = []
    for _ in range(10):
        ticks += a.run_due() + b.run_due()
        clock.now += 60
    created = sorted(t.time for t in ticks if t.created)
    assert len(created) == 9 and len(set(created)) == 9
    assert len(ticks) == 18  # each saw each tick; one of the two put it
    assert kue.Queue(backend, "reports").stats().ready == 9
    state = read_state(backend, "every-minute-latest")
    assert state["last_put"] == created[-1]


def test_a_schedule_that_never_ran_starts_with_its_next_tick(backend: MemoryBackend) -> None:
    clock = Clock(datetime(2026, 1, 1, 12, 0, 30))
    s = scheduler(backend, clock, every_minute())
    assert s.run_due() == []
    clock.now += 30
    assert [datetime.fromtimestamp(t.time).minute for t in s.run_due()] == [1]


@pytest.mark.parametrize(("catch_up", "expected"), [
    ("none", []), ("latest", [10]), (3, [8, 9, 10]),
])
def test_after_all_schedulers_were_down_catch_up_decides(
        backend: MemoryBackend, catch_up: str | int, expected: list[int]) -> None:
    clock = Clock(datetime(2026, 1, 1, 12, 0, 30))
    first = scheduler(backend, clock, every_minute(catch_up))
    first.run_due()
    clock.now += 60
    assert len(first.run_due()) == 1  # 12:01
    clock.now += 9 * 60  # down from 12:01:30 to 12:10:30: 12:02 .. 12:10 missed
    again = scheduler(backend, clock, every_minute(catch_up))
    put = again.run_due()
    assert [datetime.fromtimestamp(t.time).minute for t in put] == expected
    clock.now += 30
    assert [datetime.fromtimestamp(t.time).minute for t in again.run_due()] == [11]


def test_a_stalled_scheduler_puts_the_latest_missed_tick(backend: MemoryBackend) -> None:
    clock = Clock(datetime(2026, 1, 1, 12, 0, 30))
    s = scheduler(backend, clock, Schedule(name="every-5-min", job="test_schedules.report",
                                           every=300))
    s.run_due()
    clock.now += 17 * 60  # stalled to 12:17:30: 12:05, 12:10 and 12:15 (past its grace) missed
    assert [datetime.fromtimestamp(t.time).minute for t in s.run_due()] == [15]


def test_a_failed_put_is_tried_again_by_the_next_pass(backend: MemoryBackend,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(datetime(2026, 1, 1, 12, 0, 30))
    s = scheduler(backend, clock, every_minute())
    s.run_due()
    clock.now += 40
    real = backend.put_unique

    def down(*args: object, **kwargs: object) -> tuple[str, bool]:
        raise kue.BackendUnavailable("memory://x", "down for the test")

    monkeypatch.setattr(backend, "put_unique", down)
    assert s.run_pending() > 0  # logged, backing off
    monkeypatch.setattr(backend, "put_unique", real)
    clock.now += 1
    assert [datetime.fromtimestamp(t.time).minute for t in s.run_due()] == [1]


def test_the_scheduler_needs_a_record_store(backend: MemoryBackend) -> None:
    with pytest.raises(ConfigError, match="results URL"):
        Scheduler(backend, [every_minute()], records=Records(backend, None))


def test_a_schedule_of_an_unregistered_job_fails_at_start(backend: MemoryBackend) -> None:
    with pytest.raises(ConfigError, match="not registered"):
        scheduler(backend, Clock(datetime(2026, 1, 1)),
                  Schedule(name="ghost", job="no.such.job", every=60))


def test_a_tick_job_carries_its_key_and_the_schedules_arguments(
        backend: MemoryBackend) -> None:
    clock = Clock(datetime(2026, 1, 1, 12, 0, 30))
    s = scheduler(backend, clock, Schedule(
        name="weekly-report", job="test_schedules.report", every=60, kwargs={"kind": "weekly"},
        queue="special", priority=5))
    s.run_due()
    clock.now += 30
    (tick,) = s.run_due()
    job = kue.Queue(backend, "special").reserve(timeout=0)
    assert job is not None and job.id == tick.job_id and job.priority == 5
    envelope = job.envelope()
    assert envelope.job == "test_schedules.report" and envelope.kwargs == {"kind": "weekly"}
    assert envelope.id == "weekly-report@" + datetime.fromtimestamp(
        tick.time).astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- declaring ---------------------------------------------------------------------------------


def test_periodic_declares_schedules_on_functions_job_functions_and_classes() -> None:
    @kue.periodic(every=timedelta(minutes=5), name="decl-plain")
    def plain() -> None: ...

    @kue.periodic(cron="0 3 * * *", tz="Europe/Berlin", args=["x"], name="decl-func")
    @kue.job(name="test_schedules.decl_func", queue="q1")
    def func(value: str) -> str:
        return value

    @kue.periodic(every=3600)
    class Hourly(kue.Job):
        name = "test_schedules.Hourly"

        def run(self) -> None: ...

    by_name = {s.name: s for s in kue.schedules.registered()}
    assert by_name["decl-plain"].every == 300 and isinstance(plain, kue.JobFunction)
    assert by_name["decl-func"].args == ("x",) and by_name["decl-func"].queue_name() == "q1"
    assert func("y") == "y"
    assert by_name["test_schedules.Hourly"].job == "test_schedules.Hourly"
    assert Hourly.name == "test_schedules.Hourly"


@pytest.mark.parametrize(("fields", "message"), [
    ({"cron": "0 3 * * *", "every": 60}, "exactly one of cron or every"),
    ({}, "exactly one of cron or every"),
    ({"every": 0.5}, "whole number of seconds >= 1"),
    ({"every": 1.5}, "whole number of seconds >= 1"),
    ({"cron": "61 * * * *"}, "not a valid cron expression"),
    ({"cron": "0 3 * * *", "tz": "Mars/Olympus"}, "IANA time zone"),
    ({"every": 60, "catch_up": "all"}, "catch_up"),
    ({"every": 60, "catch_up": 0}, "catch_up"),
    ({"every": 60, "priority": -1}, "priority"),
])
def test_bad_schedules_are_refused_naming_the_value(fields: dict[str, object],
                                                     message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Schedule(name="bad", job="test_schedules.report", **fields)  # type: ignore[arg-type]


def test_schedules_come_from_kue_toml(tmp_path: Path) -> None:
    (tmp_path / "kue.toml").write_text(
        '[[schedules]]\njob = "test_schedules.report"\ncron = "0 7 * * 1-5"\n'
        'tz = "Europe/Berlin"\nkwargs = { kind = "weekday" }\nqueue = "mornings"\n'
        'catch_up = "none"\n\n'
        '[[schedules]]\nname = "often"\njob = "test_schedules.report"\nevery = 300\n')
    settings = load_settings({}, env={}, cwd=tmp_path)
    found = {s.name: s for s in from_config(settings.schedules, settings.schedules_source)}
    assert found["test_schedules.report"].kwargs == {"kind": "weekday"}
    assert found["test_schedules.report"].catch_up == "none"
    assert found["often"].every == 300


def test_schedules_in_pyproject_and_their_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.kue]\n[[tool.kue.schedules]]\njob = "test_schedules.report"\nevery = 60\n'
        'colour = "blue"\n')
    settings = load_settings({}, env={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"schedules\[0\] in .*pyproject.toml.*colour"):
        from_config(settings.schedules, settings.schedules_source)


def test_two_schedules_of_one_name_are_refused() -> None:
    entries = [{"job": "test_schedules.report", "every": 60}] * 2
    with pytest.raises(ConfigError, match="two schedules are named"):
        schedules_for(entries, "kue.toml")


# -- kue-worker --scheduler and kue schedules --------------------------------------------------


def worker(url: str, cwd: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kue.cli.worker", "--url", url, "--import", "periodic_jobs",
         "-q", "idle", *extra],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(HERE)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("mode", [["-c", "2"], ["--threads", "2"], ["--coroutines", "4"]])
def test_kue_worker_scheduler_puts_ticks_in_every_mode(tmp_path: Path, sqlite_url: str,
                                                       mode: list[str]) -> None:
    proc = worker(sqlite_url, tmp_path, "--scheduler", *mode)
    ticks = kue.connect(sqlite_url, queue="ticks")
    try:
        wait_until(lambda: ticks.stats().ready >= 2, timeout=15)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "put tick every-second@" in out


@pytest.mark.parametrize(("extra", "message"), [
    (["--scheduler", "--burst"], "cannot be combined with --burst"),
])
def test_kue_worker_refuses_scheduler_flags_that_cannot_work(
        tmp_path: Path, sqlite_url: str, extra: list[str], message: str) -> None:
    proc = worker(sqlite_url, tmp_path, *extra)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2 and message in out


def test_kue_worker_scheduler_without_schedules_says_how_to_declare_them(
        tmp_path: Path, sqlite_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kue.cli.worker", "--url", sqlite_url, "--import",
         "sample_jobs", "--scheduler"], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(HERE)}, timeout=30, check=False)
    assert proc.returncode == 2 and "no schedules are declared" in proc.stderr


def test_kue_schedules_shows_next_run_and_last_tick(
        tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import periodic_jobs  # noqa: F401 - declares the every-second schedule

    monkeypatch.chdir(tmp_path)
    command = ["schedules", "--url", sqlite_url, "--import", "periodic_jobs"]
    assert kue_main(command) == 0
    text = capsys.readouterr().out
    assert "every-second: periodic_jobs.tick on queue ticks, every 1 s" in text
    assert "last put   none yet" in text
    q = kue.connect(sqlite_url, queue="ticks")
    s = Scheduler(q.backend, schedules_for([], "test"), records=q.records)
    s.run_due()
    wait_until(lambda: s.run_due(), timeout=5)
    assert kue_main([*command, "--json"]) == 0
    (row,) = [r for r in json.loads(capsys.readouterr().out) if r["name"] == "every-second"]
    assert row["last_job"] is not None and row["next_run"] > row["last_put"]
    assert kue_main(command) == 0
    assert f"job {row['last_job']}" in capsys.readouterr().out
