"""report: draw every figure into reports/figures/ (the directory replaced at once)."""

from __future__ import annotations

from vaemix.cli import run_stage
from vaemix.config import load_params
from vaemix.io import atomic_dir
from vaemix.report import build_figures


def main(argv: list[str]) -> None:
    params = load_params()
    with atomic_dir("reports/figures") as tmp:
        written = build_figures(params, tmp)
    print(f"report: {len(written)} figures -> reports/figures/")


if __name__ == "__main__":
    run_stage(main)
