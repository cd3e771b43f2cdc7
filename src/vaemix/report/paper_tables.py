"""The published comparisons, our numbers beside the papers', and ``reports/README.md``.

The report stage calls :func:`write_report`, which reads ``reports/summary.csv`` (the
evaluate stage's gathering of every metrics file) and writes

    reports/tables/headline.md            every method × dataset: ACC, NMI, ARI, ln p, time
    reports/tables/collier2019_table1.md  GMVAE vs Concrete GMVAE (Collier & Urdiales 2019)
    reports/tables/nagpal2019_table1.md   their configurations, clusters used (Nagpal et al.)
    reports/tables/nagpal2019_table2.md   latent clusterings, CS and NMI, at Z = 8, 10, 16, 64
                                          (the latent sweep, stages/sweep.py)
    reports/tables/singh2018_table1.md    mixture-of-experts regression (Singh et al. 2018),
                                          and their sec. 8.1: VaDE against DMVAE
    reports/README.md                     what was run, the tables, "does it hold?", figures

Every cell of ours is a number or "not run: <why>". Nothing in these files is written by
hand. Our numbers are the mean ± std over the ``seeds`` of params.yaml (vaemix.seeds);
the std is left out when a run has one seed.

A collapsed run (too few of its K clusters used; vaemix.report.summary) is never shown as a
result: its cells read "collapsed: 1 of 10 clusters (~~0.115~~)" (the headline: a
``clusters`` column and the scores struck out), and a "does it hold?" line that needs it
says it cannot be judged instead of answering yes or no.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from vaemix.config import SWEEP_VARIANTS, Params, resolve_device
from vaemix.io import write_text
from vaemix.moe.report import moe_table_markdown, moe_verdicts
from vaemix.protocols import other_start_run, paper_run, split_run
from vaemix.report.protocols_table import both_protocols, published
from vaemix.report.summary import (
    RESULT_KEYS,
    cluster_note,
    fill_collapse,
    is_collapsed,
    result_text,
)
from vaemix.report.verdicts import Stat, answer, compare
from vaemix.report.verdicts import markdown_table as _table
from vaemix.run_ids import RunId
from vaemix.seeds import seeds_of

# Collier & Urdiales 2019, Table 1: test E_q[ln p(x|y,z)] and training hours, mean ± std of
# 11 runs on one V100 (binarised MNIST; CIFAR-100 on the 20 coarse classes).
COLLIER_TABLE1 = {
    "mnist": {"K": 10, "gmvae": ((-46.61, 0.79), (15.73, 4.16)),
              "concrete_gmvae": ((-46.96, 0.81), (3.55, 0.69))},
    "cifar100": {"K": 20, "gmvae": ((-1725.47, 2.20), (47.24, 8.34)),
                 "concrete_gmvae": ((-1725.87, 2.12), (5.73, 0.84))},
}

# Nagpal et al. 2019, Table 2: (completeness, NMI) on MNIST at latent dims 8, 10, 16, 64.
# The text of the report we have lost the table's layout; the order of the numbers is
# read as Z = 8, 10, 16, 64 per row, which agrees with their text (VAE+GMM best at Z = 16
# for both scores; Z = 64 never the best).
NAGPAL_DIMS = (8, 10, 16, 64)
NAGPAL_TABLE2 = {
    "VAE+K-Means": ((0.64, 0.61), (0.61, 0.61), (0.64, 0.63), (0.63, 0.61)),
    "VAE+GMM": ((0.77, 0.77), (0.82, 0.82), (0.84, 0.84), (0.67, 0.66)),
    "VAE+DP-GMM": ((0.77, 0.83), (0.83, 0.78), (0.77, 0.70), (0.70, 0.76)),
    "GMVAE": ((0.69, 0.78), (0.74, 0.73), (0.83, 0.82), (0.67, 0.71)),
    "GMVAE+DP-GMM": ((0.80, 0.79), (0.80, 0.79), (0.72, 0.71), (0.81, 0.80)),
    "Proposed network (soft Gumbel)": ((0.77, 0.65), (0.76, 0.68), (0.68, 0.58), (0.70, 0.64)),
    "Proposed network (hard Gumbel)": ((0.69, 0.63), (0.73, 0.63), (0.67, 0.57), (0.60, 0.53)),
}
# their rows -> our runs, named <run>_z<d> in the latent sweep (stages/sweep.py); at the main
# latent dim without a sweep run, the main runs (gmvae_dpgmm with the `hard` of params.yaml)
NAGPAL_RUNS = {  # (our run's base, its baseline or None)
    "VAE+K-Means": ("vae", "kmeans"), "VAE+GMM": ("vae", "gmm"),
    "VAE+DP-GMM": ("vae", "dpgmm"), "GMVAE": ("gmvae", None),
    "GMVAE+DP-GMM": ("gmvae", "dpgmm"),
    "Proposed network (soft Gumbel)": ("gmvae_dpgmm_soft", None),
    "Proposed network (hard Gumbel)": ("gmvae_dpgmm_hard", None),
    # their third experiment (sec. 4.4): no numbers in Table 2, only their Fig. 3
    "Proposed network (from a trained GMVAE)": ("gmvae_dpgmm_from_gmvae", None),
}
# The Gumbel of gmvae_dpgmm_paper (vaemix.models.gmvae_dpgmm.PAPER: soft; the report imports
# no model, tests/test_protocols.py checks that the two agree)
NAGPAL_HARD = False
# Nagpal et al. 2019, Table 1: network, model, components (their configurations)
NAGPAL_TABLE1 = (
    ("VAE", "Fixed", "vae", "1"), ("VAE", "K-means", "vae+kmeans", "10"),
    ("VAE", "GMM", "vae+gmm", "10"), ("VAE", "DP-GMM", "vae+dpgmm", "Infinite"),
    ("GM-VAE", "Fixed", "gmvae", "10"), ("GM-VAE", "DP-GMM", "gmvae+dpgmm", "Infinite"),
)
# Singh et al. 2018, sec. 8.1: VaDE against DMVAE, seconds per epoch and epochs to converge
SINGH_SECONDS_PER_EPOCH = {"vade": 13.0, "dmvae": 3.5}
SINGH_EPOCHS_TO_CONVERGE = {"vade": "500-700", "dmvae": "200-300"}
CONVERGED_WITHIN = 0.01  # "stops improving": first evaluation within this of the best ACC

HEADLINE_KEYS = ("acc", "nmi", "train_acc", "train_nmi", "ari", "test_recon_ll",
                 "train_seconds")
TABLES = ("headline", "collier2019_table1", "nagpal2019_table1", "nagpal2019_table2",
          "singh2018_table1")


class Results:
    """Our numbers by (dataset, method, key), from reports/summary.csv, with the reason
    a number is missing."""

    def __init__(self, df: pd.DataFrame, params: Params) -> None:
        self.df, self.params = fill_collapse(df, params), params

    def _row(self, dataset: str, method: str) -> pd.Series | None:
        rows = self.df[(self.df["dataset"] == dataset) & (self.df["method"] == method)]
        return None if rows.empty else rows.iloc[0]

    def collapsed(self, dataset: str, method: str) -> bool:
        row = self._row(dataset, method)
        return row is not None and is_collapsed(row)

    def clusters(self, dataset: str, method: str) -> str:
        """How many clusters the run uses (vaemix.report.summary.cluster_note), "" if none."""
        row = self._row(dataset, method)
        return "" if row is None else cluster_note(row)

    def unjudged(self, dataset: str, methods: list[str]) -> str | None:
        """None when none of ``methods`` collapsed on ``dataset``, else the verdict that
        replaces yes/no: "cannot be judged, the runs collapsed: gmvae (1 of 10 clusters),
        ..."."""
        down = [m for m in methods if self.collapsed(dataset, m)]
        if not down:
            return None
        how = {m: self.clusters(dataset, m).removeprefix("collapsed").lstrip(": ") for m in down}
        which = ", ".join(f"{m} ({how[m]})" for m in down)
        return f"cannot be judged, the run{'s' * (len(down) > 1)} collapsed: {which}"

    def why_missing(self, dataset: str, method: str) -> str:
        if dataset not in self.params["datasets"]:
            return f"not run: '{dataset}' is not in datasets"
        base = split_run(RunId.parse(method).base)[0]  # <run>_z<d>, <method>_paper too
        known = [*self.params["encoders"], *self.params["methods"], *SWEEP_VARIANTS,
                 "gmvae_dpgmm_from_gmvae"]
        if base not in known and not method.startswith("moe_"):
            return f"not run: '{base}' is not in methods"
        return f"not run: no metrics for {dataset}/{method}"

    def get(self, dataset: str, method: str, key: str) -> float | None:
        rows = self.df[(self.df["dataset"] == dataset) & (self.df["method"] == method)]
        if rows.empty or key not in rows or pd.isna(rows.iloc[0][key]):
            return None
        value = float(rows.iloc[0][key])
        return value if math.isfinite(value) else None

    def stat(self, dataset: str, method: str, key: str) -> Stat | None:
        """The mean, std and number of seeds of ``key``; None when the run lacks it."""
        value = self.get(dataset, method, key)
        if value is None:
            return None
        std = self.get(dataset, method, f"{key}_std")
        return Stat(value, math.nan if std is None else std,
                    int(self.get(dataset, method, "n_seeds") or 1))

    def cell(self, dataset: str, method: str, key: str, fmt: str = "{:.3f}",
             scale: float = 1.0, mark: bool = True) -> str:
        """``mean ± std`` over seeds (the mean alone for one seed), or why it is missing.
        A collapsed run's number is struck out, after "collapsed: k of K clusters" when
        ``mark`` (tables without a column that says so)."""
        value = self.get(dataset, method, key)
        if value is None:
            return self.why_missing(dataset, method)
        text = fmt.format(value * scale)
        std = self.get(dataset, method, f"{key}_std")
        text = text if std is None else f"{text} ± {fmt.format(std * scale)}"
        if not self.collapsed(dataset, method):
            return text
        return f"{self.clusters(dataset, method)} ({result_text(text, True)})" if mark else (
            result_text(text, key in RESULT_KEYS))


