"""The published tables and reports/README.md, from a hand-made summary.

Numbers are chosen so each "does it hold?" line has a known answer; every cell of ours must
be a number, "n/a" (headline: not defined) or an explicit "not run: <why>".
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.test_pipeline_e2e import tiny_params
from vaemix.report.paper_tables import (
    COLLIER_TABLE1,
    NAGPAL_DIMS,
    NAGPAL_RUNS,
    TABLES,
    epochs_to_converge,
    write_report,
)

NUMBER = re.compile(r"^-?\d+(\.\d+)?( ± \d+(\.\d+)?)?$")
_NUM = r"-?\d+(\.\d+)?( ± \d+(\.\d+)?)?"
_USED = r"collapsed( in \d+ of \d+ seeds)?: \d+(\.\d)?( of \d+)? clusters?"
# a collapsed run's cell: how many clusters it used, its number struck out (vaemix.report.summary)
COLLAPSED = re.compile(rf"^(\*\*)?{_USED}(\*\*)?( \(~~{_NUM}( of \d+)?~~\))?$")
# a cell of ours that holds a run's number, collapsed or not
RESULT = re.compile(rf"^({_NUM}|{_USED} \(~~{_NUM}~~\))$")
CLUSTERS = re.compile(r"^(\d+(\.\d)?( of \d+)?|effective K \d+(\.\d)?)$")


def table_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of the first markdown table in ``text``."""
    lines: list[str] = []
    for ln in text.splitlines():
        if ln.startswith("|"):
            lines.append(ln)
        elif lines:  # the end of the first table
            break
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return cells[0], cells[2:]


def check_cells(rows: list[list[str]], labels: int = 1) -> None:
    """Every cell of ours: a number (struck out, ~~0.115~~, for a collapsed run), n/a, "not
    run: <why>", a count of clusters or a collapsed run's "collapsed: 1 of 10 clusters"."""
    for row in rows:
        for cell in row[labels:]:
            plain = cell.removeprefix("~~").removesuffix("~~")
            assert (NUMBER.match(plain) or cell == "n/a" or cell.startswith("not run: ")
                    or cell.isdigit() or COLLAPSED.match(cell) or CLUSTERS.match(cell)), (
                row, cell)


def write_acc_curve(curves: Path, accs: list[float], every: int = 5) -> None:
    """A dvclive test/acc.tsv: one evaluation every ``every`` epochs (steps from 0)."""
    tsv = curves / "plots/metrics/test/acc.tsv"
    tsv.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{every * (i + 1) - 1}\t{a}" for i, a in enumerate(accs)]
    tsv.write_text("step\tacc\n" + "\n".join(rows) + "\n")


def test_epochs_to_converge_by_hand(tmp_path):
    # best 0.70 at epoch 20; 0.695 (epoch 15) is within 0.01 of it: converged at epoch 15
    write_acc_curve(tmp_path, [0.5, 0.6, 0.695, 0.7])
    write_acc_curve(tmp_path / "seed1", [0.9, 0.5])  # a second seed: best at its first
    assert epochs_to_converge(tmp_path) == [15, 5]
    assert epochs_to_converge(tmp_path / "missing") == []


SEEDS = 3   # the paper runs' numbers are over three seeds: a claim is judged on their spread


def seeds_row(dataset: str, method: str, **values) -> dict:
    """A summary row over SEEDS seeds: ``key=(mean, std)`` or ``key=value``."""
    row = {"dataset": dataset, "method": method, "n_seeds": SEEDS}
    for key, value in values.items():
        mean, std = value if isinstance(value, tuple) else (value, None)
        row[key] = mean
        if std is not None:
            row[f"{key}_std"] = std
    return row


