"""Label-free augmentation (vaemix.augment): the random affine maps, deterministic given the
seed and applied to images only; the autoencoder that reconstructs the clean image; the
self-paced choice of ASPC-DA against an independent computation; the anchor's augmented,
self-paced cross-entropy; and none of it in the paper protocol (tests/test_protocols.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from tests.test_pipeline_e2e import ROOT
from vaemix.augment import Augment, is_image, random_affine, self_paced_mask, self_paced_threshold
from vaemix.config import validate
from vaemix.errors import ParamError
from vaemix.models import build_model
from vaemix.models.base import Model, ModelSpec
from vaemix.training import Anchor, TrainConfig, fit

GRID = torch.arange(28.0)


def centre(img: torch.Tensor) -> torch.Tensor:
    """The centre of mass (row, column) of each image [N, 1, H, W]."""
    mass = img.sum((1, 2, 3))
    return torch.stack([(img.sum(3).squeeze(1) * GRID).sum(1) / mass,
                        (img.sum(2).squeeze(1) * GRID).sum(1) / mass], 1)


def squares(n: int = 64) -> torch.Tensor:
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 12:16, 12:16] = 1.0                        # a 4x4 square at the centre
    return x


def test_random_affine_is_the_identity_at_zero_and_moves_mass_by_the_shift():
    x = squares()
    torch.testing.assert_close(random_affine(x, 0.0, 0.0), x)
    moved = random_affine(x, 0.1, 0.0, torch.Generator().manual_seed(0))  # up to 2.8 px
    offset = centre(moved) - centre(x)
    assert offset.abs().max() <= 2.8 + 1e-4 and offset.abs().mean() > 0.5
    # a rotation about the centre keeps a centred square's centre and its mass
    turned = random_affine(x, 0.0, 30.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(centre(turned), centre(x), atol=1e-3, rtol=0)
    torch.testing.assert_close(turned.sum((1, 2, 3)), x.sum((1, 2, 3)), atol=0.5, rtol=0)


def test_a_rotation_turns_an_off_centre_square_by_at_most_its_angle():
    x = torch.zeros(200, 1, 28, 28)
    x[:, :, 4:8, 12:16] = 1.0                          # above the centre (13.5, 13.5)
    turned = random_affine(x, 0.0, 10.0, torch.Generator().manual_seed(1))
    before, after = centre(x) - 13.5, centre(turned) - 13.5
    angle = torch.atan2(after[:, 1], after[:, 0]) - torch.atan2(before[:, 1], before[:, 0])
    degrees = torch.rad2deg(torch.remainder(angle + torch.pi, 2 * torch.pi) - torch.pi).abs()
    assert degrees.max() <= 10.5 and degrees.mean() > 2.0


def test_augmentation_is_deterministic_given_the_seed():
    x = torch.rand(16, 1, 12, 12)
    aug = Augment(0.1, 10.0)
    a = aug(x, torch.Generator().manual_seed(7))
    b = aug(x, torch.Generator().manual_seed(7))
    c = aug(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(3)                                # the global generator, as training
    d = aug(x)
    torch.manual_seed(3)
    assert torch.equal(d, aug(x))


def test_images_only():
    assert is_image((28, 28)) and is_image((3, 32, 32)) and not is_image((2,))
    flat = torch.rand(8, 6)
    assert Augment(0.2, 20.0)(flat) is flat            # spiral, a flat npz: as they are
    grey = torch.rand(8, 10, 10)                        # an npz of N x H x W
    assert not torch.equal(Augment(0.2, 20.0)(grey, torch.Generator().manual_seed(0)), grey)
    x = torch.rand(8, 1, 10, 10)
    assert Augment()(x) is x                            # off by default


def test_augmenting_ae_encodes_a_moved_image_but_scores_the_clean_one():
    spec = ModelSpec(input_shape=(1, 8, 8), latent_dim=2, n_clusters=2, hidden=(8,),
                     likelihood="bernoulli",
                     options={"augment_shift": 0.2, "augment_rotate": 15})
    ae = build_model("ae", spec)
    x = torch.rand(5, 1, 8, 8)
    torch.manual_seed(3)
    got = ae.loss(x)["loss"]
    torch.manual_seed(3)
    want = -ae.likelihood.log_prob(x, ae.decoder(ae.encode(random_affine(x, 0.2, 15)))).mean()
    torch.testing.assert_close(got, want)


def test_squared_error_ae_scores_the_clean_image_per_input_value():
    """DEC-DA's pretraining loss: the mean over input values of (g(f(moved x)) - x)^2,
    the decoder's output taken as the image itself."""
    spec = ModelSpec(input_shape=(1, 8, 8), latent_dim=2, n_clusters=2, hidden=(8,),
                     likelihood="bernoulli", options={"augment_shift": 0.2,
                                                      "augment_rotate": 15,
                                                      "recon": "squared_error"})
    ae = build_model("ae", spec)
    x = torch.rand(5, 1, 8, 8)
    torch.manual_seed(3)
    got = ae.loss(x)
    torch.manual_seed(3)
    out = ae.decoder(ae.encode(random_affine(x, 0.2, 15))).detach()
    want = sum(float(((out[i] - x[i]) ** 2).sum()) for i in range(5)) / (5 * 64)
    assert got["loss"].item() == pytest.approx(want, rel=1e-5)
    assert "recon_nll" not in got
    torch.testing.assert_close(ae.reconstruct(x), ae.decoder(ae.encode(x)))
    assert set(ae.evaluate(x)) == {"test_recon_mse"}
    with pytest.raises(ParamError, match=r"'pretrain\.ae\.recon"):
        build_model("ae", ModelSpec(input_shape=(6,), latent_dim=2, n_clusters=2,
                                    hidden=(8,), options={"recon": "mse"}))


