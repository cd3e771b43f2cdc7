"""Figures: every plotting function writes a valid PNG; the report walks a fake tree."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vaemix.errors import DataError
from vaemix.io import save_figure, save_npz
from vaemix.report.figures import (
    build_figures,
    linked_figures,
    main_runs,
    plots,
    publish_figures,
    sweep_runs,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> np.ndarray:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img.shape[0] > 20 and img.shape[1] > 20
    return img


def images(n: int, c: int, h: int = 8, w: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, c, h, w)).astype(np.float32)


def blobs(n_per: int = 30, k: int = 3, d: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(k, d))
    z = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres])
    y = np.repeat(np.arange(k), n_per).astype(np.int64)
    return z.astype(np.float32), y


# --- image_grid -----------------------------------------------------------------------

@pytest.mark.parametrize("c", [1, 3])
def test_image_grid_shape(c):
    grid = plots.image_grid(images(10, c), nrow=4, pad=2)
    rows, cols = 3, 4
    expected = (rows * 8 + (rows + 1) * 2, cols * 6 + (cols + 1) * 2)
    assert grid.shape == (expected if c == 1 else (*expected, 3))
    assert grid.min() >= 0.0 and grid.max() <= 1.0


def test_image_grid_places_images_and_fewer_than_nrow():
    imgs = images(3, 1)
    grid = plots.image_grid(imgs, nrow=8, pad=1, pad_value=1.0)
    assert grid.shape == (8 + 2, 3 * 6 + 4)
    np.testing.assert_allclose(grid[1:9, 1:7], imgs[0, 0])
    np.testing.assert_allclose(grid[1:9, 8:14], imgs[1, 0])
    assert (grid[0] == 1.0).all()


def test_image_grid_accepts_nhw_and_rejects_bad_channels():
    assert plots.image_grid(np.zeros((4, 5, 5)), nrow=2, pad=0).shape == (10, 10)
    with pytest.raises(ValueError):
        plots.image_grid(np.zeros((4, 2, 5, 5)), nrow=2)


# --- each figure ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["grey", "rgb", "points", "vectors"])
def test_plot_reconstructions(tmp_path, kind):
    rng = np.random.default_rng(0)
    x = {"grey": images(32, 1), "rgb": images(32, 3),
         "points": rng.normal(size=(32, 2)), "vectors": rng.normal(size=(32, 7))}[kind]
    out = tmp_path / "recon.png"
    plots.plot_reconstructions(x, np.clip(x + 0.05, 0, 1), out, title=kind)
    assert_png(out)


def test_plot_reconstructions_shape_mismatch(tmp_path):
    with pytest.raises(ValueError):
        plots.plot_reconstructions(images(4, 1), images(5, 1), tmp_path / "r.png")


def test_project_2d_pca_deterministic():
    z, _ = blobs(d=6)
    a, idx = plots.project_2d(z, "pca")
    b, _ = plots.project_2d(z * 1.0, "pca")
    assert a.shape == (len(z), 2) and len(idx) == len(z)
    np.testing.assert_array_equal(a, b)
    sub, idx = plots.project_2d(z, "pca", max_points=20)
    assert sub.shape == (20, 2) and (np.diff(idx) > 0).all()
    direct, _ = plots.project_2d(z[:, :2], "pca")
    np.testing.assert_allclose(direct, z[:, :2])


@pytest.mark.parametrize("d,method", [(2, "pca"), (6, "pca"), (6, "tsne"), (1, "pca")])
def test_plot_latents(tmp_path, d, method):
    z, y = blobs(d=d)
    y[:5] = -1  # unlabelled points are drawn grey
    pred = (y + 1) % 3
    out = tmp_path / "latents.png"
    plots.plot_latents(z, y, out, title="t", method=method, predictions={"vae+gmm": pred})
    assert_png(out)


def test_plot_latents_bytes_deterministic(tmp_path):
    z, y = blobs(d=4)
    plots.plot_latents(z, y, tmp_path / "a.png", predictions={"p": y})
    plots.plot_latents(z, y, tmp_path / "b.png", predictions={"p": y})
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_plot_confusion(tmp_path):
    _, y = blobs(k=4)
    pred = (y + 2) % 5
    y[:3] = -1
    out = tmp_path / "confusion.png"
    plots.plot_confusion(y, pred, out, title="c")
    assert_png(out)
    with pytest.raises(ValueError):
        plots.plot_confusion(np.full(5, -1), np.zeros(5), tmp_path / "none.png")


def write_curves(curves_dir: Path, with_timestamp: bool = False) -> None:
    for name in ("train/loss", "train/kl", "test/acc"):
        f = curves_dir / "plots" / "metrics" / f"{name}.tsv"
        f.parent.mkdir(parents=True, exist_ok=True)
        head = ("timestamp\t" if with_timestamp else "") + f"step\t{name}\n"
        rows = "".join(
            ("1700000000\t" if with_timestamp else "") + f"{s}\t{1.0 / (s + 1)}\n"
            for s in range(5)
        )
        f.write_text(head + rows)
    (curves_dir / "metrics.json").write_text("{}")


@pytest.mark.parametrize("with_timestamp", [False, True])
def test_plot_curves(tmp_path, with_timestamp):
    write_curves(tmp_path / "curves", with_timestamp)
    curves = plots.read_curves(tmp_path / "curves")
    assert list(curves) == ["test/acc", "train/kl", "train/loss"]
    assert list(curves["train/loss"]["step"]) == [0, 1, 2, 3, 4]
    out = tmp_path / "curves.png"
    plots.plot_curves(tmp_path / "curves", out, title="curves")
    assert_png(out)


def test_plot_curves_empty_dir_raises(tmp_path):
    assert plots.read_curves(tmp_path) == {}
    with pytest.raises(DataError, match=str(tmp_path)):
        plots.plot_curves(tmp_path, tmp_path / "c.png")


def reaches_past_edges(fig) -> bool:
    """Whether what a figure draws (the box ``bbox_inches="tight"`` would crop to: every
    drawn tick label, axis label, title and legend) reaches past its edges, where saving
    it as laid out cuts it off."""
    fig.canvas.draw()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())
    width, height = fig.get_size_inches()
    eps = 0.5 / fig.dpi  # half a pixel
    return bool(drawn.x0 < -eps or drawn.y0 < -eps or drawn.x1 > width + eps
                or drawn.y1 > height + eps)


def test_figures_laid_out_by_size_cut_no_label_off(tmp_path, monkeypatch):
    """The figures placed by set_margins (not measured, so drawn once) keep every tick
    label, axis label and title inside, with the widest values a run writes."""
    cut: dict[str, bool] = {}

    def check_then_save(fig, path, dpi=110, tight=False):
        cut[Path(path).name] = not tight and reaches_past_edges(fig)
        save_figure(fig, path, dpi, tight)

    monkeypatch.setattr(plots, "save_figure", check_then_save)
    curves = tmp_path / "curves"
    for i, name in enumerate(("train/loss", "train/recon_nll", "train/kl_y_weight",
                              "test/acc", "train/n_components_effective")):
        f = curves / "plots" / "metrics" / f"{name}.tsv"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"step\t{name}\n" + "".join(f"{s}\t{-123456.7 * (i + 1) / (s + 1)}\n"
                                                for s in range(300)))
    plots.plot_curves(curves, tmp_path / "curves.png", title="mnist: gmvae_dpgmm_paper curves")
    z, y = blobs(k=10, d=8)
    preds = {f"{m}+umap_gmm": (y + 1) % 10 for m in ("vade", "gmvae_dpgmm_paper")}
    plots.plot_latents(z * 1000, y, tmp_path / "latents.png", title="mnist: vade latents",
                       predictions=preds)
    for n_clusters in (3, 10, 30):
        plots.plot_confusion(y, np.arange(len(y)) % n_clusters, tmp_path / f"c{n_clusters}.png",
                             title="mnist: gmvae_dpgmm_paper")
    rng = np.random.default_rng(0)
    plots.plot_reconstructions(z[:, :2], z[:, :2] + 1, tmp_path / "rp.png", title="spiral: ae")
    plots.plot_reconstructions(z, z + 1, tmp_path / "rv.png", title="npz: ae")
    plots.plot_samples_per_cluster(rng.normal(size=(5, 6, 2)) * 100, tmp_path / "sp.png",
                                   title="spiral: vade", data=rng.normal(size=(50, 2)))
    plots.plot_samples_per_cluster(rng.normal(size=(30, 6, 5)), tmp_path / "sv.png",
                                   title="npz: gmvae_dpgmm")
    assert len(cut) == 9 and not any(cut.values()), cut


@pytest.mark.parametrize("kind", ["grey", "rgb", "points", "vectors"])
def test_plot_samples_per_cluster(tmp_path, kind):
    rng = np.random.default_rng(1)
    k, n = 4, 6
    samples = {"grey": images(k * n, 1).reshape(k, n, 1, 8, 6),
               "rgb": images(k * n, 3).reshape(k, n, 3, 8, 6),
               "points": rng.normal(size=(k, n, 2)),
               "vectors": rng.normal(size=(k, n, 5))}[kind]
    out = tmp_path / "samples.png"
    data = rng.normal(size=(50, 2)) if kind == "points" else None
    plots.plot_samples_per_cluster(samples, out, title=kind, data=data)
    assert_png(out)


def summary_rows() -> pd.DataFrame:
    """A summary of mnist (K = 10): main runs, a collapsed one, a DP-GMM, sweep runs, an
    encoder and a MoE run."""
    rows = [("ae", "encoder", None, None), ("vade", "mixture", 0.7, 10),
            ("gmvae", "mixture", 0.115, 1), ("gmvae_dpgmm", "mixture", 0.5, 4),
            ("vae+gmm", "baseline", 0.6, 10), ("vae+dpgmm", "baseline", 0.55, 12),
            ("vae_z8+gmm", "baseline", 0.58, 10), ("vae_z16+gmm", "baseline", 0.62, 10),
            ("gmvae_z8", "mixture", 0.64, 10), ("gmvae_z16", "mixture", 0.11, 1),
            ("moe_dvmoe_z2", "moe", 0.3, 10)]
    df = pd.DataFrame(rows, columns=["method", "kind", "acc", "n_clusters_used"])
    return df.assign(dataset="mnist", nmi=df["acc"] - 0.1, acc_std=0.01,
                     n_components_effective=df["n_clusters_used"],
                     learns_k=df["method"].isin(["gmvae_dpgmm", "vae+dpgmm"]))


PARAMS = {"model": {"mnist": {"n_clusters": 10}}, "collapse_fraction": 0.5}


def test_main_runs_are_the_clusterings_outside_the_sweep():
    main = main_runs(summary_rows(), PARAMS, "mnist").set_index("method")
    assert list(main.index) == ["vade", "gmvae", "gmvae_dpgmm", "vae+gmm", "vae+dpgmm"]
    assert main.loc["gmvae", "note"] == "collapsed: 1 of 10 clusters"
    assert bool(main.loc["gmvae", "collapsed"]) and not bool(main.loc["vade", "collapsed"])
    assert main.loc["gmvae_dpgmm", "note"] == "effective K 4"  # not judged against K
    assert main.loc["vae+dpgmm", "note"] == "effective K 12"
    assert main.loc["vade", "note"] == ""


def test_sweep_runs_by_latent_dim():
    sweep = sweep_runs(summary_rows(), PARAMS, "mnist")
    assert list(zip(sweep["run"], sweep["dim"], sweep["group"], strict=True)) == [
        ("vae+gmm", 8, "baselines on latents"), ("vae+gmm", 16, "baselines on latents"),
        ("gmvae", 8, "mixture models"), ("gmvae", 16, "mixture models")]
    assert list(sweep["collapsed"]) == [False, False, False, True]


def test_plot_run_bars_and_sweep(tmp_path):
    main = main_runs(summary_rows(), PARAMS, "mnist")
    plots.plot_run_bars(main, ("acc", "nmi"), tmp_path / "main.png", title="main")
    img = assert_png(tmp_path / "main.png")
    assert img.shape[0] < img.shape[1]  # five rows: a short, wide figure
    plots.plot_run_bars(main, ("acc", "nmi"), tmp_path / "again.png", title="main")
    assert (tmp_path / "main.png").read_bytes() == (tmp_path / "again.png").read_bytes()
    plots.plot_run_bars(main.iloc[0:0], ("acc",), tmp_path / "empty.png")
    assert_png(tmp_path / "empty.png")
    plots.plot_sweep(sweep_runs(summary_rows(), PARAMS, "mnist"), ("acc", "nmi"),
                     tmp_path / "sweep.png", title="sweep")
    assert_png(tmp_path / "sweep.png")


def test_plot_run_bars_grows_with_the_runs_and_stays_readable(tmp_path):
    """60 runs (the MNIST report's old bar chart): one row each, a fixed height per row."""
    many = pd.DataFrame({"method": [f"run{i}" for i in range(60)], "kind": "baseline",
                         "acc": np.linspace(0.1, 0.9, 60)})
    plots.plot_run_bars(many, ("acc",), tmp_path / "many.png")
    few = many.iloc[:10]
    plots.plot_run_bars(few, ("acc",), tmp_path / "few.png")
    h_many, h_few = (assert_png(tmp_path / f).shape[0] for f in ("many.png", "few.png"))
    # each of the 50 more runs adds 0.3 in at 110 dpi, room for its 8 pt label: none overlap
    assert abs((h_many - h_few) / 50 - 0.3 * 110) < 1


def test_publish_figures_copies_the_linked_ones_small(tmp_path):
    src = tmp_path / "figures"
    wide = src / "mnist" / "wide.png"
    fig = plt.figure(figsize=(30, 3))
    fig.gca().plot([0, 1], [0, 1])
    save_figure(fig, wide)
    main = main_runs(summary_rows(), PARAMS, "mnist")
    plots.plot_run_bars(main, ("acc",), src / "mnist" / "summary_main.png")
    plots.plot_run_bars(main, ("nmi",), src / "mnist" / "not_linked.png")
    readme = ("![a](figures/mnist/wide.png)\n![b](figures/mnist/summary_main.png)\n"
              "[a table](tables/headline.md) ![again](figures/mnist/wide.png)")
    links = linked_figures(readme)
    assert links == ["figures/mnist/wide.png", "figures/mnist/summary_main.png"]
    out = publish_figures(links, src, tmp_path / "published", max_width=1000)
    assert sorted(p.relative_to(tmp_path / "published").as_posix() for p in out) == [
        "mnist/summary_main.png", "mnist/wide.png"]
    assert not (tmp_path / "published" / "mnist" / "not_linked.png").exists()
    with Image.open(out[0]) as im:
        assert im.width == 1000 and im.mode == "P"
    assert out[1].stat().st_size < (src / "mnist" / "summary_main.png").stat().st_size
    again = publish_figures(links, src, tmp_path / "again", max_width=1000)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in out]
    with pytest.raises(DataError, match="missing.png"):
        publish_figures(["figures/mnist/missing.png"], src, tmp_path / "x")