def write_seed_curves(curves: Path, accs: list[float]) -> None:
    """The same test-ACC curve for every seed (its top level and seed1/, seed2/)."""
    for sub in ("", *(f"seed{s}" for s in range(1, SEEDS))):
        write_acc_curve(curves / sub, accs)


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict]:
    params = tiny_params()
    params["datasets"] = ["mnist", "spiral"]
    params["seeds"] = list(range(SEEDS))
    params["moe"].update(gates=[], plain_gates=[])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    rows = [
        {"dataset": "mnist", "method": "ae", "test_recon_ll": -90.0, "train_seconds": 60.0},
        seeds_row("mnist", "gmvae_paper", acc=0.7, nmi=0.70, ari=0.5, completeness=0.71,
                  test_recon_ll=(-95.0, 0.1), train_seconds=7200.0,
                  seconds_per_epoch=(72.0, 1.0)),
        seeds_row("mnist", "concrete_gmvae_paper", acc=0.68, nmi=0.69, ari=0.5,
                  completeness=0.7, test_recon_ll=(-95.4, 0.1), train_seconds=900.0,
                  seconds_per_epoch=(9.0, 0.5)),
        seeds_row("mnist", "gmvae_paper+dpgmm", nmi=(0.66, 0.01), completeness=0.6),
        seeds_row("mnist", "gmvae_dpgmm_paper", nmi=(0.62, 0.01), completeness=0.5),
        seeds_row("mnist", "vae+gmm", nmi=(0.5, 0.1), completeness=(0.5, 0.02)),
        seeds_row("mnist", "vade_paper", acc=(0.8, 0.01), seconds_per_epoch=(10.0, 0.5),
                  epochs=10),
        seeds_row("mnist", "dmvae_paper", acc=(0.7, 0.02), seconds_per_epoch=(4.0, 0.2),
                  epochs=10),
        seeds_row("mnist", "vade_paper_other_start", acc=(0.3, 0.05)),
        seeds_row("mnist", "dmvae_paper_other_start", acc=(0.75, 0.02)),
        seeds_row("mnist", "vade", acc=(0.95, 0.01), train_acc=(0.96, 0.01)),
    ]
    for method, accs in (("vade_paper", [0.5, 0.6, 0.695, 0.7]),
                         ("dmvae_paper", [0.6, 0.68, 0.68, 0.67])):
        write_seed_curves(tmp_path / f"reports/curves/mnist/{method}", accs)
    (tmp_path / "reports").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(tmp_path / "reports" / "summary.csv", index=False)
    return tmp_path, params


def test_verdicts_are_computed_from_the_paper_runs_and_their_spread(project):
    root, params = project
    written = write_report(params, root)
    assert [p.name for p in written] == [f"{t}.md" for t in TABLES] + ["README.md"]
    collier = (root / "reports/tables/collier2019_table1.md").read_text()
    assert ("mnist: Concrete GMVAE's test ln p(x|y,z) is as good as GMVAE's (answer: is it "
            "below?): yes, concrete_gmvae_paper -95.40 ± 0.10 vs gmvae_paper -95.00 ± 0.10; "
            "paper: no, a tie") in collier
    assert ("mnist: Concrete GMVAE trains faster per epoch than GMVAE: yes, "
            "concrete_gmvae_paper 9.00 s ± 0.50 s vs gmvae_paper 72.00 s ± 1.00 s") in collier
    assert "cifar100: Concrete GMVAE trains faster per epoch than GMVAE: not run" in collier
    nagpal = (root / "reports/tables/nagpal2019_table2.md").read_text()
    assert ("The alternating network stays below GMVAE + DP-GMM (NMI; paper protocol): "
            "1 yes over 1 (variant, Z) pairs") in nagpal
    singh = (root / "reports/tables/singh2018_table1.md").read_text()
    assert ("mnist: DMVAE takes less time per epoch than VaDE: yes, dmvae_paper 4.00 s ± "
            "0.20 s vs vade_paper 10.00 s ± 0.50 s; paper: 3.5 s vs 13 s, 3.7×") in singh
    assert ("mnist: DMVAE's clustering stops improving in fewer epochs than VaDE's: yes, "
            "dmvae_paper 10.0 ± 0.0 vs vade_paper 15.0 ± 0.0") in singh
    assert ("mnist: DMVAE is more robust to its start than VaDE (ACC lost without "
            "pretraining): yes, DMVAE loses 0.050 ± 0.028 vs VaDE loses 0.500 ± 0.051") in singh
    assert "spiral: DMVAE takes less time per epoch than VaDE: not run" in singh


