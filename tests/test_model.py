"""The VAE: shapes, likelihoods and KL against torch.distributions, reparameterization, config checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from tests.conftest import make_model
from explorer.config import ConfigError, ModelConfig, TrainConfig
from explorer.model import VAE, diag_normal_log_prob, elbo_terms, gaussian_kl, standard_normal_log_prob

# shapes


@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (5, 784), (5, 28, 28)])
def test_encode_decode_shapes(shape):
    model = make_model(latent_dim=3)
    x = torch.rand(shape)
    mu, logvar = model.encode(x)
    assert mu.shape == (5, 3) and logvar.shape == (5, 3)
    out = model.decode(mu)
    assert out.shape == (5, 1, 28, 28)
    assert out.min() >= 0 and out.max() <= 1
    assert model.decode_logits(mu).shape == (5, 784)
    logits, mu2, logvar2 = model(x)
    assert logits.shape == (5, 784)
    torch.testing.assert_close(mu2, mu)
    torch.testing.assert_close(logvar2, logvar)


def test_both_input_layouts_give_the_same_code():
    model = make_model()
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(model.encode(x)[0], model.encode(x.reshape(4, 784))[0])


def test_wrong_image_size_is_refused():
    with pytest.raises(ValueError, match="784"):
        make_model().encode(torch.rand(2, 1, 32, 32))


def test_decode_in_unit_interval_even_for_extreme_codes():
    model = make_model(latent_dim=4)
    out = model.decode(torch.randn(16, 4) * 100)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_sample_shape_and_seed():
    model = make_model(latent_dim=4)
    a = model.sample(6, generator=torch.Generator().manual_seed(1))
    b = model.sample(6, generator=torch.Generator().manual_seed(1))
    c = model.sample(6, generator=torch.Generator().manual_seed(2))
    assert a.shape == (6, 1, 28, 28)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_conditional_model_needs_and_uses_labels():
    model = make_model(latent_dim=4, conditional=True)
    z = torch.randn(3, 4)
    with pytest.raises(ValueError, match="y="):
        model.decode(z)
    with pytest.raises(ValueError, match="y="):
        model.encode(torch.rand(3, 784))
    d0 = model.decode(z, torch.tensor([0, 0, 0]))
    d7 = model.decode(z, torch.tensor([7, 7, 7]))
    assert d0.shape == (3, 1, 28, 28)
    assert (d0 - d7).abs().max() > 1e-4
    # one label broadcasts over the batch
    torch.testing.assert_close(model.decode(z, torch.tensor([7])), d7)
    mu0, _ = model.encode(torch.rand(3, 784), torch.tensor([1, 1, 1]))
    assert mu0.shape == (3, 4)


# the loss terms against torch.distributions


def test_gaussian_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu = torch.randn(32, 8, dtype=torch.float64) * 2
    logvar = torch.randn(32, 8, dtype=torch.float64) * 1.5
    ours = gaussian_kl(mu, logvar).sum(-1)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert (ours >= 0).all()
    assert gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3)).abs().max() == 0  # q = p -> KL 0


def test_gaussian_likelihood_matches_normal_log_prob():
    torch.manual_seed(1)
    model = VAE(ModelConfig(latent_dim=2, hidden=(16,), likelihood="gaussian", sigma=0.2))
    x = torch.rand(6, 784)
    logits = torch.randn(6, 784)
    ours = model.log_px_given_z(x, logits)
    ref = Normal(torch.sigmoid(logits), 0.2).log_prob(x).sum(-1)
    assert ours.shape == (6,)
    torch.testing.assert_close(ours, ref, atol=1e-2, rtol=1e-5)


def test_bernoulli_likelihood_matches_bernoulli_log_prob():
    torch.manual_seed(2)
    model = make_model()
    x = torch.bernoulli(torch.full((6, 784), 0.3))
    logits = torch.randn(6, 784) * 3
    ours = model.log_px_given_z(x, logits)
    ref = Bernoulli(logits=logits).log_prob(x).sum(-1)
    torch.testing.assert_close(ours, ref, atol=1e-3, rtol=1e-5)


def test_likelihood_broadcasts_over_samples():
    model = make_model()
    x = torch.bernoulli(torch.full((3, 784), 0.5))
    logits = torch.randn(5, 3, 784)
    out = model.log_px_given_z(x, logits)
    assert out.shape == (5, 3)
    torch.testing.assert_close(out[2], model.log_px_given_z(x, logits[2]))


def test_log_prob_helpers_match_torch_distributions():
    torch.manual_seed(3)
    z, mu, logvar = torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 5)
    torch.testing.assert_close(standard_normal_log_prob(z), Normal(0.0, 1.0).log_prob(z).sum(-1))
    torch.testing.assert_close(diag_normal_log_prob(z, mu, logvar),
                               Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1))


def test_elbo_terms_are_per_image_and_consistent():
    model = make_model(latent_dim=4)
    x = torch.bernoulli(torch.full((7, 1, 28, 28), 0.2))
    rec, kl = elbo_terms(model, x, generator=torch.Generator().manual_seed(0))
    assert rec.shape == (7,) and kl.shape == (7,)
    assert (rec > 0).all() and (kl >= 0).all()
    mu, logvar = model.encode(x)
    torch.testing.assert_close(kl, gaussian_kl(mu, logvar).sum(-1))
    rec2, _ = elbo_terms(model, x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(rec, rec2)


# reparameterization


def test_reparameterize_moments():
    mu = torch.tensor([1.0, -2.0, 0.5])
    logvar = torch.tensor([0.0, math.log(4.0), math.log(0.01)])
    g = torch.Generator().manual_seed(0)
    z = VAE.reparameterize(mu.expand(200_000, 3), logvar.expand(200_000, 3), g)
    torch.testing.assert_close(z.mean(0), mu, atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 2.0, 0.1]), atol=0.02, rtol=0)


def test_reparameterize_gradients_flow():
    mu = torch.zeros(1000, 2, requires_grad=True)
    logvar = torch.zeros(1000, 2, requires_grad=True)
    z = VAE.reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    z.sum().backward()
    # dz/dmu = 1; dz/dlogvar = 0.5 * exp(logvar / 2) * eps = 0.5 * (z - mu) at logvar 0
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
    torch.testing.assert_close(logvar.grad, 0.5 * z.detach())
    assert logvar.grad.abs().sum() > 0


def test_model_parameters_get_gradients():
    model = make_model(latent_dim=4).train()
    rec, kl = elbo_terms(model, torch.bernoulli(torch.full((8, 784), 0.3)))
    (rec + kl).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# config validation


@pytest.mark.parametrize("kwargs, field", [
    ({"latent_dim": 1}, "latent_dim"),
    ({"latent_dim": 65}, "latent_dim"),
    ({"latent_dim": 2.5}, "latent_dim"),
    ({"likelihood": "foo"}, "likelihood"),
    ({"sigma": 0}, "sigma"),
    ({"sigma": float("nan")}, "sigma"),
    ({"beta": -1}, "beta"),
    ({"beta": float("inf")}, "beta"),
    ({"hidden": ()}, "hidden"),
    ({"hidden": (4,)}, "hidden"),
    ({"hidden": (64, 64, 64, 64, 64)}, "hidden"),
    ({"conditional": "yes"}, "conditional"),
])
def test_model_config_rejects(kwargs, field):
    with pytest.raises(ConfigError) as e:
        ModelConfig(**kwargs).validate()
    assert e.value.field == field
    assert field in str(e.value)
    with pytest.raises(ConfigError):
        VAE(ModelConfig(**kwargs))  # the model validates too


@pytest.mark.parametrize("kwargs, field", [
    ({"lr": float("nan")}, "lr"),
    ({"lr": -1.0}, "lr"),
    ({"lr": 2.0}, "lr"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": True}, "batch_size"),
    ({"dataset": "cifar"}, "dataset"),
    ({"limit": 0}, "limit"),
    ({"eval_k": 0}, "eval_k"),
])
def test_train_config_rejects(kwargs, field):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kwargs).validate()
    assert e.value.field == field


def test_config_boundaries_accepted_and_round_trip():
    for dim in (2, 64):
        assert ModelConfig(latent_dim=dim).validate().latent_dim == dim
    c = ModelConfig(latent_dim=8, hidden=(64, 32), likelihood="gaussian", sigma=0.3, beta=2.0, conditional=True)
    d = c.to_dict()
    assert d["hidden"] == [64, 32]
    assert ModelConfig.from_dict(d) == c
    with pytest.raises(ConfigError) as e:
        ModelConfig.from_dict({**d, "dropout": 0.1})
    assert e.value.field == "dropout"
