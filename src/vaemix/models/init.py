"""Starting a mixture model from the pretrained autoencoder (VaDE's initialisation,
Jiang et al. 2017, sec. 3.3): copy the encoder body, the latent head and the decoder of
``artifacts/<dataset>/ae/model.pt``, then fit a diagonal GMM on the autoencoder's latents
to set the mixture prior.

How that first mixture is found is the option ``init_clusters`` of the methods that use it:
``gmm`` is VaDE's EM on the latents; ``spectral`` clusters a k-nearest-neighbour graph of
the latents (Ng, Jordan & Weiss 2002, the normalised Laplacian's leading eigenvectors) and
takes each cluster's weight, mean and variance as the diagonal mixture; ``kmeans`` is DEC's
start (Xie et al. 2016, sec. 3.2: K-means with 20 restarts on the codes). EM on Gaussians
cuts the elongated, curved clusters an autoencoder's latent space holds; the graph follows
them. ``spectral_consensus`` removes the one free choice of ``spectral``, the graph's
neighbourhood size: it clusters the graphs of several sizes and keeps the partition that
agrees best with the others (Strehl & Ghosh 2002, the average-NMI criterion of cluster
ensembles). ``umap`` is the N2D partition (UMAP, then a GMM on the embedding; McConville
et al. 2020). ``umap_or_spectral`` computes both the N2D and the spectral partition and keeps
the one whose clusters cut less of UMAP's neighbourhood graph of the latents, by the
normalised cut of Shi & Malik (2000): a GMM on a UMAP embedding cuts thin curved clusters
(spiral arms) that the graph keeps whole, while on blob-like data it separates what the
graph's spectral embedding merges. None of them looks at a label.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.metrics import normalized_mutual_info_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KNeighborsClassifier
from torch import Tensor, nn
from tqdm.auto import tqdm

from vaemix.errors import DataError
from vaemix.training import batched, progress_interval
from vaemix.umap_gmm import fit_umap_gmm, settings_with_defaults, umap_graph

# Floor on the GMM's variances (in latent units squared), so log-variances stay finite.
MIN_VARIANCE = 1e-4
# the choices of the methods' option init_clusters
INIT_CLUSTERS = ("gmm", "kmeans", "spectral", "spectral_consensus", "umap", "umap_or_spectral")
KMEANS_RESTARTS = 20   # DEC's K-means start (Xie et al. 2016, sec. 3.2; their code: n_init 20)
# the starts that partition every training point (the pseudo-labels of self_train)
PARTITION_STARTS = ("umap", "umap_or_spectral")
SPECTRAL_NEIGHBOURS = 10     # k of the k-nearest-neighbour graph
CONSENSUS_NEIGHBOURS = (5, 10, 15, 20, 30)  # the graphs spectral_consensus clusters
SPECTRAL_MAX_POINTS = 10000  # larger training sets: the graph of a seeded random subset


@dataclass
class MixtureInit:
    """A diagonal Gaussian mixture: weights [K], means [K, d], variances [K, d], and, when
    the start partitioned every training point, that partition [N] (the pseudo-labels of
    :func:`self_train`)."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    labels: np.ndarray | None = None