def test_a_difference_inside_the_spread_is_a_tie_and_one_seed_is_not_judged(project):
    root, params = project
    summary = pd.read_csv(root / "reports/summary.csv")
    at = summary["method"] == "concrete_gmvae_paper"
    summary.loc[at, "test_recon_ll_std"] = 1.0   # the gap of 0.4 nats is inside it
    summary.to_csv(root / "reports/summary.csv", index=False)
    write_report(params, root)
    collier = (root / "reports/tables/collier2019_table1.md").read_text()
    assert "(answer: is it below?): tie, the difference is inside the seeds' spread" in collier
    summary["n_seeds"] = 1
    summary.to_csv(root / "reports/summary.csv", index=False)
    write_report(params, root)
    singh = (root / "reports/tables/singh2018_table1.md").read_text()
    assert "DMVAE takes less time per epoch than VaDE: cannot be judged from one seed" in singh
    assert not re.search(r"mnist: DMVAE .*: (yes|no|tie)", singh)


def test_tables_have_the_published_rows_and_columns(project):
    root, params = project
    write_report(params, root)
    header, rows = table_rows((root / "reports/tables/collier2019_table1.md").read_text())
    assert [r[0] for r in rows] == list(COLLIER_TABLE1)
    assert len(header) == 10
    assert rows[0][2:5] == ["-95.00 ± 0.10", "-46.61 ± 0.79", "72.00 ± 1.00"]
    assert rows[1][2].startswith("not run: 'cifar100' is not in datasets")
    check_cells(rows)

    header, rows = table_rows((root / "reports/tables/nagpal2019_table2.md").read_text())
    assert header == ["model", "Z", "CS (ours)", "NMI (ours)", "CS (paper)", "NMI (paper)"]
    assert [r[0] for r in rows[::len(NAGPAL_DIMS)]] == list(NAGPAL_RUNS)
    assert {int(r[1]) for r in rows} == set(NAGPAL_DIMS)
    by = {(r[0], int(r[1])): r for r in rows}
    # mean ± std over seeds where the run has several
    assert by["VAE+GMM", 10][2:6] == ["0.500 ± 0.020", "0.500 ± 0.100", "0.82", "0.82"]
    assert by["VAE+GMM", 16][2].startswith("not run: latent dim 16 is not in the latent sweep")
    assert by["VAE+GMM", 8][2] == "not run: no metrics for mnist/vae_z8+gmm"  # swept, absent
    assert by["Proposed network (hard Gumbel)", 10][2] == (
        "not run: Z = 10 is not in the latent sweep, and the main runs have the paper's "
        "hard: false")
    assert by["GMVAE+DP-GMM", 10][3] == "0.660 ± 0.010"   # on gmvae_paper's latents
    assert by["Proposed network (from a trained GMVAE)", 10][4:6] == ["n/a", "n/a"]
    assert by["VAE+K-Means", 10][2] == "not run: no metrics for mnist/vae+kmeans"
    check_cells(rows)

    headline = (root / "reports/tables/headline.md").read_text()
    _, rows = table_rows(headline)
    assert [r[1] for r in rows][:3] == ["ae", "gmvae_paper", "concrete_gmvae_paper"]
    check_cells(rows, labels=2)
    both = headline.split("### Both protocols")[1]
    _, rows = table_rows(both)
    vade = next(r for r in rows if r[:2] == ["mnist", "vade"])
    assert vade[2:5] == ["0.800 ± 0.010", "0.950 ± 0.010", "+0.150"]
    assert "McConville et al. 2020, Table II" in headline.split("### Beside the published")[1]
    readme = (root / "reports/README.md").read_text()
    assert "Generated by the `report` stage" in readme and "**Does it hold?**" in readme