def headline(res: Results) -> tuple[str, list[str]]:
    rows = []
    for ds in res.params["datasets"]:
        for method in sorted(set(res.df[res.df["dataset"] == ds]["method"]),
                             key=list(res.df["method"]).index):
            if method.startswith("moe_"):
                continue
            note = res.clusters(ds, method) or "n/a"
            rows.append([ds, method, f"**{note}**" if res.collapsed(ds, method) else note] + [
                # n/a: not defined for it (e.g. ACC of an AE)
                "n/a" if res.get(ds, method, k) is None else res.cell(ds, method, k, mark=False)
                for k in HEADLINE_KEYS] + [res.cell(ds, method, "n_seeds", "{:.0f}", mark=False)])
    text = ("acc, nmi, ari: on the test split; train_acc, train_nmi: on the training images "
            "the clustering was fitted on (transductive, as deep clustering papers score). "
            "`<method>_paper`: as its paper trains it; `<method>`: vaemix's protocol.\n\n"
            + _table(["dataset", "method", "clusters", *HEADLINE_KEYS, "seeds"], rows))
    extra = [both_protocols(res), published(res)]
    return "\n\n".join([text, *[e for e in extra if e]]), []


def collier_table1(res: Results) -> tuple[str, list[str]]:
    """Collier & Urdiales 2019, Table 1, on the runs as they train them (``gmvae_paper``,
    ``concrete_gmvae_paper``); time compared per epoch (their hours are to early stopping)."""
    rows, verdicts = [], []
    g_run, c_run = paper_run("gmvae"), paper_run("concrete_gmvae")
    for ds, pub in COLLIER_TABLE1.items():
        row = [ds, str(pub["K"])]
        for m in (g_run, c_run):
            (ll, ll_sd), (hours, hours_sd) = pub[split_run(m)[0]]
            row += [res.cell(ds, m, "test_recon_ll", "{:.2f}"), f"{ll:.2f} ± {ll_sd:.2f}",
                    res.cell(ds, m, "seconds_per_epoch", "{:.2f}"),
                    f"{hours:.2f} ± {hours_sd:.2f}"]
        rows.append(row)
        unjudged = res.unjudged(ds, [g_run, c_run])
        g, c = (res.stat(ds, m, "test_recon_ll") for m in (g_run, c_run))
        (gl, gs), (cl, cs) = pub["gmvae"][0], pub["concrete_gmvae"][0]
        claim = f"{ds}: Concrete GMVAE's test ln p(x|y,z) is as good as GMVAE's"
        ran = g is not None and c is not None
        verdicts.append(_verdict(
            claim + " (answer: is it below?)", ran, unjudged, ran and compare(
                (c_run, g_run), c, g, a_below_b=True, fmt="{:.2f}",
                paper=f"no, a tie: {cl:.2f} ± {cs:.2f} vs {gl:.2f} ± {gs:.2f}")))
        tg, tc = (res.stat(ds, m, "seconds_per_epoch") for m in (g_run, c_run))
        paper = pub["gmvae"][1][0] / pub["concrete_gmvae"][1][0]
        ran = tg is not None and tc is not None
        verdicts.append(_verdict(
            f"{ds}: Concrete GMVAE trains faster per epoch than GMVAE", ran, unjudged,
            ran and compare((c_run, g_run), tc, tg, a_below_b=True, fmt="{:.2f} s",
                            paper=f"{paper:.1f}× faster in hours to early stopping")))
    header = ["dataset", "K", "GMVAE ln p (ours)", "GMVAE ln p (paper)",
              "GMVAE s/epoch (ours)", "GMVAE hours (paper)", "Concrete ln p (ours)",
              "Concrete ln p (paper)", "Concrete s/epoch (ours)", "Concrete hours (paper)"]
    note = ("Both as their paper trains them (`gmvae_paper`, `concrete_gmvae_paper`, the "
            "`paper` protocol). Their times are hours to early stopping on a V100; ours are "
            "seconds per epoch on this run's device, the fair comparison at unequal epochs.")
    return note + "\n\n" + _table(header, rows), verdicts


