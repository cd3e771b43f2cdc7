"""scripts/parallel_repro.py: the whole DAG, two stages at a time, on a real DVC project.

A diamond (top -> left, right -> bottom) of shell stages that stamp the time they start
and end: every stage runs after the stages it depends on, the two middle ones at once, a
second call finds everything up to date, and a failing stage stops its dependents. As in
vaemix's DAG, part of it (``bottom``) lives in a second dvc.yaml, in a sub-folder, that runs
in the project root (``wdir: ..``)."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("parallel_repro", ROOT / "scripts/parallel_repro.py")
parallel_repro = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = parallel_repro   # its dataclass looks itself up there
SPEC.loader.exec_module(parallel_repro)

STAMP = "python -c \"import time; print(time.time())\" >> {out}"
DIAMOND = {"top": ([], 0), "left": (["top"], 3), "right": (["top"], 3),
           "bottom": (["left", "right"], 0)}


SUB = {"bottom"}   # the stages of sub/dvc.yaml


def stage(name: str, ups: list[str], sleep: float, fail: bool = False) -> str:
    """A dvc.yaml stage that writes out/<name> (start time, end time) after ``sleep`` s."""
    out = f"out/{name}"
    cmd = f"{STAMP.format(out=out + '.tmp')} && sleep {sleep} && " \
          f"{STAMP.format(out=out + '.tmp')} && mv {out}.tmp {out}"
    if fail:
        cmd = "echo 'this stage breaks' && exit 3"
    deps = "".join(f"\n      - out/{up}" for up in ups)
    wdir = "    wdir: ..\n" if name in SUB else ""
    return (f"  {name}:\n    cmd: {cmd}\n{wdir}" + (f"    deps:{deps}\n" if ups else "")
            + f"    outs:\n      - {out}\n")


def project(tmp_path: Path, failing: str | None = None) -> Path:
    """A git + DVC project holding the diamond; ``failing`` names a stage that exits 3."""
    proj = tmp_path / "proj"
    (proj / "out").mkdir(parents=True)
    (proj / "sub").mkdir()
    for path, names in ((proj / "dvc.yaml", DIAMOND.keys() - SUB), (proj / "sub/dvc.yaml", SUB)):
        path.write_text("stages:\n" + "".join(
            stage(name, *DIAMOND[name], name == failing) for name in sorted(names)))
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                [sys.executable, "-m", "dvc", "config", "core.analytics", "false"]):
        subprocess.run(cmd, cwd=proj, check=True, capture_output=True)
    return proj


def run(proj: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts/parallel_repro.py"), "--jobs", "2"],
                          cwd=proj, capture_output=True, text=True)


def times(proj: Path, name: str) -> tuple[float, float]:
    start, end = map(float, (proj / "out" / name).read_text().split())
    return start, end


def test_stages_run_after_their_deps_two_at_a_time(tmp_path):
    proj = project(tmp_path)
    first = run(proj)
    assert first.returncode == 0, first.stdout + first.stderr
    t = {name: times(proj, name) for name in DIAMOND}
    for name, (ups, _) in DIAMOND.items():
        for up in ups:
            assert t[name][0] >= t[up][1], f"{name} started before {up} ended"
    (l0, l1), (r0, r1) = t["left"], t["right"]
    assert l0 < r1 and r0 < l1, "left and right did not run at the same time"
    assert (proj / "logs/repro/left.log").exists()
    status = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=proj,
                            capture_output=True, text=True)
    assert "up to date" in status.stdout
    second = run(proj)
    assert second.returncode == 0
    assert second.stdout.count("unchanged") == len(DIAMOND), second.stdout
    assert t == {name: times(proj, name) for name in DIAMOND}


def test_a_failing_stage_stops_its_dependents(tmp_path):
    proj = project(tmp_path, failing="left")
    result = run(proj)
    assert result.returncode == 1
    assert "stage left failed" in result.stderr and "this stage breaks" in result.stderr
    assert (proj / "out/right").exists()           # independent of the failure: it ran
    assert not (proj / "out/bottom").exists()


def test_order_prefers_long_chains():
    deps = {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b"}, "e": {"d"}, "f": set()}
    counts = parallel_repro.downstream_counts(deps)
    assert counts == {"a": 4, "b": 2, "c": 0, "d": 1, "e": 0, "f": 0}
    order = list(deps)
    assert parallel_repro.next_stage(["c", "b", "f"], counts, order) == "b"
    assert parallel_repro.next_stage(["f", "c"], counts, order) == "c"   # a tie: dvc.yaml order


@pytest.mark.parametrize("option, value", [("--jobs", "0"), ("--jobs", "-1"), ("--threads", "0")])
def test_counts_must_be_positive(option, value, capsys):
    with pytest.raises(SystemExit):
        parallel_repro.main([option, value])
    assert f"{option} must be at least 1" in capsys.readouterr().err


def test_an_interrupt_stops_the_running_stages(tmp_path):
    """SIGTERM (or Ctrl-C) stops every running stage's process group, not just DVC."""
    proj = tmp_path / "proj"
    proj.mkdir()
    marker = f"sleep 97.{os.getpid()}"    # a command only this test runs
    (proj / "dvc.yaml").write_text("stages:\n" + "".join(
        f"  {n}:\n    cmd: {marker}{i} && touch {n}\n    outs:\n      - {n}\n"
        for i, n in enumerate(("one", "two"))))
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=proj, check=True, capture_output=True)
    runner = subprocess.Popen([sys.executable, str(ROOT / "scripts/parallel_repro.py")],
                              cwd=proj, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def running() -> list[str]:
        """The processes whose command line holds ``marker`` (from /proc)."""
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if marker.encode() in cmdline.read_bytes():
                    found.append(cmdline.parent.name)
            except OSError:   # the process ended meanwhile
                pass
        return found

    deadline = time.time() + 60
    while len(running()) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert len(running()) >= 2, "the stages did not start"
    runner.send_signal(signal.SIGTERM)
    _, err = runner.communicate(timeout=60)
    assert runner.returncode == 130 and "interrupted" in err
    time.sleep(1)
    assert running() == []