def test_a_forced_collapse_is_marked_and_not_judged(project):
    """gmvae_paper and concrete_gmvae_paper used 1 of 10 clusters: every table marks them,
    and no "does it hold?" line answers yes or no from them; a healthy run is shown as
    before."""
    root, params = project
    summary = pd.read_csv(root / "reports/summary.csv")
    used = {"gmvae_paper": 1, "concrete_gmvae_paper": 1, "gmvae_paper+dpgmm": 9,
            "gmvae_dpgmm_paper": 4, "vae+gmm": 10}
    summary["n_clusters_used"] = summary["method"].map(used)
    # as the evaluate stage writes them; the DP-GMMs' flags are left to be filled in
    summary["collapsed"] = summary["method"].map(
        {"gmvae_paper": True, "concrete_gmvae_paper": True, "vae+gmm": False})
    summary["n_components_effective"] = summary["method"].map(
        {"gmvae_paper+dpgmm": 9, "gmvae_dpgmm_paper": 4})
    summary["learns_k"] = summary["method"].isin(["gmvae_paper+dpgmm", "gmvae_dpgmm_paper"])
    gate = {"dataset": "mnist", "method": "moe_dvmoe_z2", "test_mse": 0.5, "acc": 0.3,
            "n_clusters_used": 3, "n_clusters_expected": 10, "collapsed": True}
    summary = pd.concat([summary, pd.DataFrame([gate])], ignore_index=True)
    summary.to_csv(root / "reports/summary.csv", index=False)
    write_report(params, root)

    collier = (root / "reports/tables/collier2019_table1.md").read_text()
    _, rows = table_rows(collier)
    assert rows[0][2] == "collapsed: 1 of 10 clusters (~~-95.00 ± 0.10~~)"
    assert rows[0][6] == "collapsed: 1 of 10 clusters (~~-95.40 ± 0.10~~)"
    assert ("cannot be judged, the runs collapsed: gmvae_paper (1 of 10 clusters), "
            "concrete_gmvae_paper (1 of 10 clusters)") in collier
    assert not re.search(r"mnist: Concrete .*: (yes|no|tie)", collier)
    check_cells(rows)

    header, rows = table_rows((root / "reports/tables/headline.md").read_text())
    assert header[:4] == ["dataset", "method", "clusters", "acc"]
    by = {r[1]: r for r in rows if r[0] == "mnist"}
    assert by["gmvae_paper"][2:4] == ["**collapsed: 1 of 10 clusters**", "~~0.700~~"]
    assert by["gmvae_paper"][header.index("train_seconds")] == "7200.000"  # a time
    assert by["vae+gmm"][2] == "10 of 10"  # healthy: as before
    assert by["vae+gmm"][header.index("nmi")] == "0.500 ± 0.100"
    # a DP-GMM shows its effective K, not judged against K = 10 (4 of 10 would collapse)
    assert by["gmvae_paper+dpgmm"][2] == "effective K 9"
    assert by["gmvae_dpgmm_paper"][2] == "effective K 4"
    assert by["ae"][2] == "n/a"
    check_cells(rows, labels=2)

    nagpal = (root / "reports/tables/nagpal2019_table2.md").read_text()
    assert "The alternating network stays below GMVAE + DP-GMM (NMI; paper protocol): 1 yes" \
        in nagpal
    _, rows = table_rows(nagpal)
    row = next(r for r in rows if r[:2] == ["GMVAE", "10"])
    assert row[2:4] == ["collapsed: 1 of 10 clusters (~~0.710~~)",
                        "collapsed: 1 of 10 clusters (~~0.700~~)"]
    check_cells(rows)
    _, rows = table_rows((root / "reports/tables/nagpal2019_table1.md").read_text())
    by = {r[1] if r[0] == "VAE" else f"GM {r[1]}": r for r in rows}
    assert by["GM Fixed"][5] == "collapsed: 1 of 10 clusters"
    assert by["GM DP-GMM"][5] == "effective K 9"
    check_cells(rows, labels=4)

    singh = (root / "reports/tables/singh2018_table1.md").read_text()
    assert "**Collapsed** (the gate uses too few of its experts" in singh
    assert "mnist/moe_dvmoe_z2 (3 of 10 clusters)" in singh

    readme = (root / "reports/README.md").read_text()
    assert "- profile: **full**" in readme
    assert "- mnist/gmvae_paper: collapsed: 1 of 10 clusters" in readme
    assert "- mnist/vae+gmm" not in readme and "- mnist/gmvae_paper+dpgmm" not in readme