def _verdict(claim: str, ran: bool, unjudged: str | None, answer: str | bool) -> str:
    """A "does it hold?" line: ``claim: not run`` when its runs are missing, ``claim: <why
    it cannot be judged>`` when one collapsed, else ``claim: <answer>`` (the answer is
    computed only when the runs exist: ``ran and f"..."``)."""
    if not ran:
        return f"{claim}: not run"
    return f"{claim}: {unjudged}" if unjudged else f"{claim}: {answer}"


def _nagpal_run(res: Results, name: str, dim: int) -> tuple[str | None, str]:
    """(our run for Nagpal et al.'s row ``name`` at latent dim ``dim``, or None; and why
    it is missing)."""
    base, baseline = NAGPAL_RUNS[name]
    sweep = res.params.get("latent_sweep") or {}
    swept = "mnist" in res.params["datasets"] and dim in (sweep.get("latent_dims") or [])
    in_sweep = {"vae": base in res.params["encoders"],
                "gmvae_dpgmm_from_gmvae": "gmvae_dpgmm" in (sweep.get("from_gmvae") or [])}.get(
        base, base in (sweep.get("runs") or []))
    if baseline:
        in_sweep = in_sweep and base in (sweep.get("baseline_encoders") or [])
    if swept and in_sweep:
        return RunId(base, dim, baseline).name, ""
    # at the main latent dim, the main runs as the paper trains them (gmvae_paper, ...)
    z = int(res.params["model"]["mnist"]["latent_dim"])
    hard = NAGPAL_HARD
    main = {"gmvae_dpgmm_soft": paper_run("gmvae_dpgmm") if not hard else None,
            "gmvae_dpgmm_hard": paper_run("gmvae_dpgmm") if hard else None,
            "gmvae_dpgmm_from_gmvae": None, "gmvae": paper_run("gmvae")}.get(base, base)
    if dim == z and main is not None:
        return RunId(main, baseline=baseline).name, ""
    if dim == z and not swept:
        return None, (f"not run: Z = {z} is not in the latent sweep, and the main runs have "
                      + ("no start from a GMVAE" if base == "gmvae_dpgmm_from_gmvae" else
                         f"the paper's hard: {str(hard).lower()}"))
    if not swept:
        return None, f"not run: latent dim {dim} is not in the latent sweep (main runs: Z = {z})"
    return None, f"not run: {RunId(base, baseline=baseline)} is not in the latent sweep's params"


