"""The GMVAE family: GMVAE (Collier & Urdiales 2019, eq. 6), Concrete GMVAE (eq. 7-8) and
GMVAE + DP-GMM (Nagpal et al. 2019, Algorithm 1): the marginal ELBO against an explicit
sum over y, the Concrete estimate's limit as tau -> 0, the KL annealing schedule, DP-GMM
refits in place, learning on separated clusters, and option errors."""

import itertools
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from tests.models.conftest import BLOB_SPEC
from vaemix.errors import DataError, ParamError
from vaemix.metrics import clustering_metrics
from vaemix.models import MODELS, ModelSpec, build_model
from vaemix.models.concrete_gmvae import ConcreteGMVAE, kl_weight
from vaemix.models.gmvae import GMVAE
from vaemix.models.gmvae_dpgmm import GMVAEDPGMM, match_components
from vaemix.training import TrainConfig, batched, fit, seed_everything

FAMILY = ("gmvae", "concrete_gmvae", "gmvae_dpgmm")


def small_spec(**options) -> ModelSpec:
    return ModelSpec(input_shape=(5,), latent_dim=3, n_clusters=4, hidden=(16,),
                     likelihood="gaussian", options={"head_hidden": [8], "init": "none",
                                                     **options})


@pytest.fixture
def fixed_noise(monkeypatch):
    """Replace the reparameterisation noise by one fixed eps [d] for every draw, so a
    batched computation and an explicit loop see the same z."""
    eps = torch.tensor([0.3, -1.2, 0.7])

    def reparameterize(mean, logvar, generator=None):
        return mean + torch.exp(0.5 * logvar) * eps

    for module in ("gmvae", "concrete_gmvae", "gmvae_dpgmm"):
        monkeypatch.setattr(f"vaemix.models.{module}.reparameterize", reparameterize)
    return eps


def test_registered():
    assert MODELS["gmvae"] is GMVAE and MODELS["concrete_gmvae"] is ConcreteGMVAE
    assert MODELS["gmvae_dpgmm"] is GMVAEDPGMM
    assert all(MODELS[m].clusters for m in FAMILY)


def test_marginal_elbo_equals_explicit_sum_over_y(fixed_noise):
    torch.manual_seed(0)
    model = GMVAE(small_spec()).eval()
    with torch.no_grad():
        model.prior_mean.normal_()
        model.prior_logvar.uniform_(-1, 1)
        model.likelihood.logvar.uniform_(-1, 0)
        x = torch.randn(7, 5)
        got = model.marginal_elbo(x)["elbo"]

        h = model.trunk(x)
        q_y = torch.softmax(model.q_y(h), dim=-1)
        noise_sd = torch.exp(0.5 * model.likelihood.logvar)
        want = torch.zeros(7)
        for y in range(4):
            one_hot = torch.zeros(7, 4)
            one_hot[:, y] = 1.0
            mean, logvar = model.q_z_head(model.q_z_body(torch.cat([h, one_hot], -1)))
            sd = torch.exp(0.5 * logvar)
            z = mean + sd * fixed_noise
            recon = Normal(model.decoder(z), noise_sd).log_prob(x).sum(-1)
            prior = Normal(model.prior_mean[y], torch.exp(0.5 * model.prior_logvar[y]))
            kl_z = kl_divergence(Normal(mean, sd), prior).sum(-1)
            want += q_y[:, y] * (recon - kl_z)
        want -= (q_y * (q_y.log() - math.log(1 / 4))).sum(-1)  # KL(q(y|x) || Cat(1/K))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_concrete_estimate_approaches_the_marginal_elbo_as_tau_goes_to_zero(fixed_noise):
    torch.manual_seed(1)
    errors = {}
    for tau in (2.0, 0.02):
        model = ConcreteGMVAE(small_spec(tau=tau, kl_anneal="none"))
        model.eval()
        with torch.no_grad():
            model.prior_mean.normal_()
            x = torch.randn(2, 5)
            exact = model.marginal_elbo(x)["elbo"]
            reps = 20000
            t = model.concrete_terms(x.repeat(reps, 1))
            est = (t["recon_ll"] - t["kl_z"] - t["kl_y"]).view(reps, 2)
            se = est.std(0) / math.sqrt(reps)
            errors[tau] = (est.mean(0) - exact).abs()
    assert (errors[0.02] < 4 * se + 1e-2).all(), (errors, se)
    assert errors[2.0].max() > errors[0.02].max()  # a warm relaxation is biased


