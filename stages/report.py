"""report: draw every figure into reports/figures/ (the directory replaced at once), then
write the papers' tables into reports/tables/ and reports/README.md (vaemix.paper_tables)."""

from __future__ import annotations

from vaemix.cli import run_stage
from vaemix.config import load_params
from vaemix.io import atomic_dir
from vaemix.paper_tables import write_report
from vaemix.report import build_figures


def main(argv: list[str]) -> None:
    params = load_params()
    with atomic_dir("reports/figures") as tmp:
        written = build_figures(params, tmp)
    print(f"report: {len(written)} figures -> reports/figures/")
    tables = write_report(params)
    print(f"report: {len(tables) - 1} tables -> reports/tables/, reports/README.md")


if __name__ == "__main__":
    run_stage(main)