def test_augmenting_ae_leaves_flat_inputs_as_they_are():
    spec = ModelSpec(input_shape=(6,), latent_dim=2, n_clusters=2, hidden=(8,),
                     options={"augment_shift": 0.1, "augment_rotate": 10})
    ae = build_model("ae", spec)
    x = torch.rand(5, 6)
    want = -ae.likelihood.log_prob(x, ae.decoder(ae.encode(x))).mean()
    torch.testing.assert_close(ae.loss(x)["loss"], want)


@pytest.mark.parametrize(("options", "key"), [
    ({"augment_shift": 0.7}, "augment_shift"), ({"augment_rotate": -1}, "augment_rotate")])
def test_augmenting_ae_rejects_bad_settings(options, key):
    spec = ModelSpec(input_shape=(1, 8, 8), latent_dim=2, n_clusters=2, hidden=(8,),
                     options=options)
    with pytest.raises(ParamError, match=rf"'pretrain\.ae\.{key}"):
        build_model("ae", spec)


@pytest.mark.parametrize(("key", "value"), [
    ("augment_shift", 0.7), ("augment_rotate", -1), ("self_paced", "yes")])
def test_bad_clustering_phase_settings_name_their_key(key, value):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["vade"][key] = value
    with pytest.raises(ParamError, match=rf"'train\.vade\.{key}'"):
        validate(params)


def test_self_paced_threshold_is_mean_plus_progress_times_std():
    losses = torch.tensor([0.1, 0.5, 2.0, 0.3, 4.0, 0.05, 1.2])
    ref = np.array(losses.tolist())
    for progress in (0.0, 0.4, 1.0):
        want = ref.mean() + progress * ref.std()        # the population std (ddof 0)
        assert self_paced_threshold(losses, progress) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="progress"):
        self_paced_threshold(losses, 1.5)


def test_self_paced_mask_takes_the_confident_first_and_grows():
    losses = torch.rand(500, generator=torch.Generator().manual_seed(0)) ** 3
    masks = [self_paced_mask(losses, p) for p in np.linspace(0, 1, 6)]
    for mask in masks:   # every chosen sample is more confident than every one left out
        assert losses[mask].max() < losses[~mask].min()
    sizes = [int(m.sum()) for m in masks]
    assert sizes == sorted(sizes) and 0 < sizes[0] < sizes[-1] < len(losses)
    assert torch.equal(masks[0], losses < losses.mean())


class _Logits(Model):
    """q(c|x) = softmax(W flatten(x)): a tiny clustering model for the anchor."""

    clusters = True

    def __init__(self, shape=(1, 6, 6), k=3):
        super().__init__(ModelSpec(input_shape=shape, latent_dim=2, n_clusters=k))
        self.lin = torch.nn.Linear(int(np.prod(shape)), k)

    def log_q_c(self, x):
        return F.log_softmax(self.lin(x.flatten(1)), -1)

    def loss(self, x):
        return {"loss": 0.0 * self.lin.weight.sum()}


