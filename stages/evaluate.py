"""evaluate: gather every expected metrics file into reports/summary.{csv,md}."""

from __future__ import annotations

from vaemix.cli import run_stage
from vaemix.config import load_params
from vaemix.summary import collect, write_summary


def main(argv: list[str]) -> None:
    params = load_params()
    df = collect(params)
    csv_path, md_path = write_summary(df)
    print(f"evaluate: {len(df)} runs -> {csv_path}, {md_path}")


if __name__ == "__main__":
    run_stage(main)