def _left_out(collapsed: list[tuple[str, int]]) -> str:
    """The runs a verdict leaves out because they collapsed, as a clause to append."""
    if not collapsed:
        return ""
    return "; left out, collapsed: " + ", ".join(f"{n} at Z = {d}" for n, d in collapsed)


def nagpal_table2(res: Results) -> tuple[str, list[str]]:
    rows, nmi, collapsed = [], {}, []
    for name in NAGPAL_RUNS:
        published = NAGPAL_TABLE2.get(name)
        for i, dim in enumerate(NAGPAL_DIMS):
            run, why = _nagpal_run(res, name, dim)
            if run is None:
                ours = [why, why]
            else:
                ours = [res.cell("mnist", run, "completeness"), res.cell("mnist", run, "nmi")]
                if res.collapsed("mnist", run):  # never a result a verdict rests on
                    collapsed.append((name, dim))
                else:
                    nmi[name, dim] = res.stat("mnist", run, "nmi")
            paper = ([f"{published[i][0]:.2f}", f"{published[i][1]:.2f}"] if published
                     else ["n/a", "n/a"])
            rows.append([name, str(dim), *ours, *paper])
    verdicts = []
    below = [(alt, nmi.get(("GMVAE+DP-GMM", dim))) for (name, dim), alt in nmi.items()
             if name.startswith("Proposed network")]
    below = [(a, b) for a, b in below if a is not None and b is not None]
    pairs = [(n, d) for n, d in collapsed
             if n.startswith("Proposed network") or n == "GMVAE+DP-GMM"]
    one_seed = len(seeds_of(res.params)) < 2
    if below:
        answers = [answer(a, b, a_below_b=True) for a, b in below]
        counts = ", ".join(f"{answers.count(a)} {a}" for a in dict.fromkeys(answers))
        verdicts.append("The alternating network stays below GMVAE + DP-GMM (NMI; paper "
                        "protocol): " + (f"cannot be judged from one seed, below in "
                                         f"{sum(a.mean < b.mean for a, b in below)} of "
                                         f"{len(below)} (variant, Z) pairs" if one_seed else
                                         f"{counts} over {len(below)} (variant, Z) pairs")
                        + _left_out(pairs))
    elif pairs:
        verdicts.append("The alternating network stays below GMVAE + DP-GMM (NMI): cannot be "
                        "judged, the runs collapsed: "
                        + ", ".join(f"{n} at Z = {d}" for n, d in pairs))
    else:
        verdicts.append("The alternating network stays below GMVAE + DP-GMM: not run")
    scored = {k: v.mean for k, v in nmi.items() if v is not None and k[0] in NAGPAL_TABLE2}
    left_out = _left_out([(n, d) for n, d in collapsed if n in NAGPAL_TABLE2])
    if len({d for _, d in scored}) > 1:
        (best_name, best_dim), best = max(scored.items(), key=lambda kv: kv[1])
        found = "yes" if (best_name, best_dim) == ("VAE+GMM", 16) else "no"
        verdicts.append(f"VAE+GMM at Z = 16 is the best of all (NMI; paper protocol): "
                        f"{'cannot be judged from one seed' if one_seed else found}, "
                        f"the best is {best_name} at Z = {best_dim} ({best:.3f})" + left_out)
        at64 = [n for n in {n for n, _ in scored}
                if max((v, d) for (m, d), v in scored.items() if m == n)[1] == 64]
        found = "yes" if not at64 else "no"
        verdicts.append(f"Z = 64 gives no model its best score (NMI; paper protocol): "
                        f"{'cannot be judged from one seed' if one_seed else found}"
                        + (f", best at 64: {', '.join(sorted(at64))}" if at64 else "")
                        + left_out)
    else:
        verdicts.append("VAE+GMM at Z = 16 is the best of all; Z = 64 never the best: not run "
                        "(one latent dim)")
    return _table(["model", "Z", "CS (ours)", "NMI (ours)", "CS (paper)", "NMI (paper)"],
                  rows), verdicts


