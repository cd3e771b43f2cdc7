"""The headline's two extra tables: every method under both protocols, side by side, and
our transductive scores beside the published ones.

- Both protocols: each method as its paper trains it (``<method>_paper``) and under
  vaemix's protocol (``<method>``), test ACC and the transductive ``train_acc``, with the
  difference (vaemix - paper). vaemix.protocols says what each protocol is.
- Published: deep clustering scores the images it was fitted on (transductive), so the
  numbers to set beside a paper's are our ``train_*`` scores, on our training split; the
  table says how many images each number is on.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from vaemix.protocols import paper_run
from vaemix.report.verdicts import markdown_table as _table

# Published transductive scores on MNIST: (ACC, NMI or None, images, source)
PUBLISHED_MNIST = (
    ("N2D: AE + UMAP + GMM", "ae+umap_gmm", 0.948, 0.882, "MNIST-test, 10,000",
     "McConville et al. 2020, Table II"),
    ("N2D: AE + UMAP + GMM", "ae+umap_gmm", 0.979, None, "MNIST, 70,000",
     "McConville et al. 2020, Table II"),
    ("VaDE", paper_run("vade"), 0.9446, None, "MNIST, 70,000",
     "Jiang et al. 2017 (94.46%; their code, VaDE_test_mnist.py)"),
)
# N2D's Table II quotes the classic deep-clustering baselines on MNIST-test; the methods'
# own papers' scores come with their runs (vaemix.protocols.Published, in their modules).
QUOTED_BY_N2D = {"DEC": 0.856, "IDEC": 0.846}


def _quoted(res: Any) -> list[tuple[str, str | None, float, float | None, str, str]]:
    """The published rows that the paper runs carry (their metrics' ``published_*``), and
    N2D's quote of the same method when it has one."""
    df = res.df[(res.df["dataset"] == "mnist")]
    if "published_acc" not in df:
        return []
    rows = []
    for _, row in df[df["published_acc"].notna()].iterrows():
        run = str(row["method"])
        name = run.removesuffix("_paper").upper()
        nmi = None if pd.isna(row.get("published_nmi")) else float(row["published_nmi"])
        rows.append((name, run, float(row["published_acc"]), nmi, str(row["published_on"]),
                     str(row["published_source"])))
        if name in QUOTED_BY_N2D:
            rows.append((name, run, QUOTED_BY_N2D[name], None, "MNIST-test, 10,000",
                         "as quoted by McConville et al. 2020, Table II"))
    return rows


def _delta(res: Any, ds: str, a: str, b: str, key: str) -> str:
    """``b - a`` of ``key``, blank when either is missing or collapsed."""
    x, y = res.get(ds, a, key), res.get(ds, b, key)
    if x is None or y is None or res.collapsed(ds, a) or res.collapsed(ds, b):
        return ""
    return f"{y - x:+.3f}"


def both_protocols(res: Any) -> str:
    """Every method of ``methods`` on every dataset: paper and vaemix, test and train ACC."""
    rows = []
    for ds in res.params["datasets"]:
        for m in res.params["methods"]:
            p = paper_run(m)
            rows.append([ds, m, res.cell(ds, p, "acc"), res.cell(ds, m, "acc"),
                         _delta(res, ds, p, m, "acc"), res.cell(ds, p, "train_acc"),
                         res.cell(ds, m, "train_acc"), _delta(res, ds, p, m, "train_acc")])
    header = ["dataset", "method", "test ACC, paper", "test ACC, vaemix", "Δ",
              "train ACC, paper", "train ACC, vaemix", "Δ"]
    return ("### Both protocols\n\n`paper`: as the method's paper trains it (`<method>_paper`); "
            "`vaemix`: vaemix's start (the run `start`: DEC-DA's clustering on the augmented "
            "`ae_da` on the images of `start.dec_da_on`, N2D elsewhere), the warm-up and the "
            "anchor (`<method>`). Δ = vaemix − paper.\n\n" + _table(header, rows))


def published(res: Any) -> str:
    """MNIST: our transductive scores beside the published ones, with the images each is on."""
    if "mnist" not in res.params["datasets"]:
        return ""
    cap = (res.params.get("budget") or {}).get("max_train")
    ours_on = f"our training split, {cap:,}" if cap else "our training split, all of it"
    rows = []
    for name, run, acc, nmi, on, source in (*PUBLISHED_MNIST, *_quoted(res)):
        theirs = f"{acc:.3f}" + (f" / {nmi:.3f}" if nmi is not None else "")
        if run is None:
            ours = "not in vaemix yet"
        else:
            ours = res.cell("mnist", run, "train_acc")
            nmi_ours = res.get("mnist", run, "train_nmi")
            ours += f" / {nmi_ours:.3f}" if nmi_ours is not None else ""
        rows.append([name, theirs, on, source, f"`{run}`: {ours}" if run else ours, ours_on])
    header = ["method", "published ACC / NMI", "on", "source", "ours: train ACC / NMI",
              "ours on"]
    return ("### Beside the published numbers (transductive: scored on the images fitted)"
            "\n\n" + _table(header, rows))