def test_anchor_cross_entropy_over_the_chosen_samples_of_the_augmented_batch():
    torch.manual_seed(0)
    model = _Logits()
    x = torch.rand(10, 1, 6, 6)
    labels = torch.randint(0, 3, (10,))
    idx = torch.tensor([1, 4, 5, 8])
    chosen = torch.zeros(10, dtype=torch.bool)
    chosen[[4, 8, 9]] = True
    anchor = Anchor(labels, 1.0, Augment(0.2, 15.0), self_paced=True)
    torch.manual_seed(5)
    got = anchor.cross_entropy(model, x[idx], idx, chosen)
    torch.manual_seed(5)
    moved = random_affine(x[idx], 0.2, 15.0)
    log_q = model.log_q_c(moved)
    want = -(log_q[1, labels[4]] + log_q[3, labels[8]]) / 2   # batch rows of samples 4, 8
    torch.testing.assert_close(got, want)
    losses = anchor.sample_losses(model, x)
    torch.testing.assert_close(losses, -model.log_q_c(x)[torch.arange(10), labels])


def test_training_chooses_self_paced_samples_every_epoch(monkeypatch):
    """fit() recomputes the chosen samples at each epoch's start, at progress t / (T - 1)."""
    import vaemix.training as training

    seen = []
    real = training.self_paced_mask

    def watched(losses, progress):
        seen.append(progress)
        return real(losses, progress)

    monkeypatch.setattr(training, "self_paced_mask", watched)
    torch.manual_seed(0)
    model = _Logits()
    x = torch.rand(40, 1, 6, 6)
    anchor = Anchor(torch.randint(0, 3, (40,)), 1.0, Augment(0.1, 10.0), self_paced=True)
    result = fit(model, x, TrainConfig(epochs=5, batch_size=8, lr=0.05), anchor=anchor)
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(np.isfinite(r["train/anchor_ce"]) for r in result.history)


@pytest.mark.parametrize("relabel", [True, False])
def test_training_relabels_the_anchor_at_every_epochs_start(monkeypatch, relabel):
    """With relabel, each epoch's self-paced losses are -max_c ln q(c | x) of the model as it
    stood at the epoch's start (its own argmax as labels), and the anchor ends on the last
    epoch's argmax; without, the losses are to the start's labels, which never change."""
    import vaemix.training as training

    seen_log_q, seen_losses = [], []
    real_log_q, real_mask = Anchor.clean_log_q, training.self_paced_mask

    def log_q_watched(self, m, xt):
        out = real_log_q(self, m, xt)
        seen_log_q.append(m.log_q_c(xt).detach())   # computed independently of the anchor
        return out

    def mask_watched(losses, progress):
        seen_losses.append(losses.clone())
        return real_mask(losses, progress)

    monkeypatch.setattr(Anchor, "clean_log_q", log_q_watched)
    monkeypatch.setattr(training, "self_paced_mask", mask_watched)
    torch.manual_seed(0)
    model = _Logits()
    x = torch.rand(40, 1, 6, 6)
    start = torch.randint(0, 3, (40,))
    anchor = Anchor(start.clone(), 1.0, self_paced=True, relabel=relabel)
    fit(model, x, TrainConfig(epochs=3, batch_size=8, lr=0.5), anchor=anchor)
    assert len(seen_log_q) == len(seen_losses) == 3
    for log_q, losses in zip(seen_log_q, seen_losses, strict=True):
        want = (-log_q.max(1).values if relabel
                else -log_q[torch.arange(40), start])
        torch.testing.assert_close(losses, want)
    if relabel:
        assert torch.equal(anchor.labels, seen_log_q[-1].argmax(1))
        assert not torch.equal(anchor.labels, start)
    else:
        assert torch.equal(anchor.labels, start)


def test_dec_da_takes_q_of_a_moved_copy_against_the_clean_target():
    """DEC-DA (Guo et al. 2018, eq. 6): KL(P || Q) with P of the clean images and Q of a
    moved copy, checked against an independent computation; inactive: DEC's own KL."""
    from vaemix.distributions import log_student_t_assignments, target_distribution

    torch.manual_seed(0)
    spec = ModelSpec(input_shape=(1, 8, 8), latent_dim=2, n_clusters=3, hidden=(16,))
    model = build_model("dec", spec)
    x = torch.rand(12, 1, 8, 8)
    idx = torch.tensor([0, 3, 7])
    model.update_target(x)
    with torch.no_grad():   # P by hand, from the clean images
        q = log_student_t_assignments(model.encode(x), model.centres).exp()
        p = target_distribution(q)[idx]
    clean = (p * (p.log() - log_student_t_assignments(model.encode(x[idx]),
                                                      model.centres))).sum(1)
    torch.testing.assert_close(model.clustering_kl(x[idx], idx), clean)
    model.augment = Augment(0.2, 15.0)
    torch.manual_seed(3)
    got = model.clustering_kl(x[idx], idx)
    torch.manual_seed(3)
    moved = random_affine(x[idx], 0.2, 15.0)
    want = (p * (p.log() - log_student_t_assignments(model.encode(moved), model.centres))).sum(1)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, clean)
