"""vaemix's start of every mixture model (the stage ``start@<dataset>``): a pretrained
autoencoder and a partition of the training points in its codes.

On the image datasets of ``start.dec_da_on`` (default: MNIST, the one it was measured on):
- the autoencoder is ``ae_da``, pretrained as DEC-DA and ASPC-DA pretrain theirs (Guo, Zhu,
  Liu & Yin 2018, sec. 3.1; Guo, Liu, Zhu & Yin 2019, sec. 3.4): randomly shifted (up to
  10 % of the side) and rotated (up to 10 degrees) copies encoded, the clean image
  reconstructed, squared error, 500 epochs (``pretrain.ae_da``). On MNIST it is ConvDEC-DA's
  convolutional autoencoder with Adam (Guo et al. 2018, sec. 4.1; ``net: cae``,
  vaemix.networks); elsewhere the MLP of ``model.<dataset>`` with their SGD (lr 1, momentum
  0.9);
- the partition is the end of DEC-DA's clustering phase (Guo et al. 2018, sec. 3.2, eq. 6:
  DEC's KL(P || Q) with Q of a moved copy and P of the clean image; ``start.dec``, run by
  vaemix.models.dec). On MNIST it starts, as the paper's, from K-means on the CAE's codes
  (Adam, 0.001); on the MLP from the N2D partition of ae_da's codes (UMAP + GMM, McConville
  et al. 2020; the baseline ``ae_da+umap_gmm``), vaemix's start, where K-means ended at 0.875.
  On the MNIST dev split the CAE's start ends at 0.980 +- 0.002 transductive and 0.989 +-
  0.003 test ACC, the MLP's at 0.972 / 0.980 (3 seeds each; reports/benchmarks/
  conv_dec_da.md, dec_da_pipeline.md);
- the guard (vaemix's, ``start.guard_from``): DEC-DA's phase from K-means can merge two digits
  for good (on one CAE of three it left 400 fours among the nines: 0.935 where N2D's
  partition of the same codes had 0.961). The phase then also runs from the N2D partition,
  and its end replaces the first when its partition has a normalised cut (Shi & Malik 2000,
  eq. 2) of UMAP's neighbourhood graph of ae_da's codes, the graph N2D clusters, smaller by
  more than the fraction ``start.guard_margin`` of the first's: a merged pair and the split
  that pays for it cut through dense neighbourhoods. No label is read.
Elsewhere (spiral, an npz, CIFAR-100 unless listed) the start is the N2D start: the
autoencoder ``ae`` and its ``ae+umap_gmm`` partition, published unchanged as the run ``start``
on images. On data that are not images (the spiral, a flat npz) UMAP's neighbourhood size is
chosen without labels (vaemix's, :func:`stable_n2d`): N2D is fitted ``start.n2d_restarts``
times (UMAP seeds) for each size of ``start.n2d_neighbours``, and the size whose partitions
agree best with each other (mean pairwise NMI: clustering stability, Ben-Hur, Elisseeff & Guyon
2002; Lange, Roth, Braun & Buhmann 2004) is kept, with its most agreeing partition (Strehl &
Ghosh 2002). N2D's 20 neighbours suit MNIST's clusters of blobs; a spiral's arms are long
curves that meet at the centre, where larger neighbourhoods (more of the manifold's global
structure; McInnes, Healy & Melville 2018, and umap-learn's "Basic UMAP Parameters") keep an
arm whole. On raw 5-arm spirals (data seeds 0-3, 3 fits a size), 20 neighbours gave ACC
0.61-0.95, 50 0.88-0.99 and 100 0.93-0.99; stability never kept 20 (100 on seeds 0-2, 50 on
seed 3), and the partition kept scored 0.955, 0.964, 0.989, 0.888 where 20 neighbours' mean was
0.880, 0.924, 0.696, 0.804 (reports/benchmarks/README.md, "The spiral start by stability").
DEC-DA is not the default on images it was not measured on: on scikit-learn's digits (an npz of
8 x 8 images) its phase fell from its N2D start at 0.852 to 0.763 test ACC
(reports/benchmarks/README.md), where N2D alone held 0.861.

The mixture models copy the start's autoencoder, network and all (:func:`start_net`), and fit
their first mixture to its partition (vaemix.models.init, ``init_clusters``); their warm-up and
anchor then hold them to it. The N2D baseline as published (``ae+umap_gmm``, an autoencoder
without augmentation) stays in every table beside ``ae_da+umap_gmm`` and ``start``, so the
report shows what augmentation adds. The paper protocol (train_paper@) never reads the start:
its models keep ``model.<dataset>``'s network.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vaemix.augment import is_image
from vaemix.data import Prepared
from vaemix.io import METRICS_ROOT as METRICS
from vaemix.io import read_json
from vaemix.seeds import ARTIFACTS, CURVES, run_over_seeds, seed_path, seeds_of

RUN = "start"


def uses_dec_da(params: Mapping[str, Any], dataset: str, input_shape: tuple[int, ...]) -> bool:
    """Whether the start on ``dataset`` is DEC-DA's: images of a dataset of ``start.dec_da_on``."""
    return dataset in params["start"]["dec_da_on"] and is_image(input_shape)