def nagpal_table1(res: Results) -> tuple[str, list[str]]:
    """Their configurations, with the number of clusters our runs use at each Z."""
    rows = []
    for network, model, run, components in NAGPAL_TABLE1:
        name = {"vae": None, "vae+kmeans": "VAE+K-Means", "vae+gmm": "VAE+GMM",
                "vae+dpgmm": "VAE+DP-GMM", "gmvae": "GMVAE",
                "gmvae+dpgmm": "GMVAE+DP-GMM"}[run]
        ours = []
        for dim in NAGPAL_DIMS:
            if name is None:  # the VAE alone: one component, nothing to count
                found, why = _nagpal_run(res, "VAE+GMM", dim)
                ours.append("1" if found else why)
                continue
            found, why = _nagpal_run(res, name, dim)
            if found is not None and (res.collapsed("mnist", found) or "DP-GMM" in model):
                ours.append(res.clusters("mnist", found) or res.why_missing("mnist", found))
            else:
                ours.append(why if found is None else
                            res.cell("mnist", found, "n_clusters_used", "{:.1f}"))
        rows.append([network, model, "8, 10, 16, 64", components, *ours])
    header = ["network", "model", "latent dims (paper)", "components (paper)",
              *(f"clusters used, Z = {d} (ours)" for d in NAGPAL_DIMS)]
    return _table(header, rows), []


