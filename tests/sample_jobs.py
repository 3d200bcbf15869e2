"""Jobs the worker tests run; each records what it did in the file $KUE_TEST_LEDGER."""

from __future__ import annotations

import os
import time

import kue


def record(line: str) -> None:
    with open(os.environ["KUE_TEST_LEDGER"], "a") as fh:
        fh.write(line + "\n")


@kue.job(name="tests.add", max_attempts=3)
def add(a: int, b: int) -> int:
    record(f"add {a + b}")
    return a + b


@kue.job(name="tests.always_fails", max_attempts=3, backoff=0.01)
def always_fails(tag: str) -> None:
    record(f"fail {tag}")
    raise RuntimeError(f"failing on purpose: {tag}")


@kue.job(name="tests.slow", ttr=30)
def slow(seconds: float, tag: str) -> None:
    record(f"start {tag}")
    time.sleep(seconds)
    record(f"end {tag}")


class Greet(kue.Job):
    name = "tests.greet"

    def __init__(self, who: str) -> None:
        self.who = who

    def run(self) -> None:
        record(f"hello {self.who}")