def start_encoder(params: Mapping[str, Any], dataset: str, input_shape: tuple[int, ...]) -> str:
    """The autoencoder the start's partition was made on: ``ae_da`` or ``ae``."""
    return "ae_da" if uses_dec_da(params, dataset, input_shape) else "ae"


def start_net(params: Mapping[str, Any], dataset: str,
              input_shape: tuple[int, ...]) -> dict[str, Any]:
    """The network of the start's autoencoder (its ``net``, e.g. ConvDEC-DA's ``cae`` of
    ``pretrain.ae_da`` on MNIST) as the settings override of a run that copies it: the start's
    own DEC-DA phase and every mixture model of vaemix's protocol; {} where the autoencoder
    has the network of ``model.<dataset>``."""
    from vaemix.models import method_settings

    encoder = start_encoder(params, dataset, input_shape)
    net = method_settings(params, "pretrain", encoder, dataset).get("net")
    return {"net": net} if net else {}


def start_init(params: Mapping[str, Any], dataset: str,
               input_shape: tuple[int, ...]) -> dict[str, Any]:
    """The ``init`` of a mixture model of vaemix's protocol (vaemix.runs.train_and_export):
    the start's autoencoder checkpoint and its partition (``artifacts/<dataset>/start``)."""
    # final: DEC-DA's partition is taken as it is, not weighed against a spectral one
    # (vaemix.models.init.umap_or_spectral_mixture)
    return _init(params, dataset, start_encoder(params, dataset, input_shape), RUN,
                 final=uses_dec_da(params, dataset, input_shape))


def _init(params: Mapping[str, Any], dataset: str, encoder: str, partition: str,
          final: bool = False) -> dict[str, Any]:
    """A model's ``init``: ``encoder``'s checkpoint and the run ``partition``'s pred.npz."""
    return {"ae_checkpoint": ARTIFACTS / dataset / encoder / "model.pt",
            "start": {"umap": params["baseline"].get("umap_gmm"),
                      "file": ARTIFACTS / dataset / partition / "pred.npz", "final": final,
                      "margin": params["start"]["guard_margin"]}}


def uses_stable_n2d(params: Mapping[str, Any], input_shape: tuple[int, ...]) -> bool:
    """Whether the start's N2D neighbourhood is chosen by stability: data that are not
    images, with ``start.n2d_neighbours`` set."""
    return not is_image(input_shape) and bool(params["start"].get("n2d_neighbours"))


def make_start(params: Mapping[str, Any], dataset: str, data: Prepared) -> dict[str, Any]:
    """Stage body of ``start@<dataset>``: publish the run ``start``; its metrics."""
    if uses_dec_da(params, dataset, data.input_shape):
        return _dec_da(params, dataset, data)
    if uses_stable_n2d(params, data.input_shape):
        return _stable_n2d(params, dataset)
    return _n2d(params, dataset)


def phase_starts(params: Mapping[str, Any], dataset: str) -> tuple[str, ...]:
    """The starts DEC-DA's phase runs from on ``dataset``: ``start.dec``'s ``init_clusters``,
    then ``start.guard_from`` where it is set and differs from it."""
    from vaemix.models import method_settings
    from vaemix.models.dec import DEC

    first = method_settings(params, "start", "dec", dataset).get(
        "init_clusters", DEC.options["init_clusters"].default)
    second = params["start"].get("guard_from")
    return (first,) if second in (None, first) else (first, second)


def candidate(source: str) -> str:
    """The run of DEC-DA's phase from ``source`` while the guard weighs it (removed after)."""
    return f"{RUN}_from_{source}"


def _dec_da(params: Mapping[str, Any], dataset: str, data: Prepared) -> dict[str, Any]:
    """DEC-DA's clustering phase (``start.dec``) from each of :func:`phase_starts`; with two,
    the end the guard keeps (:func:`_keep_guard_choice`)."""
    from vaemix.runs import train_and_export

    init = _init(params, dataset, "ae_da", "ae_da+umap_gmm")
    net = start_net(params, dataset, data.input_shape)
    sources = phase_starts(params, dataset)
    if len(sources) == 1:
        return train_and_export("dec", dataset, data, params, "start", init=init, name=RUN,
                                overrides=net)
    for source in sources:
        train_and_export("dec", dataset, data, params, "start", init=init,
                         name=candidate(source), overrides={**net, "init_clusters": source})
    metrics = _keep_guard_choice(params, dataset, data, sources)
    for source in sources:
        for folder in (ARTIFACTS / dataset, CURVES / dataset):
            shutil.rmtree(folder / candidate(source), ignore_errors=True)
        (METRICS / dataset / f"{candidate(source)}.json").unlink(missing_ok=True)
    return metrics