def singh_table1(res: Results, metrics_root: Path) -> tuple[str, list[str]]:
    # Singh et al.'s Table 1 claim is on gates trained from random networks: judged on the
    # paper-protocol gates (moe_<gate>_paper_z<d>), never on vaemix's anchored ones
    verdicts = moe_verdicts(res.params, metrics_root)
    # the evaluate stage's table (reports/moe_table.md), under this file's own title
    lines = moe_table_markdown(res.params, metrics_root).splitlines()[1:]
    moe = "\n".join("#" + ln if ln.startswith("## ") else ln for ln in lines).strip()
    # that table (vaemix.moe.report) does not mark collapsed gates: say which they are
    down = [f"{ds}/{m} ({res.clusters(ds, m).removeprefix('collapsed').lstrip(': ')})"
            for ds, m in zip(res.df["dataset"], res.df["method"], strict=True)
            if str(m).startswith("moe_") and res.collapsed(ds, m)]
    if down:
        moe += ("\n\n**Collapsed** (the gate uses too few of its experts; these rows are not "
                "results): " + ", ".join(down) + ".")
    speed, speed_verdicts = singh_vade_vs_dmvae(res, metrics_root.parent / "curves")
    return moe + "\n\n" + speed, verdicts + speed_verdicts


def epochs_to_converge(curves: Path) -> list[int]:
    """Per seed (``curves`` and its ``seed<s>/``): the first evaluated epoch whose test ACC
    is within ``CONVERGED_WITHIN`` of that run's best, i.e. where clustering stops
    improving."""
    out = []
    for tsv in sorted([curves / "plots/metrics/test/acc.tsv",
                       *curves.glob("seed*/plots/metrics/test/acc.tsv")]):
        if not tsv.is_file():
            continue
        table = pd.read_csv(tsv, sep="\t")
        if table.empty:
            continue
        best = float(table["acc"].max())
        first = table[table["acc"] >= best - CONVERGED_WITHIN].iloc[0]
        out.append(int(first["step"]) + 1)  # dvclive steps count epochs from 0
    return out


def singh_vade_vs_dmvae(res: Results, curves_root: Path) -> tuple[str, list[str]]:
    """Singh et al. 2018, sec. 8.1: VaDE against DMVAE, both as the paper trains them
    (``vade_paper``, ``dmvae_paper``): seconds per epoch, epochs until the clustering stops
    improving (test ACC within 0.01 of its best), and the robustness to the start (each
    also from the other start, ``<method>_paper_other_start``), per dataset."""
    rows, verdicts = [], []
    runs = {m: paper_run(m) for m in ("vade", "dmvae")}
    for ds in res.params["datasets"]:
        per_epoch = {m: res.stat(ds, r, "seconds_per_epoch") for m, r in runs.items()}
        conv = {m: epochs_to_converge(curves_root / ds / r) for m, r in runs.items()}
        row = [ds]
        for m, r in runs.items():
            # a collapsed run's numbers: struck out, after how many clusters it used
            ours = (res.clusters(ds, r) + " (~~{}~~)" if res.collapsed(ds, r) else "{}").format
            epochs = res.get(ds, r, "epochs")
            row += [res.why_missing(ds, r) if per_epoch[m] is None
                    else ours(per_epoch[m].text("{:.2f}")),
                    f"{SINGH_SECONDS_PER_EPOCH[m]:.1f}",
                    (ours(f"{Stat.of(conv[m]).text('{:.1f}')} of {epochs:.0f}") if conv[m]
                     else res.why_missing(ds, r)),
                    SINGH_EPOCHS_TO_CONVERGE[m]]
        rows.append(row)
        names = (runs["dmvae"], runs["vade"])
        unjudged = res.unjudged(ds, list(names))
        claim = f"{ds}: DMVAE takes less time per epoch than VaDE"
        ran = None not in per_epoch.values()
        paper = SINGH_SECONDS_PER_EPOCH["vade"] / SINGH_SECONDS_PER_EPOCH["dmvae"]
        verdicts.append(_verdict(claim, ran, unjudged, ran and compare(
            names, per_epoch["dmvae"], per_epoch["vade"], a_below_b=True,
            fmt="{:.2f} s", paper=f"3.5 s vs 13 s, {paper:.1f}×")))
        claim = f"{ds}: DMVAE's clustering stops improving in fewer epochs than VaDE's"
        ran = bool(conv["vade"] and conv["dmvae"])
        verdicts.append(_verdict(claim, ran, unjudged, ran and compare(
            names, Stat.of(conv["dmvae"]), Stat.of(conv["vade"]), a_below_b=True,
            fmt="{:.1f}", paper="200-300 vs 500-700 epochs")))
        verdicts.append(singh_robustness(res, ds))
    header = ["dataset", "VaDE s/epoch (ours)", "VaDE s/epoch (paper)",
              "VaDE epochs to converge (ours)", "VaDE epochs (paper)",
              "DMVAE s/epoch (ours)", "DMVAE s/epoch (paper)",
              "DMVAE epochs to converge (ours)", "DMVAE epochs (paper)"]
    text = ["## VaDE against DMVAE (sec. 8.1): time per epoch and epochs to converge", "",
            "Both as their papers train them (`vade_paper`, `dmvae_paper`). Epochs to "
            f"converge: the first evaluated epoch whose test ACC is within {CONVERGED_WITHIN} "
            "of the run's best (mean over seeds), of the epochs trained. Their times are on "
            "their hardware, ours on this run's device.", "",
            _table(header, rows)]
    return "\n".join(text), verdicts