def load_ae_state(path: str | Path) -> dict[str, Tensor]:
    """The state dict of a pretrained ``ae`` checkpoint; a missing file names itself."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: pretrained autoencoder not found; run the pretrain@<dataset>-ae stage "
            "first (it is a dependency of every train@ stage)"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("method") not in ("ae", "ae_da"):
        raise DataError(f"{path}: expected an 'ae' or 'ae_da' checkpoint, found "
                        f"{ckpt.get('method')!r}")
    return ckpt["state_dict"]


def copy_autoencoder(
    state: dict[str, Tensor],
    trunk: nn.Module,
    latent_mean: nn.Linear,
    decoder: nn.Module,
    likelihood: nn.Module | None = None,
    source: str = "ae checkpoint",
) -> None:
    """Copy the AE's trunk, latent layer (into the posterior mean) and decoder weights."""

    def part(prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    try:
        trunk.load_state_dict(part("trunk."))
        latent_mean.load_state_dict(part("to_z."))
        decoder.load_state_dict(part("decoder."))
        if likelihood is not None:
            likelihood.load_state_dict(part("likelihood."))
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise DataError(
            f"{source}: its networks do not match this model's ({first}); "
            "retrain the autoencoder with the same model.<dataset> params"
        ) from None


def fit_diag_gmm(z: np.ndarray, n_clusters: int, seed: int, n_init: int = 3) -> MixtureInit:
    """A diagonal GMM on latents (scikit-learn EM), variances floored at MIN_VARIANCE."""
    gmm = GaussianMixture(
        n_components=n_clusters, covariance_type="diag", n_init=n_init, random_state=seed,
        reg_covar=1e-6, max_iter=300,
    ).fit(z)
    return MixtureInit(
        weights=gmm.weights_.astype(np.float32),
        means=gmm.means_.astype(np.float32),
        variances=np.maximum(gmm.covariances_, MIN_VARIANCE).astype(np.float32),
        labels=gmm.predict(z).astype(np.int64),
    )


def kmeans_mixture(z: np.ndarray, n_clusters: int, seed: int,
                   n_init: int = KMEANS_RESTARTS) -> MixtureInit:
    """K-means on latents, the start of DEC and IDEC (Xie et al. 2016, sec. 3.2): its
    centres as the means, each cluster's weight and variance beside them."""
    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(z)
    mix = mixture_from_labels(z, km.labels_.astype(np.int64), n_clusters)
    mix.means = km.cluster_centers_.astype(np.float32)
    return mix


def mixture_from_labels(z: np.ndarray, labels: np.ndarray, n_clusters: int) -> MixtureInit:
    """The diagonal mixture whose component k has the weight, mean and variance of the
    points labelled k (variances floored at MIN_VARIANCE; a label with no point gets the
    data's mean and variance and a tiny weight, so every component stays usable)."""
    counts = np.bincount(labels, minlength=n_clusters).astype(np.float64)
    if len(counts) != n_clusters:
        raise ValueError(f"labels go up to {labels.max()}, expected < {n_clusters}")
    onehot = np.eye(n_clusters)[labels]                      # [N, K]
    safe = np.maximum(counts, 1.0)[:, None]
    means = onehot.T @ z / safe
    variances = onehot.T @ (z * z) / safe - means**2
    empty = counts == 0
    means[empty], variances[empty] = z.mean(0), z.var(0)
    weights = np.maximum(counts, 1e-3) / np.maximum(counts, 1e-3).sum()
    return MixtureInit(
        weights=weights.astype(np.float32),
        means=means.astype(np.float32),
        variances=np.maximum(variances, MIN_VARIANCE).astype(np.float32),
    )


def spectral_labels(
    z: np.ndarray, n_clusters: int, seed: int,
    n_neighbors: int = SPECTRAL_NEIGHBOURS, max_points: int = SPECTRAL_MAX_POINTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Spectral clustering of the symmetrised k-NN graph of z (scikit-learn; eigenvectors
    by ARPACK, labels by k-means in the embedding). Above ``max_points`` points a seeded
    random subset is clustered. Returns (the points clustered, their labels)."""
    rng = np.random.default_rng(seed)
    if len(z) > max_points:
        z = z[np.sort(rng.choice(len(z), size=max_points, replace=False))]
    labels = SpectralClustering(
        n_clusters=n_clusters, affinity="nearest_neighbors",
        n_neighbors=min(n_neighbors, len(z) - 1), assign_labels="kmeans", random_state=seed,
    ).fit_predict(z)
    return z, labels


def spectral_mixture(
    z: np.ndarray, n_clusters: int, seed: int,
    n_neighbors: int = SPECTRAL_NEIGHBOURS, max_points: int = SPECTRAL_MAX_POINTS,
) -> MixtureInit:
    """The diagonal mixture of the moments of :func:`spectral_labels`' clusters (a subset
    above ``max_points`` points: the moments need no more)."""
    points, labels = spectral_labels(z, n_clusters, seed, n_neighbors, max_points)
    mix = mixture_from_labels(points, labels, n_clusters)
    mix.labels = labels if len(points) == len(z) else None
    return mix


def most_agreeing(partitions: list[np.ndarray]) -> tuple[int, np.ndarray]:
    """The index of the partition with the highest mean NMI to the others, and every
    partition's mean NMI [P] (Strehl & Ghosh 2002: the average normalised mutual information
    of a partition with an ensemble; here the choice is restricted to the ensemble's own
    members). Ties go to the first."""
    n = len(partitions)
    if n < 2:
        raise ValueError(f"need at least 2 partitions to compare, got {n}")
    agreement = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            agreement[i, j] = agreement[j, i] = normalized_mutual_info_score(
                partitions[i], partitions[j])
    mean_nmi = (agreement.sum(1) - 1.0) / (n - 1)
    return int(np.argmax(mean_nmi)), mean_nmi


def spectral_consensus_mixture(
    z: np.ndarray, n_clusters: int, seed: int,
    neighbours: tuple[int, ...] = CONSENSUS_NEIGHBOURS, max_points: int = SPECTRAL_MAX_POINTS,
) -> MixtureInit:
    """:func:`spectral_mixture` with the graph's neighbourhood size chosen without labels:
    the spectral partition, among those of the k-NN graphs for each k in ``neighbours`` (on
    the same seeded subset), that agrees best with the others (:func:`most_agreeing`)."""
    partitions = [spectral_labels(z, n_clusters, seed, k, max_points) for k in neighbours]
    best, _ = most_agreeing([labels for _, labels in partitions])
    points, labels = partitions[best]
    mix = mixture_from_labels(points, labels, n_clusters)
    mix.labels = labels if len(points) == len(z) else None
    return mix


def read_start_labels(path: str | Path, n_train: int, n_clusters: int, fix: str) -> np.ndarray:
    """The training points' clusters [N] in the start's ``pred.npz`` (``pred_train``; the
    stage start@, vaemix.start, or the ``ae+umap_gmm`` baseline); a missing file or array,
    another split's partition or a cluster index of K or more raises a one-line DataError naming
    the file and ending with ``fix``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: the start's partition not found; {fix}")
    with np.load(path) as f:
        if "pred_train" not in f.files:
            raise DataError(f"{path}: no 'pred_train' array; {fix}")
        labels = f["pred_train"].astype(np.int64)
    if len(labels) != n_train:
        raise DataError(f"{path}: a partition of {len(labels)} training points, but the "
                        f"training split has {n_train} (another split); {fix}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_clusters):
        raise DataError(f"{path}: clusters {labels.min()}..{labels.max()}, expected "
                        f"0..{n_clusters - 1}; {fix}")
    return labels


def umap_mixture(z: np.ndarray, n_clusters: int, seed: int,
                 start: Mapping[str, Any] | None = None) -> MixtureInit:
    """The N2D partition of z (UMAP, then a GMM on the embedding; McConville et al. 2020,
    :mod:`vaemix.umap_gmm`), as the diagonal mixture of its clusters' moments in z, with
    the partition itself as ``labels``.

    ``start["umap"]`` holds the UMAP + GMM settings (params' baseline.umap_gmm). When
    ``start["file"]`` names an existing ``pred.npz`` of the start (vaemix.start: DEC-DA's
    clustering on images, else the ``ae+umap_gmm`` baseline, already fitted by its DVC
    stage), its training points' clusters are read instead of fitted.
    """
    start = start or {}
    path = start.get("file")
    if path is not None and Path(path).is_file():
        labels = read_start_labels(path, len(z), n_clusters, "rerun its start@ stage")
    else:
        _, labels, _ = fit_umap_gmm(z, n_clusters, seed, start.get("umap"))
    mix = mixture_from_labels(z, labels, n_clusters)
    mix.labels = labels
    return mix


def normalized_cut(graph: Any, labels: np.ndarray) -> float:
    """The K-way normalised cut of a partition of a symmetric weighted graph [N, N] (Shi &
    Malik 2000, eq. 2, summed over the K parts as in their sec. 3.3): the sum over clusters
    A of cut(A, V - A) / assoc(A, V), each cluster's weight of edges leaving it over its
    total degree. 0 when no edge joins two clusters; smaller is a better cut."""
    graph = graph.tocsr()
    degree = np.asarray(graph.sum(axis=1)).ravel()
    total = 0.0
    for cluster in np.unique(labels):
        inside = labels == cluster
        volume = degree[inside].sum()
        if volume > 0:
            total += (volume - graph[inside][:, inside].sum()) / volume
    return float(total)


CUT_TIE = 1e-6   # cuts closer than this are a tie (a cut is a sum of K ratios in [0, 1])


def smaller_cut(graph: Any, partitions: Mapping[str, np.ndarray],
                margin: float = 0.0) -> tuple[str, dict[str, float]]:
    """The name of the partition [N] with the smallest :func:`normalized_cut` of ``graph``,
    and every partition's cut. A later partition replaces the one kept so far only when its
    cut is smaller by more than the fraction ``margin`` of that one's, and by more than
    CUT_TIE: a tie (both 0 up to rounding, on a disconnected graph) keeps the earlier one,
    since an exact ``<`` would decide it by the last bits of the sums, which differ between
    CPUs' kernels."""
    cuts = {name: normalized_cut(graph, labels) for name, labels in partitions.items()}
    best = next(iter(cuts))
    for name, cut in cuts.items():
        if cut < cuts[best] * (1.0 - margin) - CUT_TIE:
            best = name
    return best, cuts


@dataclass
class CutChoice:
    """The two candidate partitions [N] of :func:`choose_by_cut`, their normalised cuts of
    UMAP's graph, and the name (``umap`` or ``spectral``) of the one with the smaller cut."""

    partitions: dict[str, np.ndarray]
    cuts: dict[str, float]
    chosen: str


def choose_by_cut(z: np.ndarray, n_clusters: int, seed: int,
                  start: Mapping[str, Any] | None = None,
                  max_points: int = SPECTRAL_MAX_POINTS) -> CutChoice:
    """The N2D partition (:func:`umap_mixture`) and the spectral one (:func:`spectral_labels`,
    k = SPECTRAL_NEIGHBOURS), each scored by its :func:`normalized_cut` of UMAP's
    neighbourhood graph of z (:func:`vaemix.umap_gmm.umap_graph`, the baseline's
    ``n_neighbors``). Spectral replaces umap only when its cut is smaller by more than the
    fraction ``start["margin"]`` of umap's (vaemix.start passes ``start.guard_margin``;
    without it, any smaller cut): on scikit-learn's digits spectral cut 0.4 % less and was 9
    points worse, on a spiral whose arms do not touch it cut 52 % less and was 30 points
    better. Above ``max_points`` points both are scored on a seeded subset, and the
    spectral partition is extended to every point by its nearest clustered neighbour."""
    n2d = umap_mixture(z, n_clusters, seed, start).labels
    rng = np.random.default_rng(seed)
    idx = (np.sort(rng.choice(len(z), size=max_points, replace=False))
           if len(z) > max_points else np.arange(len(z)))
    _, spectral = spectral_labels(z[idx], n_clusters, seed, SPECTRAL_NEIGHBOURS, len(idx))
    spectral = np.asarray(spectral, dtype=np.int64)
    n_neighbors = settings_with_defaults((start or {}).get("umap"))["n_neighbors"]
    graph = umap_graph(z[idx], n_neighbors, seed)
    chosen, cuts = smaller_cut(graph, {"umap": n2d[idx], "spectral": spectral},
                               (start or {}).get("margin", 0.0))
    if len(idx) < len(z):
        spectral = KNeighborsClassifier(n_neighbors=1).fit(z[idx], spectral).predict(z)
    return CutChoice({"umap": n2d, "spectral": spectral}, cuts, chosen)


def umap_or_spectral_mixture(z: np.ndarray, n_clusters: int, seed: int,
                             start: Mapping[str, Any] | None = None,
                             max_points: int = SPECTRAL_MAX_POINTS) -> MixtureInit:
    """The moments of the partition :func:`choose_by_cut` keeps, with that partition as
    ``labels``; the choice and both cuts are printed to stderr. A start that is no N2D
    partition (``start["final"]``: DEC-DA's, vaemix.start) is kept without the comparison:
    it was made on other codes (DEC-DA's fine-tuned encoder), whose clusters UMAP's graph of
    these codes does not score (on the MNIST dev split it preferred a spectral partition at
    0.82 to DEC-DA's at 0.98)."""
    if (start or {}).get("final"):
        print("init_clusters umap_or_spectral: the start's partition (final)", file=sys.stderr)
        return umap_mixture(z, n_clusters, seed, start)
    choice = choose_by_cut(z, n_clusters, seed, start, max_points)
    print(f"init_clusters umap_or_spectral: {choice.chosen} (normalised cut of UMAP's graph: "
          f"umap {choice.cuts['umap']:.4f}, spectral {choice.cuts['spectral']:.4f})",
          file=sys.stderr, flush=True)
    labels = choice.partitions[choice.chosen]
    mix = mixture_from_labels(z, labels, n_clusters)
    mix.labels = labels
    return mix


def fit_mixture(z: np.ndarray, n_clusters: int, seed: int, how: str = "gmm",
                start: Mapping[str, Any] | None = None) -> MixtureInit:
    """The first mixture on latents z [N, d]: ``how`` is one of INIT_CLUSTERS;
    ``start`` is where ``umap`` starts from (see :func:`umap_mixture`)."""
    if how == "umap":
        return umap_mixture(z, n_clusters, seed, start)
    if how == "umap_or_spectral":
        return umap_or_spectral_mixture(z, n_clusters, seed, start)
    if how == "gmm":
        return fit_diag_gmm(z, n_clusters, seed)
    if how == "kmeans":
        return kmeans_mixture(z, n_clusters, seed)
    if how == "spectral":
        return spectral_mixture(z, n_clusters, seed)
    if how == "spectral_consensus":
        return spectral_consensus_mixture(z, n_clusters, seed)
    raise ValueError(f"init_clusters must be one of {INIT_CLUSTERS}, got {how!r}")


def gmm_on_encoder(
    encode: nn.Module | object, x_train: Tensor, n_clusters: int, seed: int, how: str = "gmm",
    start: Mapping[str, Any] | None = None,
) -> MixtureInit:
    """Fit the first mixture (``how``: see fit_mixture) on ``encode(x_train)``, the AE
    latents once copied in."""
    z = batched(encode, x_train).numpy().astype(np.float64)
    return fit_mixture(z, n_clusters, seed, how, start)


def ae_codes(ae_checkpoint: str | Path, spec: Any, x_train: Tensor) -> np.ndarray:
    """The pretrained autoencoder's codes of ``x_train`` [N, d] (for models that do not
    copy the autoencoder but start from a clustering of its codes, e.g. MoVAE)."""
    from vaemix.models.ae import AutoEncoder

    ae = AutoEncoder(replace(spec, options={})).to(x_train.device)
    state = load_ae_state(ae_checkpoint)
    try:
        ae.load_state_dict(state)
    except RuntimeError as err:
        raise DataError(f"{ae_checkpoint}: its networks do not match this model's "
                        f"({str(err).splitlines()[0]}); retrain the autoencoder with the "
                        "same model.<dataset> params") from None
    ae.eval()
    return batched(ae.encode, x_train).numpy().astype(np.float64)


def adam_epochs(
    module: nn.Module,
    parameters: Any,
    batch_loss: Callable[[Tensor], Tensor],
    n: int,
    epochs: int,
    seed: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    desc: str | None = None,
) -> None:
    """``epochs`` epochs of Adam on ``parameters`` over seeded shuffles of 0..n-1, minimising
    ``batch_loss(idx)`` for each minibatch of indices ``idx`` (on the module's device). The
    short fits of a model's start use it; ``module`` is in training mode meanwhile, and
    gradients are on even where the caller holds ``torch.no_grad``. ``desc``: a progress bar.
    """
    if epochs == 0:
        return
    opt = torch.optim.Adam(parameters, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    device = next(module.parameters()).device
    was_training = module.training
    module.train()
    interval = progress_interval(sys.stderr)
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", disable=desc is None,
                  mininterval=interval, maxinterval=max(interval, 10.0), file=sys.stderr):
        order = torch.randperm(n, generator=gen).to(device)
        for i in range(0, n, batch_size):
            with torch.enable_grad():
                loss = batch_loss(order[i : i + batch_size])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    module.train(was_training)


def fit_to_targets(
    module: nn.Module,
    parameters: list[nn.Parameter],
    batch_loss: Callable[[Tensor], Tensor],
    x_train: Tensor,
    epochs: int,
    seed: int,
    batch_size: int = 256,
    lr: float = 1e-3,
) -> None:
    """A few epochs of Adam on ``parameters`` only, minimising ``batch_loss(x_batch)``.

    Used to start networks that the autoencoder has no counterpart for (a cluster encoder
    q(c|x), GMVAE's q(z|x,y)) at targets computed from the autoencoder and its GMM: no
    label is involved. ``module`` is put in training mode for it and restored after.
    """
    adam_epochs(module, parameters, lambda idx: batch_loss(x_train[idx]), len(x_train),
                epochs, seed, batch_size, lr)


def self_train(
    model: Any,
    x_train: Tensor,
    labels: np.ndarray,
    epochs: int,
    seed: int,
    weight: float,
    batch_size: int = 256,
    lr: float = 1e-3,
) -> None:
    """A label-free warm-up that makes the model agree with its start: ``epochs`` epochs
    of Adam on every parameter, minimising the model's own loss plus ``weight`` times the
    cross-entropy of its cluster posterior ``model.log_q_c(x)`` [B, K] to the start's
    partition ``labels`` [N] of the training points.

    The partition is a clustering of the AE's codes, so no label is used; training a
    network on the pseudo-labels of an unsupervised start is the self-training step of
    DEC (Xie, Girshick & Farhadi 2016, sec. 3.1, with hard targets) and of N2D's follow-ups.
    The partition is kept as ``model.start_labels`` [N]: training holds the model to it
    with the weight ``anchor_weight`` (:class:`vaemix.training.Anchor`; 0 = released).
    With ``model.augment`` set (images; the train section's ``augment_shift`` /
    ``augment_rotate``), the cross-entropy is that of a randomly moved copy of each image,
    as in the clustering phase of DEC-DA and ASPC-DA (Guo et al. 2018, 2019).
    """
    targets = torch.as_tensor(labels, dtype=torch.long, device=x_train.device)
    model.start_labels = targets

    def loss(idx: Tensor) -> Tensor:
        xb = x_train[idx]
        own = model.loss(xb, idx) if model.indexed_loss else model.loss(xb)
        # images: the cross-entropy of a moved copy (model.augment; vaemix.augment)
        ce = F.nll_loss(model.log_q_c(model.augment(xb)), targets[idx])
        return own["loss"] + weight * ce

    adam_epochs(model, model.parameters(), loss, len(x_train), epochs, seed, batch_size, lr,
                desc=f"warm-up on the start's partition ({type(model).__name__})")