# --- the report -----------------------------------------------------------------------

def fake_tree(root: Path) -> dict:
    params = {"seed": 0, "datasets": ["spiral", "mnist"], "encoders": ["ae", "vae"],
              "methods": [], "baselines": ["gmm"], "baseline_encoders": ["vae"],
              "moe": {"gates": []}}
    z, y = blobs(n_per=20, k=5, d=2)
    art = root / "artifacts"
    # spiral: 2-D points, everything present for vae
    sp = art / "spiral"
    save_npz(sp / "vae" / "latents.npz", z_train=z, z_test=z, y_train=y, y_test=y)
    save_npz(sp / "vae" / "recon.npz", x=z[:32], x_recon=z[:32] * 0.9)
    save_npz(sp / "vae" / "samples.npz", samples=np.random.default_rng(0).normal(size=(5, 8, 2)))
    save_npz(sp / "vae+gmm" / "pred.npz", pred_test=(y + 1) % 5, y_test=y)
    write_curves(root / "reports" / "curves" / "spiral" / "vae")
    # a stale method directory is ignored
    save_npz(sp / "old" / "recon.npz", x=z[:4], x_recon=z[:4])
    (root / "data" / "prepared" / "spiral").mkdir(parents=True)
    (root / "data" / "prepared" / "spiral" / "samples.png").write_bytes(PNG_SIGNATURE + b"x")
    save_npz(root / "data" / "prepared" / "spiral" / "data.npz", x_train=z, y_train=y,
             x_test=z, y_test=y)
    # mnist: images, only ae reconstructions and unlabelled latents
    imgs = images(32, 1, 28, 28)
    save_npz(art / "mnist" / "ae" / "recon.npz", x=imgs, x_recon=imgs)
    zz, _ = blobs(n_per=10, k=3, d=10)
    save_npz(art / "mnist" / "ae" / "latents.npz", z_train=zz, z_test=zz,
             y_train=np.full(len(zz), -1), y_test=np.full(len(zz), -1))
    df = pd.DataFrame({"dataset": ["spiral", "spiral", "mnist"],
                       "method": ["vae", "vae+gmm", "vae+gmm"],
                       "kind": ["encoder", "baseline", "baseline"],
                       "acc": [np.nan, 0.6, 0.5], "nmi": [np.nan, 0.55, 0.4]})
    (root / "reports").mkdir(parents=True, exist_ok=True)
    df.to_csv(root / "reports" / "summary.csv", index=False)
    return params