def test_kl_annealing_starts_at_zero_and_reaches_one():
    weights = [kl_weight(t, "linear", 2000) for t in (0, 500, 1000, 2000, 5000)]
    assert weights == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert kl_weight(0, "none", 2000) == 1.0
    rising = [kl_weight(t, "exp", 2000) for t in (0, 2000, 20000)]
    assert rising == [0.0, pytest.approx(1 - math.exp(-1)), pytest.approx(1.0, abs=1e-4)]
    printed = [kl_weight(t, "exp_printed", 2000) for t in (0, 2000, 20000)]
    assert printed == [1.0, pytest.approx(math.exp(-1)), pytest.approx(0.0, abs=1e-4)]
    model = ConcreteGMVAE(small_spec(kl_anneal_steps=4, kl_anneal="linear")).train()
    seen = [float(model.loss(torch.randn(3, 5))["kl_y_weight"]) for _ in range(6)]
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert int(model.state_dict()["step"]) == 6  # saved with the model
    model.eval()
    model.loss(torch.randn(3, 5))
    assert int(model.step) == 6  # evaluation does not advance the schedule


def test_dpgmm_refit_changes_the_prior_in_place_without_touching_the_optimiser():
    seed_everything(0)
    x = torch.cat([torch.randn(100, 5) + 6.0 * c for c in range(3)])
    model = GMVAEDPGMM(small_spec(truncation_factor=3, min_weight=0.05))
    assert model.n_components == 12 and model.q_y[-1].out_features == 12
    model.initialise(x, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.start_epoch(0, 2)
    loss = model.loss(x[:32])["loss"]
    loss.backward()
    opt.step()
    params_before = [p.data_ptr() for p in model.parameters()]
    state_before = {id(p): {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}
    buffers = {n: (b.data_ptr(), b.clone()) for n, b in model.named_buffers()
               if n.startswith("prior")}

    n_eff = model.refit()

    for name, (ptr, old) in buffers.items():
        new = dict(model.named_buffers())[name]
        assert new.data_ptr() == ptr, name  # same tensor, values copied in
        assert not torch.equal(new, old), name
    assert torch.logsumexp(model.prior_log_weights, 0).abs() < 1e-5
    assert 1 <= n_eff <= 12 and n_eff == model.n_effective()
    assert [p.data_ptr() for p in model.parameters()] == params_before
    for p, s in opt.state.items():
        for k, v in s.items():
            assert torch.equal(v, state_before[id(p)][k])
    assert not any(n.startswith("prior") for n, _ in model.named_parameters())
    model.loss(x[:32])["loss"].backward()  # training goes on
    opt.step()
    assert len(model.refits) == 2 and model.summary_metrics()["n_refits"] == 2


def test_dpgmm_covariance_prior_reaches_every_refit():
    """The Wishart pseudo-count reaches the refits' DP-GMM and changes how many components
    keep weight (bench/dpgmm_prior.py measures the dependence on real latents)."""
    x = torch.cat([torch.randn(150, 5) * torch.tensor([4.0, 1, 1, 1, 1]) + 8.0 * c
                   for c in range(3)])
    effective = {}
    for dof in (None, 5000.0):
        seed_everything(0)
        model = GMVAEDPGMM(small_spec(truncation_factor=3, degrees_of_freedom_prior=dof))
        model.initialise(x, seed=0)
        effective[dof] = model.refit()
        assert model._dpgmm.degrees_of_freedom_prior == dof
    assert effective[5000.0] != effective[None]


@pytest.mark.parametrize("method", FAMILY)
def test_separates_blobs_and_uses_every_cluster(blob_data, method):
    x_train, _, x_test, y_test, _, ae_path = blob_data
    seed_everything(0)
    options = {"head_hidden": [32], "init": "ae"}   # the start vaemix's params.yaml gives
    if method != "gmvae":  # the Concrete sample's KL annealing
        options.update(kl_anneal="linear", kl_anneal_steps=100)
    if method == "gmvae_dpgmm":
        options.update(truncation_factor=3, refit_on="sample", dp_warm_start=True)
    model = build_model(method, ModelSpec(**BLOB_SPEC, options=options))
    model.initialise(x_train, seed=0, ae_checkpoint=ae_path)
    fit(model, x_train, TrainConfig(epochs=30, batch_size=64, lr=3e-3, seed=0))
    pred = batched(model.predict_clusters, x_test).numpy()
    m = clustering_metrics(np.asarray(y_test), pred)
    assert m["acc"] >= 0.9 and m["n_clusters_used"] == 5, (method, m)
    metrics = batched(model.evaluate, x_test)
    assert (metrics["elbo"] <= metrics["test_recon_ll"] + 1e-3).float().mean() > 0.9
    samples = model.sample_per_cluster(3)
    assert samples.shape[1:] == (3, 10) and torch.isfinite(samples).all()
    if method == "gmvae_dpgmm":
        # truncation 15, five blobs: the DP keeps five components
        assert model.summary_metrics()["n_components_effective"] == 5
        assert samples.shape[0] == 5


def test_spectral_consensus_start_separates_blobs(blob_data):
    x_train, _, x_test, y_test, _, ae_path = blob_data
    seed_everything(0)
    options = {"head_hidden": [32], "init": "ae", "kl_anneal": "linear", "kl_anneal_steps": 100,
               "init_clusters": "spectral_consensus"}
    model = build_model("concrete_gmvae", ModelSpec(**BLOB_SPEC, options=options))
    model.initialise(x_train, seed=0, ae_checkpoint=ae_path)
    fit(model, x_train, TrainConfig(epochs=10, batch_size=64, lr=3e-3, seed=0))
    m = clustering_metrics(np.asarray(y_test), batched(model.predict_clusters, x_test).numpy())
    assert m["acc"] >= 0.9 and m["n_clusters_used"] == 5, m


def test_dpgmm_starts_from_a_trained_gmvae(blob_data, tmp_path):
    """init gmvae (Nagpal et al. 2019, third experiment): the GMVAE's trunk, decoder and
    likelihood are copied, the first DP-GMM is fitted on its latents, and the alternating
    network goes on to separate the blobs. A checkpoint of another shape is refused."""
    x_train, _, x_test, y_test, _, ae_path = blob_data
    seed_everything(0)
    gmvae = build_model("gmvae", ModelSpec(**BLOB_SPEC, options={"head_hidden": [32]}))
    gmvae.initialise(x_train, seed=0, ae_checkpoint=ae_path)
    fit(gmvae, x_train, TrainConfig(epochs=10, batch_size=64, lr=3e-3, seed=0))
    path = tmp_path / "gmvae.pt"
    torch.save({"state_dict": gmvae.state_dict(), "spec": asdict(gmvae.spec),
                "method": "gmvae"}, path)
    options = {"head_hidden": [32], "kl_anneal_steps": 100, "init": "gmvae"}
    model = build_model("gmvae_dpgmm", ModelSpec(**BLOB_SPEC, options=options))
    model.initialise(x_train, seed=0, gmvae_checkpoint=path)
    for mine, theirs in ((model.trunk, gmvae.trunk), (model.decoder, gmvae.decoder)):
        for a, b in zip(mine.state_dict().values(), theirs.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    assert model.n_effective() == 5  # the first DP-GMM, on the GMVAE's latents
    fit(model, x_train, TrainConfig(epochs=10, batch_size=64, lr=3e-3, seed=0))
    m = clustering_metrics(np.asarray(y_test), batched(model.predict_clusters, x_test).numpy())
    assert m["acc"] >= 0.9 and m["n_clusters_used"] == 5, m

    other = build_model("gmvae_dpgmm", ModelSpec(**{**BLOB_SPEC, "latent_dim": 3},
                                                 options=options))
    with pytest.raises(DataError, match="gmvae.pt: its networks .* do not match"):
        other.initialise(x_train, seed=0, gmvae_checkpoint=path)
    with pytest.raises(ParamError, match="'train.gmvae_dpgmm.init' is 'gmvae'"):
        model.initialise(x_train, seed=0, ae_checkpoint=ae_path)


def test_gmvae_from_random_start_learns(blob_data):
    """init none (the paper's setting): the ELBO improves and q(y|x) is used."""
    x_train, _, x_test, y_test, _, _ = blob_data
    seed_everything(0)
    model = build_model("gmvae", ModelSpec(**BLOB_SPEC, options={"head_hidden": [32],
                                                                 "init": "none"}))
    before = float(batched(model.evaluate, x_test)["elbo"].mean())
    fit(model, x_train, TrainConfig(epochs=20, batch_size=64, lr=3e-3, seed=0))
    after = float(batched(model.evaluate, x_test)["elbo"].mean())
    assert after > before + 50
    assert clustering_metrics(np.asarray(y_test),
                              batched(model.predict_clusters, x_test).numpy())["nmi"] > 0.5


def test_conv_networks_of_the_appendix():
    """CIFAR-shaped input: the shared conv encoder (20 then 40 5x5 filters, fc 512 in the
    paper; narrower here) and K copies through q(z|x,y) and the decoder."""
    spec = ModelSpec(input_shape=(3, 32, 32), latent_dim=4, n_clusters=3, net="conv",
                     hidden=(32,), likelihood="gaussian", options={"head_hidden": [16, 8],
                                                                   "init": "none"})
    model = build_model("gmvae", spec)
    x = torch.rand(2, 3, 32, 32)
    log_q_y, recon, kl_z = model.marginal_terms(x)
    assert log_q_y.shape == recon.shape == kl_z.shape == (2, 3)
    assert model.reconstruct(x).shape == x.shape
    assert model.sample_per_cluster(2).shape == (3, 2, 3, 32, 32)


@pytest.mark.parametrize(
    ("method", "options", "key"),
    [
        ("concrete_gmvae", {"tau": 0}, "train.concrete_gmvae.tau"),
        ("concrete_gmvae", {"kl_anneal": "cosine"}, "train.concrete_gmvae.kl_anneal"),
        ("gmvae", {"head_hidden": []}, "train.gmvae.head_hidden"),
        ("gmvae", {"init": "vae"}, "train.gmvae.init"),
        ("gmvae_dpgmm", {"truncation_factor": 0.5}, "train.gmvae_dpgmm.truncation_factor"),
        ("gmvae_dpgmm", {"min_weight": 1.5}, "train.gmvae_dpgmm.min_weight"),
        ("gmvae_dpgmm", {"refit_every": 0}, "train.gmvae_dpgmm.refit_every"),
        ("gmvae_dpgmm", {"degrees_of_freedom_prior": -1},
         "train.gmvae_dpgmm.degrees_of_freedom_prior"),
    ],
)
def test_bad_options_name_the_key(method, options, key):
    with pytest.raises(ParamError, match=f"'{key}'"):
        build_model(method, small_spec(**options))


def test_dpgmm_state_dict_restores_the_warm_start(tmp_path):
    """A model restored from its saved state (a checkpoint) refits exactly as the original:
    the DP-GMM's fitted state travels in the state dict, and loads with weights_only."""
    seed_everything(0)
    x = torch.cat([torch.randn(80, 5) + 6.0 * c for c in range(3)])
    model = GMVAEDPGMM(small_spec(dp_warm_start=True))
    model.initialise(x, seed=3)
    model.refit()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    restored = GMVAEDPGMM(small_spec(dp_warm_start=True))
    restored.initialise(x, seed=0)  # the seed comes back from the state
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert restored.refits == model.refits
    torch.manual_seed(7)
    model.refit()
    torch.manual_seed(7)
    restored.refit()
    for name in ("prior_mean", "prior_logvar", "prior_log_weights"):
        torch.testing.assert_close(getattr(restored, name), getattr(model, name))
    assert restored.refits == model.refits and len(model.refits) == 2


def test_match_components_is_the_cheapest_relabelling():
    """Against every permutation: the order puts each new component in the slot of the old
    one it lies nearest to, by least total squared distance."""
    rng = np.random.default_rng(0)
    old = rng.normal(size=(5, 3))
    new = old[[3, 0, 4, 1, 2]] + rng.normal(scale=0.05, size=(5, 3))
    order = match_components(old, new)
    cost = [((old - new[list(p)]) ** 2).sum() for p in itertools.permutations(range(5))]
    assert ((old - new[order]) ** 2).sum() == pytest.approx(min(cost))
    assert order.tolist() == [1, 3, 4, 0, 2]


def test_fresh_refits_keep_each_component_in_its_slot():
    """dp_warm_start false (Nagpal et al.'s Algorithm 1): every refit is a new DP-GMM, and
    its components land in the slots of the previous prior's, so q(y|x)'s outputs keep
    their meaning; the prior's means move only as far as the latents do."""
    seed_everything(0)
    x = torch.cat([torch.randn(80, 5) + 6.0 * c for c in range(4)])   # K = 4 blobs
    model = GMVAEDPGMM(small_spec(dp_warm_start=False, refit_on="mean"))
    model.initialise(x, seed=0)
    model.refit()
    first = model.prior_mean.clone()
    assert model._dpgmm.warm_start is False
    model._seed = 5   # the same latents, a new fit from another k-means start ...
    model.refit()
    raw = torch.as_tensor(model._dpgmm.means_, dtype=torch.float32)
    assert not torch.allclose(raw, first, atol=0.1)   # ... which orders them otherwise
    torch.testing.assert_close(model.prior_mean, first, atol=0.1, rtol=0)
