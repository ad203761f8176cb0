"""Shared helpers for benchmarks: figures are printed and written as JSON under bench/results/."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def core_speed_s(rounds: int = 5) -> float:
    """Seconds one core takes for a fixed pure-Python loop (median of `rounds`), taken when the figures are
    written (the stack is stopped by then). This VM's speed is not constant: the same code and command gave
    every component 1.3-1.6x the CPU seconds in one session as in another, so sets are compared only with
    this figure beside them."""
    def once() -> float:
        t, total = time.perf_counter(), 0
        for i in range(10_000_000):
            total += i
        return time.perf_counter() - t
    return round(statistics.median(once() for _ in range(rounds)), 3)


@contextlib.contextmanager
def cpu_quota(cores: float | None, period_us: int = 10_000):
    """This process and everything it starts inside get at most `cores` CPUs' worth of time, through a cgroup's
    CFS quota: the same machine made slower on purpose, to see how much margin a figure has on a slower day of
    this VM. Short periods (10 ms) keep each throttle short, closer to a slower core than to a stalled one.
    Needs root and the cgroup cpu controller (v1 `cpu`, or v2 with `cpu` enabled); `None` limits nothing."""
    if not cores:
        yield None
        return
    v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
    quota = int(cores * period_us)
    if (v1 / "cpu.cfs_quota_us").exists():
        root, limits = v1, {"cpu.cfs_period_us": str(period_us), "cpu.cfs_quota_us": str(quota)}
    elif (v2 / "cgroup.subtree_control").exists() and "cpu" in (v2 / "cgroup.subtree_control").read_text().split():
        root, limits = v2, {"cpu.max": f"{quota} {period_us}"}
    else:
        raise RuntimeError("a CPU limit needs the cgroup cpu controller (v1 `cpu`, or v2 with `cpu` enabled) and root")
    group = root / f"fa-bench-{os.getpid()}"
    group.mkdir()
    for name, value in limits.items():
        (group / name).write_text(value)
    (group / "cgroup.procs").write_text(str(os.getpid()))
    try:
        yield group
    finally:
        (root / "cgroup.procs").write_text(str(os.getpid()))
        try:
            group.rmdir()
        except OSError as exc:  # a process started inside is still alive: say so rather than hide it
            print(f"cgroup {group} not removed ({exc}); processes in it: {(group / 'cgroup.procs').read_text()!r}")


def write_result(name: str, figures: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "core_speed_s": core_speed_s()}, **figures}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(json.dumps(doc, indent=2, default=str))
    print(f"written {path}")
    return path


class CpuMeter:
    """CPU seconds spent by process trees while a benchmark runs, by label (e.g. sandbox, postgres).

    Samples every `interval` s and keeps each process's last reading, so short-lived children (a
    PostgreSQL backend that exits with its pool) still count up to their last sample."""

    def __init__(self, roots: dict[str, int], interval: float = 0.25):
        import threading

        import psutil

        self._psutil = psutil
        self.roots = roots
        self.interval = interval
        self._seen: dict[int, tuple[str, float]] = {}
        self._base: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self, baseline: bool = False) -> None:
        ps = self._psutil
        for label, pid in self.roots.items():
            try:
                root = ps.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except ps.Error:
                continue
            for p in procs:
                try:
                    t = p.cpu_times()
                except ps.Error:
                    continue
                used = t.user + t.system
                if baseline:
                    self._base[p.pid] = used
                self._seen[p.pid] = (label, used)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> CpuMeter:
        self._sample(baseline=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def seconds(self) -> dict[str, float]:
        out: dict[str, float] = {label: 0.0 for label in self.roots}
        for pid, (label, used) in self._seen.items():
            out[label] += used - self._base.get(pid, 0.0)
        return {k: round(v, 1) for k, v in out.items()}
