"""evaluate: gather every expected metrics file into reports/summary.{csv,md}, and the
mixture-of-experts runs into reports/moe_table.md."""

from __future__ import annotations

from vaemix.cli import run_stage
from vaemix.config import load_params
from vaemix.io import METRICS_ROOT
from vaemix.moe.report import write_moe_table
from vaemix.report.summary import collect, write_summary


def main(argv: list[str]) -> None:
    params = load_params()
    df = collect(params)
    csv_path, md_path = write_summary(df)
    moe_path = write_moe_table(params, METRICS_ROOT, "reports/moe_table.md")
    print(f"evaluate: {len(df)} runs -> {csv_path}, {md_path}, {moe_path}")


if __name__ == "__main__":
    run_stage(main)
