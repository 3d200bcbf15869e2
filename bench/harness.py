"""The shared benchmark harness: timing, medians, tables, targets, worker subprocesses.

Every bench module takes a :class:`Bench` (run settings plus the report being built), adds
:class:`Table` objects to it and records :class:`Target` results. Tables render as Markdown,
so what the terminal shows is what ``bench/README.md`` keeps.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
#: kue-worker of the interpreter running the bench (the workspace venv).
KUE_WORKER = str(Path(sys.executable).with_name("kue-worker"))


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn`` took (perf_counter)."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def fmt_rate(value: float | None) -> str:
    """A rate as ``12,345`` (or a dash when not measured)."""
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def fmt_ratio(num: float | None, den: float | None) -> str:
    """``num / den`` as ``0.93x`` (a dash when either is missing)."""
    if num is None or not den:
        return "—"
    return f"{num / den:.2f}x"


def fmt_ms(seconds: float) -> str:
    """Seconds as milliseconds with two decimals."""
    return f"{seconds * 1000:.2f}"


@dataclass
class Table:
    """One table of results: a title, column names, rows of cells, and notes under it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: str) -> None:
        """Append one row."""
        self.rows.append(list(cells))

    def markdown(self) -> str:
        """The table as GitHub Markdown, padded so it also reads well in a terminal."""
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

        def line(cells: Sequence[str]) -> str:
            padded = [
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ]
            return "| " + " | ".join(padded) + " |"

        rule = "|" + "|".join(
            "-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)
        ) + "|"
        out = [f"### {self.title}", "", line(self.columns), rule]
        out += [line(r) for r in self.rows]
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out)


@dataclass
class Target:
    """One target of the issue: what was asked, what was measured, whether it was met."""

    name: str
    measured: str
    met: bool | None