def test_a_collapsed_vade_leaves_singh_unjudged(project):
    root, params = project
    summary = pd.read_csv(root / "reports/summary.csv")
    summary["n_clusters_used"] = summary["method"].map({"vade_paper": 2, "dmvae_paper": 10})
    summary.to_csv(root / "reports/summary.csv", index=False)  # an old summary: no flag
    write_report(params, root)
    singh = (root / "reports/tables/singh2018_table1.md").read_text()
    assert ("mnist: DMVAE takes less time per epoch than VaDE: cannot be judged, the run "
            "collapsed: vade_paper (2 of 10 clusters)") in singh
    assert "mnist: DMVAE's clustering stops improving in fewer epochs than VaDE's: cannot" in singh
    assert "mnist: DMVAE is more robust to its start than VaDE (ACC lost without pretraining): " \
        "cannot be judged, the run collapsed: vade_paper" in singh
    _, rows = table_rows(singh.split("## VaDE against DMVAE")[1])
    assert rows[0][1] == "collapsed: 2 of 10 clusters (~~10.00 ± 0.50~~)"
    assert rows[0][3] == "collapsed: 2 of 10 clusters (~~15.0 ± 0.0 of 10~~)"
    assert rows[0][5] == "4.00 ± 0.20"  # dmvae: healthy


REPO = Path(__file__).resolve().parents[1]


def test_the_committed_report_is_complete():
    """reports/README.md as committed (a CPU run, see the README): every figure and table it
    links is in the repository, and every table has only numbers or explained gaps."""
    readme = REPO / "reports/README.md"
    if not readme.is_file():
        pytest.skip("no committed report in this checkout")
    text = readme.read_text()
    links = re.findall(r"\]\(([^)#\s]+)\)", text)
    assert links, "the report links no figure or table"
    missing = [p for p in links if "://" not in p and not (readme.parent / p).is_file()]
    assert not missing, missing
    # leading label columns: Nagpal Table 1 also prints the paper's configurations
    labels = {"headline": 2, "nagpal2019_table1": 4}
    for name in TABLES:
        path = REPO / "reports/tables" / f"{name}.md"
        assert f"tables/{name}.md" in text and path.is_file(), name
        _, rows = table_rows(path.read_text())
        assert rows, name
        check_cells(rows, labels=labels.get(name, 1))


def test_a_verdict_is_yes_or_no_only_outside_the_seeds_spread():
    import math

    from vaemix.report.verdicts import Stat, answer

    assert answer(Stat(0.5, 0.01, 3), Stat(0.7, 0.02, 3), a_below_b=True) == "yes"
    assert answer(Stat(0.5, 0.01, 3), Stat(0.7, 0.02, 3), a_below_b=False) == "no"
    assert answer(Stat(0.69, 0.01, 3), Stat(0.7, 0.02, 3), a_below_b=True) == "tie"
    assert answer(Stat(0.5, math.nan, 1), Stat(0.7, 0.02, 3), a_below_b=True) == "unjudged"
    m = {"test_mse": 0.2, "std": {"test_mse": 0.05}, "n_seeds": 3}
    assert Stat.of_metrics(m, "test_mse") == Stat(0.2, 0.05, 3)
    one = Stat.of_metrics({"acc": 0.9}, "acc")
    assert (one.mean, one.n) == (0.9, 1) and math.isnan(one.std)