def guard_choice(params: Mapping[str, Any], z: Any, partitions: Mapping[str, Any],
                 seed: int) -> tuple[str, dict[str, float]]:
    """The guard's choice among ``partitions`` [N] of the points whose autoencoder codes are
    ``z`` [N, d]: the one with the smallest normalised cut of UMAP's graph of z (the
    baseline umap_gmm's ``n_neighbors``), where a later one must cut less than the one kept
    by more than the fraction ``start.guard_margin`` of its cut; and every cut."""
    from vaemix.models.init import smaller_cut
    from vaemix.umap_gmm import settings_with_defaults, umap_graph

    n_neighbors = settings_with_defaults(params["baseline"].get("umap_gmm"))["n_neighbors"]
    return smaller_cut(umap_graph(z, n_neighbors, seed), partitions,
                       params["start"]["guard_margin"])


def _keep_guard_choice(params: Mapping[str, Any], dataset: str, data: Prepared,
                       sources: tuple[str, ...]) -> dict[str, Any]:
    """Publish as ``start``, seed by seed, the phase's end that :func:`guard_choice` keeps by
    the normalised cut (Shi & Malik 2000) of its partition of the training points in UMAP's
    graph of ae_da's codes (the graph N2D clusters; McConville et al. 2020): the first of
    ``sources`` unless another cuts less by more than ``start.guard_margin``. Both ends are
    scored on the one graph of the autoencoder they both started from, not on their own
    fine-tuned encoders. No label is read. Every candidate's partition is kept under
    ``from_<source>/pred.npz``, and its cut and scores in the metrics (``cut_<source>``,
    ``<source>_acc``, ...; ``kept_<source>`` is 1 for the end kept)."""
    import numpy as np
    import torch

    from vaemix.models import spec_from_params
    from vaemix.models.init import ae_codes

    seeds = seeds_of(params)
    spec = spec_from_params(params, dataset, data.input_shape,
                            **start_net(params, dataset, data.input_shape))
    runs = {s: read_json(METRICS / dataset / f"{candidate(s)}.json")["per_seed"]
            for s in sources}

    def keep(seed: int, artifacts: Path, curves: Path, _checkpoint: Path) -> dict:
        ends = {s: seed_path(ARTIFACTS / dataset / candidate(s), seed, seeds) for s in sources}
        ae = seed_path(ARTIFACTS / dataset / "ae_da", seed, seeds) / "model.pt"
        z = ae_codes(ae, spec, torch.as_tensor(data.x_train))
        parts = {s: np.load(ends[s] / "pred.npz")["pred_train"] for s in sources}
        kept, cuts = guard_choice(params, z, parts, seed)
        print(f"{dataset}/{RUN} seed {seed}: kept DEC-DA's end from {kept} (normalised cut of "
              f"UMAP's graph of ae_da's codes: " + ", ".join(f"{s} {c:.4f}" for s, c in
                                                              cuts.items()) + ")", flush=True)
        shutil.copytree(ends[kept], artifacts)
        for s in sources:
            (artifacts / f"from_{s}").mkdir()
            shutil.copyfile(ends[s] / "pred.npz", artifacts / f"from_{s}" / "pred.npz")
        if (kept_curves := seed_path(CURVES / dataset / candidate(kept), seed, seeds)).is_dir():
            shutil.copytree(kept_curves, curves)
        scores = {f"{s}_{k}": runs[s][str(seed)][k] for s in sources
                  for k in ("acc", "nmi", "train_acc", "train_nmi") if k in runs[s][str(seed)]}
        return {**runs[kept][str(seed)], **scores,
                **{f"cut_{s}": c for s, c in cuts.items()},
                **{f"kept_{s}": float(s == kept) for s in sources}}

    return run_over_seeds(params, dataset, RUN, keep)