def test_build_figures(tmp_path):
    params = fake_tree(tmp_path)
    out = tmp_path / "figures"
    written = build_figures(params, out, root=tmp_path)
    names = sorted(p.relative_to(out).as_posix() for p in written)
    assert names == sorted([
        "spiral/data_samples.png", "spiral/vae_recon.png", "spiral/vae_latents.png",
        "spiral/vae_samples.png", "spiral/vae_curves.png", "spiral/vae+gmm_confusion.png",
        "mnist/ae_recon.png", "mnist/ae_latents.png", "spiral/summary_main.png",
        "mnist/summary_main.png",
    ])
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert found == names
    for p in written:
        if p.name != "data_samples.png":
            assert_png(p)


def test_build_figures_needs_summary(tmp_path):
    params = fake_tree(tmp_path)
    (tmp_path / "reports" / "summary.csv").unlink()
    with pytest.raises(DataError, match="summary.csv"):
        build_figures(params, tmp_path / "figures", root=tmp_path)


def test_build_figures_is_the_same_drawn_by_one_process_or_several(tmp_path):
    params = fake_tree(tmp_path)
    outs = {}
    for workers in (1, 3):
        out = tmp_path / f"figures{workers}"
        written = build_figures(params, out, root=tmp_path, workers=workers)
        outs[workers] = {p.relative_to(out).as_posix(): p.read_bytes() for p in written}
    assert len(outs[1]) == 10
    assert outs[1] == outs[3]


@pytest.mark.parametrize("workers", [1, 2])
def test_build_figures_rejects_mismatched_predictions(tmp_path, workers):
    params = fake_tree(tmp_path)
    save_npz(tmp_path / "artifacts" / "spiral" / "vae+gmm" / "pred.npz",
             pred_test=np.zeros(3, dtype=np.int64), y_test=np.zeros(3, dtype=np.int64))
    with pytest.raises(DataError, match="pred.npz"):
        build_figures(params, tmp_path / "figures", root=tmp_path, workers=workers)
