"""ELBO and importance-weighted log p(x): bounds, monotonicity in k, determinism, the CLI."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from tests.conftest import make_model
from explorer import checkpoints, evaluate as ev
from explorer.config import ModelConfig, TrainConfig
from explorer.model import VAE
from explorer.train import fit


def trained(digits, latent_dim: int, epochs: int = 4) -> VAE:
    images, labels = digits
    torch.manual_seed(0)
    model = VAE(ModelConfig(latent_dim=latent_dim, hidden=(128,)))
    fit(model, images[:3000], labels[:3000],
        TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, augment=False, warmup_epochs=0, seed=0))
    return model.eval()


@pytest.fixture(scope="module")
def model8(digits) -> VAE:
    return trained(digits, 8)


@pytest.fixture(scope="module")
def model2(digits) -> VAE:
    return trained(digits, 2)


@pytest.fixture(scope="module")
def held_out(digits, model8) -> torch.Tensor:
    """200 binarized digits the models never saw: (200, 784) in {0, 1}."""
    return ev.model_inputs(model8, digits[0][4000:4200], seed=0)


# inputs


def test_model_inputs_binarization_is_seeded(tiny_model, digits):
    images = digits[0][:50]
    a = ev.model_inputs(tiny_model, images, seed=1)
    b = ev.model_inputs(tiny_model, images, seed=1)
    c = ev.model_inputs(tiny_model, images, seed=2)
    assert a.shape == (50, 784) and a.dtype == torch.float32
    assert set(torch.unique(a).tolist()) == {0.0, 1.0}
    assert torch.equal(a, b) and not torch.equal(a, c)
    # binarization keeps the ink: P(x=1) = pixel / 255
    assert abs(a.mean().item() - images.mean() / 255) < 0.01
    assert (a[torch.as_tensor(images.reshape(50, -1)) == 0] == 0).all()


def test_model_inputs_gaussian_is_scaled_not_binarized(digits):
    model = make_model(likelihood="gaussian")
    x = ev.model_inputs(model, digits[0][:5])
    torch.testing.assert_close(x, torch.as_tensor(digits[0][:5].reshape(5, -1)).float() / 255)


# bounds


def test_iwae_is_above_the_elbo(model8, held_out):
    rec, kl = ev.elbo_per_image(model8, held_out, seed=0)
    elbo = -(rec + kl)
    log_px = ev.iwae_log_px(model8, held_out, k=20, seed=0)
    assert log_px.shape == (200,) and np.isfinite(log_px).all()
    assert log_px.mean() > elbo.mean() + 1.0
    assert (log_px > elbo).mean() > 0.7  # per image too, for most (one-sample ELBOs are noisy)


def test_iwae_mean_is_non_decreasing_in_k(model8, held_out):
    means = {k: np.mean([ev.iwae_log_px(model8, held_out, k=k, seed=s).mean() for s in range(2)])
             for k in (1, 10, 100)}
    assert means[1] < means[10] < means[100]
    assert means[10] - means[1] > 1.0  # the bound tightens by whole nats on a trained model
    assert means[100] - means[10] > 0.3
    assert means[100] < 0


def test_iwae_with_one_sample_is_the_elbo_in_expectation(model8, held_out):
    elbos = [-(r + k).mean() for r, k in (ev.elbo_per_image(model8, held_out, seed=s) for s in range(4))]
    k1 = [ev.iwae_log_px(model8, held_out, k=1, seed=s).mean() for s in range(10, 14)]
    assert abs(np.mean(elbos) - np.mean(k1)) < 1.0


def test_log_weights_are_log_joint_minus_log_q(tiny_model):
    x = torch.bernoulli(torch.full((3, 784), 0.3))
    g = torch.Generator().manual_seed(5)
    lw = ev.log_weights(tiny_model, x, None, 4, g)
    assert lw.shape == (4, 3)
    mu, logvar = tiny_model.encode(x)
    eps = torch.randn((4, 3, 4), generator=torch.Generator().manual_seed(5))
    z = mu + (0.5 * logvar).exp() * eps
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    p_z = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    p_x = torch.distributions.Bernoulli(logits=tiny_model.decode_logits(z.reshape(12, 4)).reshape(4, 3, 784))
    torch.testing.assert_close(lw, p_x.log_prob(x).sum(-1) + p_z - q, atol=1e-3, rtol=1e-5)


# evaluate()


def test_evaluate_metrics(model8, digits):
    progress = []
    m = ev.evaluate(model8, digits[0][4000:4200], k=50, seed=0, progress=lambda d, t: progress.append((d, t)))
    assert m["n"] == 200 and m["k"] == 50 and m["likelihood"] == "bernoulli"
    assert 0 < m["test_nll"] <= m["test_elbo"]
    assert m["test_elbo"] == pytest.approx(m["test_rec"] + m["test_kl"], rel=1e-5)
    assert m["test_kl"] > 0
    assert 100 < m["test_nll"] < 300  # a few epochs on MNIST: well below 784 * log 2 = 543 nats
    assert progress[-1] == (200, 200)


def test_evaluate_limit_and_determinism(model8, digits):
    images = digits[0][4000:4300]
    a = ev.evaluate(model8, images, k=10, seed=3, limit=120)
    b = ev.evaluate(model8, images, k=10, seed=3, limit=120)
    c = ev.evaluate(model8, images, k=10, seed=4, limit=120)
    assert a["n"] == 120
    for key in ("test_elbo", "test_rec", "test_kl", "test_nll"):
        assert a[key] == b[key], key
    assert a["test_nll"] != c["test_nll"] and a["test_elbo"] != c["test_elbo"]


def test_evaluate_conditional_needs_labels(digits):
    model = make_model(conditional=True)
    with pytest.raises(ValueError, match="labels"):
        ev.evaluate(model, digits[0][:10], None, k=2)
    m = ev.evaluate(model, digits[0][:10], digits[1][:10], k=2)
    assert m["n"] == 10 and m["test_nll"] > 0


# the running estimate of the log-likelihood plot


@pytest.mark.slow  # 6 x 20,000 decodes
def test_running_log_px_prior_converges_to_encoder_estimate(model2, digits):
    x = ev.model_inputs(model2, digits[0][4000:4006], seed=0)
    reference = ev.iwae_log_px(model2, x, k=5000, seed=1)
    runs = np.stack([ev.running_log_px(model2, x[i], n=20_000, proposal="prior", seed=i) for i in range(len(x))])
    assert runs.shape == (6, 20_000) and np.isfinite(runs).all()
    # n = 20,000 draws from the prior: within a couple of nats of the encoder's estimate, except for
    # the odd image whose posterior sits far out in the prior's tail (the prior rarely samples there)
    gap = np.abs(runs[:, -1] - reference)
    assert np.median(gap) < 1.0
    assert (gap < 2.0).sum() >= 5
    # n = 10 draws from the prior: far too low (few land where q(z|x) puts its mass)
    assert (reference - runs[:, 9]).mean() > 10.0
    # the encoder proposal is close already at n = 100
    enc = np.stack([ev.running_log_px(model2, x[i], n=100, proposal="encoder", seed=i) for i in range(len(x))])
    assert np.abs(enc[:, -1] - reference).mean() < 2.0


def test_running_log_px_is_a_running_mean(tiny_model):
    x = torch.bernoulli(torch.full((784,), 0.2))
    run = ev.running_log_px(tiny_model, x, n=50, seed=0)
    lw = ev.log_weights(tiny_model, x.reshape(1, -1), None, 50, torch.Generator().manual_seed(0))[:, 0].double()
    expected = torch.logcumsumexp(lw, 0) - torch.log(torch.arange(1, 51, dtype=torch.float64))
    np.testing.assert_allclose(run, expected.numpy(), atol=1e-3)
    assert run[0] == pytest.approx(lw[0].item(), abs=1e-4)


# the CLI


def test_cli_on_a_corrupt_file(tmp_path, capsys):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00" * 100)
    assert ev.main([str(bad), "--k", "2"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "broken.safetensors" in err


def test_cli_rejects_bad_k(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        ev.main([str(tmp_path / "x.safetensors"), "--k", "0"])
    assert e.value.code == 2
    assert "--k" in capsys.readouterr().err


def test_cli_writes_json(tmp_path, mnist_dir, capsys):
    import json

    path = checkpoints.save(make_model(), tmp_path / "tiny.safetensors")
    out = tmp_path / "m.json"
    assert ev.main([str(path), "--k", "3", "--limit", "40", "--data-dir", str(mnist_dir), "--json", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["n"] == 40 and m["k"] == 3 and 0 < m["test_nll"] <= m["test_elbo"]
    assert str(mnist_dir) in m["data_source"]
    assert "test NLL (k=3)" in capsys.readouterr().out