def _n2d(params: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """The N2D partition of ``ae`` (the baseline ae+umap_gmm), published as ``start``."""
    seeds = seeds_of(params)
    source = ARTIFACTS / dataset / "ae+umap_gmm"
    metrics_file = METRICS / dataset / "ae+umap_gmm.json"
    per_seed = read_json(metrics_file)["per_seed"]

    def copy_seed(seed: int, artifacts: Path, _curves: Path, _checkpoint: Path) -> dict:
        artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(seed_path(source, seed, seeds) / "pred.npz", artifacts / "pred.npz")
        return dict(per_seed[str(seed)])

    return run_over_seeds(params, dataset, RUN, copy_seed, curves=False)


@dataclass
class StableN2D:
    """The N2D fit kept by :func:`stable_n2d`: its neighbourhood size, every size's
    stability (mean pairwise NMI of its restarts' partitions of the training points) and
    those partitions."""

    fit: Any                      # vaemix.baselines.BaselineFit of umap_gmm
    labels: np.ndarray            # its partition of the training points [N]
    n_neighbors: int
    stability: dict[int, float]
    partitions: dict[int, list[np.ndarray]]   # size -> each restart's partition [N]


def restart_seed(seed: int, restart: int) -> int:
    """UMAP's and the GMM's seed of restart ``restart`` of a run's ``seed`` (restart 0 is the
    run's own seed, the fit of the baseline ae+umap_gmm at the same settings)."""
    return seed + 1000 * restart


def stable_n2d(z: np.ndarray, n_clusters: int, settings: Mapping[str, Any] | None, seed: int,
               neighbours: list[int], restarts: int, log: str = "") -> StableN2D:
    """N2D (UMAP + GMM; vaemix.umap_gmm) on codes ``z`` [N, d] with UMAP's neighbourhood size
    chosen without labels: for each size in ``neighbours``, ``restarts`` fits from
    :func:`restart_seed` seeds; the size whose partitions agree best (mean pairwise NMI; Ben-Hur
    et al. 2002) is kept, ties to the first listed, and of its fits the one that agrees best
    with the others (vaemix.models.init.most_agreeing). ``settings`` are the baseline
    umap_gmm's; ``log`` prefixes a progress line per size."""
    from vaemix.baselines import fit_baseline
    from vaemix.models.init import most_agreeing

    if restarts < 2:
        raise ValueError(f"stability needs at least 2 restarts, got {restarts}")
    kept: dict[int, tuple[Any, np.ndarray]] = {}
    stability: dict[int, float] = {}
    partitions: dict[int, list[np.ndarray]] = {}
    for k in neighbours:
        fits = [fit_baseline("umap_gmm", z, n_clusters, {**(settings or {}), "n_neighbors": k},
                             restart_seed(seed, r)) for r in range(restarts)]
        labels = partitions[k] = [fit.train_labels(z) for fit in fits]
        best, mean_nmi = most_agreeing(labels)
        stability[k] = float(mean_nmi.mean())
        kept[k] = (fits[best], labels[best])
        if log:
            print(f"{log}: UMAP with {k} neighbours, {restarts} seeds: stability "
                  f"{stability[k]:.4f}", flush=True)
    chosen = max(neighbours, key=lambda k: stability[k])   # max keeps the first of a tie
    return StableN2D(*kept[chosen], n_neighbors=chosen, stability=stability,
                     partitions=partitions)


def _stable_n2d(params: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """The N2D partition of ``ae``'s codes at the neighbourhood size :func:`stable_n2d`
    keeps, published as ``start`` with its held-out and transductive scores, the size kept
    (``n_neighbors``) and every size's stability (``stability_nn<k>``)."""
    from vaemix import io
    from vaemix.baselines import held_out_metrics, load_latents
    from vaemix.metrics import transductive_metrics

    seeds = seeds_of(params)
    start = params["start"]
    n_clusters = params["model"][dataset]["n_clusters"]

    def fit_seed(seed: int, artifacts: Path, _curves: Path, _checkpoint: Path) -> dict:
        latents = load_latents(seed_path(ARTIFACTS / dataset / "ae", seed, seeds)
                               / "latents.npz")
        choice = stable_n2d(latents["z_train"], n_clusters, params["baseline"].get("umap_gmm"),
                            seed, list(start["n2d_neighbours"]), start["n2d_restarts"],
                            log=f"{dataset}/{RUN} seed {seed}")
        print(f"{dataset}/{RUN} seed {seed}: kept {choice.n_neighbors} neighbours", flush=True)
        pred = choice.fit.predict(latents["z_test"])
        io.save_npz(artifacts / "pred.npz", pred_test=pred, y_test=latents["y_test"],
                    pred_train=choice.labels, y_train=latents["y_train"])
        return {**held_out_metrics(choice.fit, latents["y_test"], pred, seed),
                **transductive_metrics(latents["y_train"], choice.labels),
                "n_neighbors": choice.n_neighbors,
                **{f"stability_nn{k}": v for k, v in choice.stability.items()}}

    return run_over_seeds(params, dataset, RUN, fit_seed, curves=False)