def singh_robustness(res: Results, ds: str) -> str:
    """Singh et al. 2018, sec. 8.1.2: VaDE needs its pretraining, DMVAE is robust to the
    start. Judged on the ACC each loses from its pretrained to its random start: VaDE's
    paper run starts pretrained and ``vade_paper_other_start`` at random; DMVAE's paper run
    starts at random and ``dmvae_paper_other_start`` pretrained."""
    claim = f"{ds}: DMVAE is more robust to its start than VaDE (ACC lost without pretraining)"
    pairs = {"vade": (paper_run("vade"), other_start_run("vade")),
             "dmvae": (other_start_run("dmvae"), paper_run("dmvae"))}   # (pretrained, random)
    stats = {m: [res.stat(ds, r, "acc") for r in p] for m, p in pairs.items()}
    if any(s is None for pair in stats.values() for s in pair):
        return f"{claim}: not run (needs {', '.join(r for p in pairs.values() for r in p)}; "\
               "params.yaml paper_starts)"
    unjudged = res.unjudged(ds, [r for p in pairs.values() for r in p])
    if unjudged:
        return f"{claim}: {unjudged}"
    lost = {m: Stat(pre.mean - rand.mean, math.hypot(pre.std, rand.std), min(pre.n, rand.n))
            for m, (pre, rand) in stats.items()}
    return f"{claim}: " + compare(("DMVAE loses", "VaDE loses"), lost["dmvae"], lost["vade"],
                                  a_below_b=True,
                                  paper="VaDE poor without pretraining, DMVAE robust")


def _git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return out.stdout.strip() if out.returncode == 0 else "unknown (not a git checkout)"


def _figures(res: Results, figures: Path) -> list[str]:
    """The README's figures: per dataset the summaries, each mixture model's samples,
    latents and curves (a collapsed run's under a line that says so) and the MoE fits,
    linked as ``figures/<dataset>/<name>.png`` where ``figures`` holds them (the report
    stage publishes the linked ones into reports/figures/, vaemix.report.figures)."""
    lines = []
    for ds in res.params["datasets"]:
        names = ["summary_main", "summary_sweep"]
        names += [f"{m}_{kind}" for m in res.params["methods"]
                  for kind in ("samples", "latents", "curves")]
        names += ["moe_mse_vs_latent_dim", *sorted(p.stem for p in (figures / ds).glob(
            "moe_*_fit.png"))]
        shown, warned = [], set()
        for name in names:
            if not (figures / ds / f"{name}.png").is_file():
                continue
            method = name.rsplit("_", 1)[0]
            if method in res.params["methods"] and res.collapsed(ds, method) and (
                    method not in warned):
                warned.add(method)
                shown += [f"**{method}: {res.clusters(ds, method)}**: its figures show a "
                          "collapsed run, not a result.", ""]
            shown += [f"![{ds} {name.replace('_', ' ')}](figures/{ds}/{name}.png)", ""]
        if shown:
            lines += [f"### {ds}", "", *shown]
    return lines


