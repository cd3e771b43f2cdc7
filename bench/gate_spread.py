"""What CI's regression gate compares, read off the committed spread of the gate's DAG.

Reads ``tests/reference/tiny_spread.json`` (scripts/update_reference.sh: the end-to-end
test's DAG over several seeds, on portable and on this CPU's own kernels) and writes
``reports/benchmarks/regression_gate_spread.md``: per metric family, how many metrics are
gated and how wide their tolerance is; the metrics that are noise by construction; and how
many metrics the CPU's own kernels moved against the portable ones at the same seed.

    python bench/gate_spread.py
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vaemix.io import write_text  # noqa: E402
from vaemix.regress import (  # noqa: E402
    FAIL_STRICT,
    compare,
    describe,
    load_reference,
    load_tolerances,
    spread,
)

SPREAD = ROOT / "tests/reference/tiny_spread.json"
OUT = ROOT / "reports/benchmarks/regression_gate_spread.md"
FAMILIES = ("acc", "nmi", "elbo", "test_recon_ll", "test_mse", "n_clusters_used")


def kernel_moves(runs: dict) -> list[str]:
    """Lines: for each seed run on both kernels, how many metrics differ at all."""
    lines = []
    for label in sorted(runs):
        if "-native" not in label:
            continue
        twin = label.replace("-native", "-portable")
        if twin in runs:
            lines.append(f"- {label.replace('-native', '')}: {differing(runs[twin], runs[label])}"
                         " between the portable and the native kernels")
    return lines


def differing(a: dict, b: dict) -> str:
    """``N of M metrics differ`` between two runs' metrics."""
    pairs = [(a[p][m], b[p].get(m)) for p in a if p in b for m in a[p]]
    return f"{sum(x != y for x, y in pairs)} of {len(pairs)} metrics differ"


def cpu_moves(runs: dict) -> list[str]:
    """Lines: each added run (``--add``, another CPU) against the same seed and kernels
    on the reference's CPU."""
    lines = []
    for label in sorted(runs):
        base, _, tag = label.rpartition("-")
        if tag in ("portable", "native") or base not in runs:
            continue
        lines.append(f"- {label} against {base}: {differing(runs[base], runs[label])}")
    return lines


def leave_one_out(reference: dict, runs: dict, tolerances) -> list[str]:
    """Lines: each run against the reference with tolerances from the other runs only
    (what a seventh run, or another CPU whose bits differ, meets)."""
    lines = []
    for label in sorted(runs):
        if runs[label] == reference:
            continue
        others = spread({k: v for k, v in runs.items() if k != label})
        failed = [r for r in compare(reference, runs[label], tolerances, others)
                  if r.status in FAIL_STRICT]
        worst = sorted(failed, key=lambda r: -abs(r.change or 0))[:3]
        lines.append(f"- {label}: {len(failed)} metrics fail"
                     + ("" if not worst else ", e.g. " + "; ".join(
                         f"`{r.path}` {r.metric} {r.old:.4g} → {r.new:.4g} "
                         f"(allowed ±{r.allowed:.3g})" for r in worst)))
    return lines


def main() -> None:
    data = json.loads(SPREAD.read_text())
    runs = data["runs"]
    reference, made_on = load_reference(ROOT / "tests/reference/tiny_metrics.json")
    tolerances = load_tolerances(ROOT / "tolerances.yaml")
    rows = compare(reference, reference, tolerances, spread(runs))
    by_family: dict[str, list] = defaultdict(list)
    for r in rows:
        by_family[r.metric if r.metric in FAMILIES else "other"].append(r)
    lines = [
        "# The regression gate's spread",
        "",
        f"`python bench/gate_spread.py`, from `{data['command']}` on "
        f"{describe(data['made_on'])}: runs {', '.join(sorted(runs))}. Tolerance = "
        f"max(floor, {tolerances.spread_k:g} × std over the runs); noise = not gated.",
        "",
        "| metric | gated | noise | median allowed | largest allowed |",
        "|---|---:|---:|---:|---:|",
    ]
    for family in (*FAMILIES, "other"):
        rs = by_family.get(family, [])
        gated = sorted(r.allowed for r in rs if r.status != "noise")
        if not rs:
            continue
        median = f"{gated[len(gated) // 2]:.3g}" if gated else "-"
        top = f"{gated[-1]:.3g}" if gated else "-"
        lines.append(f"| {family} | {len(gated)} | {len(rs) - len(gated)} | {median} | {top} |")
    noise = [r for r in rows if r.status == "noise"]
    lines += ["", f"Not gated ({len(noise)} of {len(rows)}):", ""]
    lines += [f"- `{r.path}` {r.metric} (reference {r.old:.4g})" for r in noise] or ["- none"]
    lines += ["", "Portable against native kernels on one CPU:", "", *kernel_moves(runs), ""]
    for added in data.get("added", []):
        lines.append(f"Added by `{added['command']}` on {describe(added['made_on'], False)}: "
                     f"{', '.join(added['runs'])}.")
    lines += ["", "The same seed and kernels on another CPU:", "",
              *(cpu_moves(runs) or ["- no run of another CPU in the spread"]), ""]
    lines += ["Leave one out (each run, tolerances from the other runs alone):", "",
              *leave_one_out(reference, runs, tolerances), ""]
    lines += ["Reference ACC of the mixture models (seed 0, portable kernels):", "",
              "| run | mnist | spiral |", "|---|---:|---:|"]
    for run in ("ae+umap_gmm", "vade", "dmvae", "movae", "gmvae", "concrete_gmvae",
                "gmvae_dpgmm"):
        cells = [f"{reference.get(f'{ds}/{run}.json', {}).get('acc', float('nan')):.3f}"
                 for ds in ("mnist", "spiral")]
        lines.append(f"| {run} | {' | '.join(cells)} |")
    write_text(OUT, "\n".join(lines) + "\n")
    print(OUT.read_text())


if __name__ == "__main__":
    main()
