"""report: draw every figure into figures/ (a DVC-cached output, replaced at once), write
the papers' tables into reports/tables/ and reports/README.md (vaemix.report.paper_tables), then
publish the figures the README links into reports/figures/ (git; vaemix.report.figures)."""

from __future__ import annotations

from vaemix.cli import run_stage
from vaemix.config import load_params
from vaemix.io import atomic_dir
from vaemix.report.figures import FIGURES, PUBLISHED, build_figures, linked_figures, publish_figures
from vaemix.report.paper_tables import write_report


def main(argv: list[str]) -> None:
    params = load_params()
    with atomic_dir(FIGURES) as tmp:
        written = build_figures(params, tmp)
    print(f"report: {len(written)} figures -> {FIGURES}/")
    tables = write_report(params, figures=FIGURES)
    print(f"report: {len(tables) - 1} tables -> reports/tables/, reports/README.md")
    readme = tables[-1].read_text(encoding="utf-8")
    with atomic_dir(PUBLISHED) as tmp:
        published = publish_figures(linked_figures(readme), FIGURES, tmp)
    print(f"report: the {len(published)} figures the README links -> {PUBLISHED}/")


if __name__ == "__main__":
    run_stage(main)
