"""``dvc repro`` of the whole DAG with several stages running at once.

DVC runs one stage at a time. Most of a vaemix stage is single-threaded (DVC's bookkeeping,
imports, evaluation), and small networks gain little from a second thread, so on a
two-core machine one stage at a time leaves a core idle for much of the run. This runs
``--jobs`` workers. Each takes the next stage whose upstream stages are done and runs it
as ``dvc --wait-for-lock repro --single-item <stage>``: the same stage, the same command,
the same inputs as in one sequential ``dvc repro``. DVC runs a stage's command outside its
repository lock and queues the bookkeeping (``--wait-for-lock``), so the workers only wait
on each other while DVC writes ``dvc.lock``. A stage that is up to date is skipped by
DVC as usual, so a second call does nothing.

Among the stages that are ready, a worker takes the one with the most stages downstream
of it, so that long chains (an autoencoder, then the start, then every model) start first.
Each worker's stages get ``cpu_count // jobs`` threads. Each stage's output goes to
``logs/repro/<stage>.log``. One line per stage is printed when it ends. When a stage fails,
no new stage starts, the running ones finish, and its log's tail is printed. Ctrl-C or a
kill stops every running stage (each runs in its own process group) and exits with 130.

With ``-S key=value`` (as ``dvc exp run -S``, by DVC's own code) it first sets those params;
``bash scripts/repro.sh --profile <name>`` then records the finished run as an experiment
with ``dvc exp run -S ...``, which finds every stage up to date.

    python scripts/parallel_repro.py [--jobs 2] [-S key=value ...]   (from the project root)
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def pipeline_graph(root: Path) -> tuple[dict[str, set[str]], list[str]]:
    """``({stage: the stages it depends on}, the stages in DVC's order)`` for every
    stage with a command in the DVC project at ``root``."""
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    with Repo(str(root)) as repo:
        graph = repo.index.graph           # an edge u -> v: stage u depends on stage v
        stages = [s for s in repo.index.stages if isinstance(s, PipelineStage)]
        names = {s: s.addressing for s in stages}
        deps = {names[s]: {names[d] for d in graph.successors(s) if d in names}
                for s in stages}
    return deps, [names[s] for s in stages]


def downstream_counts(deps: dict[str, set[str]]) -> dict[str, int]:
    """How many stages depend on each stage, directly or not."""
    dependents: dict[str, set[str]] = {name: set() for name in deps}
    for name, ups in deps.items():
        for up in ups:
            dependents[up].add(name)
    memo: dict[str, set[str]] = {}

    def below(name: str) -> set[str]:
        if name not in memo:
            memo[name] = set().union(*({d, *below(d)} for d in dependents[name]))
        return memo[name]

    return {name: len(below(name)) for name in deps}


def next_stage(ready: list[str], counts: dict[str, int], order: list[str]) -> str:
    """The ready stage with the most stages downstream; ties go to DVC's order."""
    return min(ready, key=lambda name: (-counts[name], order.index(name)))


def short(name: str) -> str:
    """A stage's name without its dvc.yaml file (the names are unique across the files)."""
    return name.rsplit(":", 1)[-1]


def log_path(logs: Path, name: str) -> Path:
    """``logs/<stage>.log``."""
    return logs / f"{short(name)}.log"


def launch(name: str, root: Path, logs: Path, threads: int) -> tuple[subprocess.Popen, float]:
    """Start ``dvc repro --single-item name`` with its output in its log file."""
    env = dict(os.environ, **{var: str(threads) for var in THREAD_VARS})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with open(log_path(logs, name), "w") as log:   # the child keeps its own handle
        proc = subprocess.Popen(
            [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item", name],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, time.monotonic()


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log, progress-bar redraws dropped."""
    text = path.read_text(errors="replace").replace("\r", "\n")
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


@dataclass
class Progress:
    """The stages of one run: their upstream stages, which are done, failed or running."""

    deps: dict[str, set[str]]
    order: list[str]
    counts: dict[str, int]
    logs: Path
    done: set[str] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)
    running: dict[str, tuple[subprocess.Popen, float]] = field(default_factory=dict)
    began: float = field(default_factory=time.monotonic)

    def ready(self) -> list[str]:
        """The stages not started whose upstream stages are all done, in DAG order."""
        return [n for n in self.order if n not in self.done and n not in self.running
                and self.deps[n] <= self.done]

    def more_to_run(self) -> bool:
        """Whether a stage is running, or one could still start (none has failed)."""
        ended = len(self.done) + len(self.failed)
        return ended < len(self.order) and (bool(self.running) or not self.failed)

    def ended(self, name: str, proc: subprocess.Popen, started: float) -> None:
        """Record a finished stage and print its line: ran, unchanged or failed."""
        if proc.returncode == 0:
            self.done.add(name)
        else:
            self.failed.append(name)
        skipped = "didn't change, skipping" in log_path(self.logs, name).read_text(
            errors="replace")
        state = "failed" if proc.returncode else "unchanged" if skipped else "ran"
        now = time.monotonic()
        print(f"[{len(self.done) + len(self.failed):>3}/{len(self.order)}] {state:<9} "
              f"{short(name):<40} {now - started:5.0f} s   {(now - self.began) / 60:5.1f} min in",
              flush=True)


def fill_workers(progress: Progress, jobs: int, root: Path, threads: int) -> None:
    """Start ready stages, most stages downstream first, until ``jobs`` run; none after a
    failure."""
    ready = progress.ready()
    while ready and not progress.failed and len(progress.running) < jobs:
        name = next_stage(ready, progress.counts, progress.order)
        ready.remove(name)
        progress.running[name] = launch(name, root, progress.logs, threads)


def reap(progress: Progress) -> None:
    """Record every running stage that has ended."""
    for name, (proc, started) in list(progress.running.items()):
        if proc.poll() is not None:
            del progress.running[name]
            progress.ended(name, proc, started)


def run(root: Path, jobs: int, logs: Path, threads: int | None = None) -> int:
    """Run every stage of the DVC project at ``root`` that needs it, ``jobs`` at a time,
    each with ``threads`` threads (default: the cores shared out); 0 when every stage ran
    or was up to date."""
    deps, order = pipeline_graph(root)
    progress = Progress(deps, order, downstream_counts(deps), logs)
    logs.mkdir(parents=True, exist_ok=True)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    print(f"{len(order)} stages, {jobs} at a time, {threads} thread(s) each; "
          f"logs in {logs}", flush=True)
    try:
        while progress.more_to_run():
            fill_workers(progress, jobs, root, threads)
            if not progress.running:
                break
            time.sleep(0.5)
            reap(progress)
    except KeyboardInterrupt:   # each stage runs in its own session: stop its whole group
        for proc, _ in progress.running.values():
            os.killpg(proc.pid, signal.SIGTERM)
        raise
    for name in progress.failed:
        print(f"\nstage {name} failed; the end of {log_path(logs, name)}:\n"
              f"{tail(log_path(logs, name))}", file=sys.stderr)
    return 1 if progress.failed or len(progress.done) < len(order) else 0


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def set_params(assignments: list[str]) -> None:
    """Write ``key=value`` overrides into their params files as ``dvc exp run -S`` does."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides

    for path, overrides in to_path_overrides(assignments).items():
        apply_overrides(path, overrides)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="stages at once (default 2)")
    parser.add_argument("--logs", type=Path, default=Path("logs/repro"),
                        help="one log file per stage (default logs/repro)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of each stage (default: cores // jobs)")
    parser.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                        help="set a param first, as dvc exp run -S does")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    set_params(args.set_param)
    signal.signal(signal.SIGINT, signal.default_int_handler)   # stop the stages on Ctrl-C
    signal.signal(signal.SIGTERM, _stop)                        # or on kill
    try:
        return run(Path.cwd(), args.jobs, args.logs.resolve(), args.threads)
    except KeyboardInterrupt:
        print("interrupted: the running stages were stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