@dataclass
class Bench:
    """Settings of this run and the report it builds.

    :param runs: runs per measurement; tables show the median.
    :param quick: much smaller counts, to check the bench itself works.
    :param full: the largest sizes too, which take long (bench_scale's 10,000,000-job depth).
    """

    runs: int = 3
    quick: bool = False
    full: bool = False
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    #: Numbers one module measures and another compares with (e.g. kue's redis worker rate).
    results: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def count(self, normal: int) -> int:
        """A job count: ``normal``, or a tenth of it (at least 20) with ``--quick``."""
        return max(20, normal // 10) if self.quick else normal

    def table(self, table: Table) -> None:
        """Add ``table`` to the report and print it at once."""
        self.tables.append(table)
        print(table.markdown(), "\n", flush=True)

    def target(self, name: str, measured: str, met: bool | None) -> None:
        """Record one target's outcome (``met=None``: not measured in this run)."""
        self.targets.append(Target(name, measured, met))

    def targets_table(self) -> Table:
        """The final table: every target, what was measured, met yes/no."""
        table = Table("Targets", ["target", "measured", "met"])
        for t in self.targets:
            table.add(t.name, t.measured, "—" if t.met is None else ("yes" if t.met else "no"))
        return table

    def log(self, message: str) -> None:
        """A progress line on stderr, with the time since the run began."""
        print(f"[{time.monotonic() - self.started:6.1f} s] {message}", file=sys.stderr,
              flush=True)


def rate_of(n: int, seconds: float) -> float:
    """Jobs per second."""
    return n / seconds if seconds > 0 else float("inf")


def median_rate(bench: Bench, n: int, run: Callable[[], float]) -> float:
    """The median over ``bench.runs`` of ``n / run()``, where ``run`` returns seconds."""
    return median([rate_of(n, run()) for _ in range(bench.runs)])


def fused_drain_table(
    bench: Bench,
    backend: str,
    raw_label: str,
    n: int,
    kue_side: tuple[Callable[[int], object], Callable[[int], object]],
    raw_side: tuple[Callable[[int], object], Callable[[int], object]],
) -> tuple[float, float]:
    """kue's fused ``delete_and_reserve`` drain against a raw fused call; adds the table.

    Each side is a (fill, drain) pair: ``fill(n)`` puts ``n`` jobs (untimed), ``drain(n)``
    takes them one fused round trip per job (timed). The sides take turns within each of
    ``bench.runs`` runs; returns the median rates (kue, raw) in jobs/s.
    """
    kue_rates: list[float] = []
    raw_rates: list[float] = []
    for _ in range(bench.runs):
        for (fill, drain), rates in ((kue_side, kue_rates), (raw_side, raw_rates)):
            fill(n)
            rates.append(rate_of(n, timed(partial(drain, n))))
    k, r = median(kue_rates), median(raw_rates)
    table = Table(f"{backend}: the worker's fused call (jobs/s, median of {bench.runs})",
                  ["operation", "kue", raw_label, "kue/raw"])
    table.add("delete_and_reserve drain", fmt_rate(k), fmt_rate(r), fmt_ratio(k, r))
    table.notes.append(f"{n:,} jobs; one round trip per job on both sides")
    bench.table(table)
    return k, r


# -- job bodies -------------------------------------------------------------------------------

def body(i: int = 0) -> bytes:
    """A kue envelope of about 110 bytes for the no-op job ``bench_jobs.noop``."""
    doc = {
        "job": "bench_jobs.noop", "args": [i], "kwargs": {}, "attempt": 0,
        "enqueued_at": round(time.time(), 6), "id": uuid.uuid4().hex[:12],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def bodies(n: int) -> list[bytes]:
    """``n`` no-op envelopes."""
    return [body(i) for i in range(n)]


# -- processes --------------------------------------------------------------------------------

def bench_env(**extra: str) -> dict[str, str]:
    """The environment for worker subprocesses: bench/ importable, no kue config leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUE_")}
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(BENCH_DIR) + (os.pathsep + path if path else "")
    env.update(extra)
    return env


def kue_worker_args(url: str, queue: str, *extra: str) -> list[str]:
    """``kue-worker`` on ``url`` and ``queue`` with the bench's jobs, logging warnings only."""
    return [KUE_WORKER, "--url", url, "-q", queue, "--import", "bench_jobs", "-v", "WARNING",
            *extra]


def run_to_exit(args: Sequence[str], env: dict[str, str] | None = None,
                timeout: float = 600.0) -> float:
    """Run a process to its exit; returns its wall time in seconds (raises if it failed)."""
    started = time.perf_counter()
    proc = subprocess.run(list(args), env=env or bench_env(), cwd=BENCH_DIR, timeout=timeout,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return elapsed


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory on the disk /tmp is on, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- the machine ------------------------------------------------------------------------------

def _version(backend: str) -> str:
    """The version of ``backend``'s throwaway server, from its spec's version command."""
    from kue_contract.servers import ServerUnavailable, spec_for, version_of

    try:
        return version_of(spec_for(backend)).rsplit(" ", 1)[-1]
    except ServerUnavailable:
        return "not found"


def machine() -> dict[str, str]:
    """What the numbers ran on: CPUs, CPU model, Python, server and library versions, date."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    libs = []
    for dist in ("kue", "redis", "greenstalk", "boto3", "moto", "rq", "dramatiq", "celery",
                 "huey"):
        try:
            libs.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            libs.append(f"{dist} missing")
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis-server": _version("redis"),
        "beanstalkd": _version("beanstalk"),
        "moto_server": f"moto {_version('sqs')}",
        "libraries": ", ".join(libs),
    }


# -- running ----------------------------------------------------------------------------------

Runner = Callable[[Bench], None]
README_BEGIN = "<!-- bench:results:begin -->"
README_END = "<!-- bench:results:end -->"


def report_markdown(bench: Bench, info: dict[str, str], command: str) -> str:
    """The results section of bench/README.md: the machine, then every table."""
    lines = ["## Latest results", "", f"`{command}`, {info['date']}.", ""]
    lines += [f"- **{k}**: {v}" for k, v in info.items() if k != "date"]
    lines.append("")
    for table in [*bench.tables, bench.targets_table()]:
        lines += [table.markdown(), ""]
    return "\n".join(lines)


def write_readme(path: Path, section: str) -> None:
    """Replace the results section of ``path`` (between the markers) with ``section``."""
    text = path.read_text() if path.exists() else ""
    block = f"{README_BEGIN}\n{section}\n{README_END}"
    if README_BEGIN in text and README_END in text:
        head, rest = text.split(README_BEGIN, 1)
        tail = rest.split(README_END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main(runners: Sequence[Runner], argv: Sequence[str] | None = None) -> Bench:
    """Parse the command line, run ``runners`` in order, print every table and the targets."""
    import argparse

    parser = argparse.ArgumentParser(description="kue's benchmarks (see bench/README.md)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--quick", action="store_true",
                        help="a tenth of the counts: checks the bench works, numbers are rough")
    parser.add_argument("--full", action="store_true",
                        help="the largest sizes too (a queue 10,000,000 jobs deep in "
                        "bench_scale: about 10 minutes per backend to fill)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only these parts (repeat); names: "
                        + ", ".join(r.__module__ for r in runners))
    parser.add_argument("--readme", action="store_true",
                        help="write the tables and the machine into bench/README.md")
    args = parser.parse_args(argv)
    bench = Bench(runs=args.runs, quick=args.quick, full=args.full)
    info = machine()
    print("## Machine\n")
    for k, v in info.items():
        print(f"- {k}: {v}")
    print(flush=True)
    for runner in runners:
        if args.only and runner.__module__ not in args.only:
            continue
        bench.log(f"{runner.__module__} starts")
        runner(bench)
    print(bench.targets_table().markdown(), flush=True)
    bench.log("done")
    if args.readme:
        command = "nox -s bench" + (" -- " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
        write_readme(BENCH_DIR / "README.md", report_markdown(bench, info, command))
    return bench