def _collapsed_runs(res: Results) -> list[str]:
    """The README's list of collapsed runs (every table marks them too)."""
    fraction = float(res.params.get("collapse_fraction", 0.5))
    down = [f"- {ds}/{m}: {res.clusters(ds, m)}"
            for ds, m in zip(res.df["dataset"], res.df["method"], strict=True)
            if res.collapsed(ds, m)]
    rule = (f"A clustering that uses fewer than ceil({fraction:g} × K) of its K clusters "
            "(`collapse_fraction`) is collapsed: its numbers are struck out in every table "
            "and no \"does it hold?\" line rests on it. The DP-GMM runs (`*+dpgmm`, "
            "`gmvae_dpgmm*`) learn their K: they show their effective K, and count as "
            "collapsed only with a single cluster.")
    if not down:
        return ["## Collapsed runs", "", "None. " + rule, ""]
    return ["## Collapsed runs", "", rule, "", *down, ""]


def write_report(params: Params, root: str | os.PathLike = ".",
                 figures: str | os.PathLike | None = None) -> list[Path]:
    """Write the tables and ``reports/README.md``, which links the figures found in
    ``figures`` (default ``<root>/figures``, the report stage's full set) as
    ``figures/...``; return the paths written."""
    root = Path(root)
    reports = root / "reports"
    figures = root / "figures" if figures is None else Path(figures)
    res = Results(pd.read_csv(reports / "summary.csv"), params)
    builders: dict[str, Callable[[], tuple[str, list[str]]]] = {
        "headline": lambda: headline(res),
        "collier2019_table1": lambda: collier_table1(res),
        "nagpal2019_table1": lambda: nagpal_table1(res),
        "nagpal2019_table2": lambda: nagpal_table2(res),
        "singh2018_table1": lambda: singh_table1(res, reports / "metrics"),
    }
    titles = {
        "headline": "Every method and dataset, under both protocols",
        "collier2019_table1": "Collier & Urdiales 2019, Table 1: GMVAE vs Concrete GMVAE "
                              "(test E_q[ln p(x|y,z)], nats per example; training time)",
        "nagpal2019_table1": "Nagpal et al. 2019, Table 1: network and model configurations "
                             "(with the clusters our runs use)",
        "nagpal2019_table2": "Nagpal et al. 2019, Table 2: clustering of latents on MNIST "
                             "(completeness, NMI)",
        "singh2018_table1": "Singh et al. 2018, Table 1: mixture-of-experts regression; "
                            "sec. 8.1: VaDE against DMVAE",
    }
    written, sections = [], []
    for name in TABLES:
        text, verdicts = builders[name]()
        body = [f"# {titles[name]}", "", text, ""]
        if verdicts:
            body += ["**Does it hold?**", "", *[f"- {v}" for v in verdicts], ""]
        path = reports / "tables" / f"{name}.md"
        write_text(path, "\n".join(body))
        written.append(path)
        sections += [f"## {titles[name]}", "", f"[{name}.md](tables/{name}.md)", "", text, ""]
        if verdicts:
            sections += ["**Does it hold?**", "", *[f"- {v}" for v in verdicts], ""]
    digest = hashlib.sha256((root / "params.yaml").read_bytes()).hexdigest()[:12]
    header = [
        "# vaemix results",
        "",
        "Generated by the `report` stage of `dvc repro`; do not edit.",
        "",
        f"- profile: **{params.get('profile', 'full')}** (`profile` in params.yaml)",
        f"- commit: `{_git_commit(root)}`; params.yaml sha256: `{digest}`",
        f"- device: {resolve_device(params['device']).type}; precision: "
        f"{params.get('precision', 'fp32')}",
        f"- seeds: {seeds_of(params)} (every trained run; our numbers are mean ± std over "
        f"them); data seed: {params['seed']}; datasets: {', '.join(params['datasets'])}",
        f"- budget: epoch_scale {params['budget']['epoch_scale']}"
        + (f" (the paper-protocol runs: {paper_scale}, far from the papers' budgets)"
           if (paper_scale := params['budget'].get('paper_epoch_scale')) is not None else "")
        + f", max_train {params['budget']['max_train']}, max_test "
        f"{params['budget']['max_test']}",
        "",
    ]
    shown = ["## Figures", "", *_figures(res, figures)]
    readme = reports / "README.md"
    write_text(readme, "\n".join(header + _collapsed_runs(res) + sections + shown) + "\n")
    return [*written, readme]
