"""Density estimates: agreement with evaluate(), prior sampling converging to IWAE, KL bookkeeping,
and the out-of-distribution scores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer import checkpoints, density
from explorer.evaluate import elbo_per_image, evaluate, model_inputs
from explorer.latent import kl_per_dimension

ROOT = Path(__file__).resolve().parents[1]


def shipped(name: str):
    path = ROOT / "checkpoints" / f"{name}.safetensors"
    if not path.is_file():
        pytest.skip(f"no shipped checkpoint {path.name}")
    return checkpoints.load(path)[0]


@pytest.fixture(scope="module")
def test_set(mnist_dir):
    from explorer.data import load_dataset

    ds = load_dataset("mnist", "test", mnist_dir)
    return ds.images, ds.labels


# agreement with explorer.evaluate


@pytest.mark.parametrize("name", ["mnist-z16", "mnist-cvae-z8"])
def test_importance_sampling_matches_evaluate_test_nll(name, test_set):
    model = shipped(name)
    images, labels = test_set[0][:40], test_set[1][:40]
    scores = density.log_px_images(model, images, labels, k=16, seed=3)
    metrics = evaluate(model, images, labels, k=16, seed=3)
    assert scores.shape == (40,) and np.isfinite(scores).all()
    assert -scores.mean() == pytest.approx(metrics["test_nll"], abs=1e-3)
    # and the importance-weighted bound sits above the ELBO, as it must on average
    assert -scores.mean() <= metrics["test_elbo"] + 1.0


def test_single_image_score_matches_the_batch(test_set):
    model = shipped("mnist-z16")
    images = test_set[0][:10]
    x = density.input_row(model, images, 4, seed=0)
    assert torch.equal(x, model_inputs(model, images, 0)[4])
    one = density.single_log_px(model, x, k=64, seed=5)
    assert math.isfinite(one) and one < 0
    batch = density.log_px_images(model, images, k=64, seed=0)
    assert abs(one - batch[4]) < 3.0  # same image and input, different samples


def test_conditional_marginal_is_log_mean_exp_over_classes(test_set):
    model = shipped("mnist-cvae-z8")
    images = test_set[0][:5]
    marginal = density.log_px_marginal(model, images, k=4, seed=1)
    per_class = np.stack([density.log_px_images(model, images, np.full(5, c), k=4, seed=1) for c in range(10)])
    expected = np.log(np.exp(per_class - per_class.max(0)).mean(0)) + per_class.max(0)
    assert np.allclose(marginal, expected, atol=1e-4)
    # the true label explains a digit better than the average label does
    true = density.log_px_images(model, images, test_set[1][:5], k=4, seed=1)
    assert np.mean(true > marginal) >= 0.8


# Monte Carlo versus importance sampling


@pytest.mark.slow
def test_prior_sampling_converges_to_iwae_on_a_2d_model(test_set):
    model = shipped("mnist-z2")
    err_10, err_20000, err_enc_10 = [], [], []
    for i in range(3):
        x = density.input_row(model, test_set[0][:8], i, seed=0)
        truth = density.single_log_px(model, x, k=5000, seed=99)
        prior = density.running_estimates(model, x, n=20_000, repeats=1, seed=7, proposals=("prior",))["prior"][0]
        enc = density.running_estimates(model, x, n=10, repeats=1, seed=7, proposals=("encoder",))["encoder"][0]
        assert prior.shape == (20_000,) and np.isfinite(prior).all()
        err_10.append(abs(prior[9] - truth))
        err_20000.append(abs(prior[-1] - truth))
        err_enc_10.append(abs(enc[-1] - truth))
    assert np.mean(err_20000) < 0.2 * np.mean(err_10)
    assert np.mean(err_20000) < 2.0  # nats
    assert np.mean(err_enc_10) < np.mean(err_10)  # q(z|x) needs a handful where the prior needs thousands


def test_log_spaced_counts():
    steps = density.log_spaced(10_000, points=50)
    assert steps[0] == 1 and steps[-1] == 10_000
    assert np.all(np.diff(steps) > 0) and len(steps) <= 50


def test_posterior_kl_is_the_elbo_kl(test_set):
    model = shipped("mnist-z16")
    x = model_inputs(model, test_set[0][:3], 0)
    _, kl = elbo_per_image(model, x)
    assert [density.posterior_kl(model, x[i]) for i in range(3)] == pytest.approx(kl.tolist(), rel=1e-5)


# KL per dimension


def test_kl_per_dimension_sums_to_the_total_kl(test_set):
    model = shipped("mnist-z16")
    x = model_inputs(model, test_set[0][:200], 0)
    with torch.no_grad():
        mu, logvar = model.encode(x)
    per_dim = kl_per_dimension(mu.numpy(), logvar.numpy())
    _, kl = elbo_per_image(model, x)
    assert per_dim.shape == (16,) and (per_dim >= 0).all()
    assert per_dim.sum() == pytest.approx(kl.mean(), rel=1e-4)


# out-of-distribution sets


def test_anomaly_sets_are_built_as_described(test_set):
    images = test_set[0][:30]
    sets = density.anomaly_sets(images, images[::-1], limit=10)
    assert list(sets) == ["test digits", "rotated digits (90°)", "Fashion-MNIST", "uniform noise"]
    assert all(v.shape == (10, 28, 28) and v.dtype == np.uint8 for v in sets.values())
    assert np.array_equal(sets["rotated digits (90°)"][0], np.rot90(images[0]))
    assert "Fashion-MNIST" not in density.anomaly_sets(images, None, limit=10)
    assert 0.45 < sets["uniform noise"].mean() / 255 < 0.55


def test_anomaly_scores_are_finite_and_noise_scores_far_below_digits(test_set):
    model = shipped("mnist-z16")
    sets = density.anomaly_sets(test_set[0], test_set[0][5000:], limit=40)
    scores = density.anomaly_scores(model, sets, k=8, limit=40)
    assert set(scores) == set(sets)
    assert all(s.shape == (40,) and np.isfinite(s).all() for s in scores.values())
    summary = density.summarise(scores)
    assert summary["uniform noise"]["median"] < summary["test digits"]["median"] - 200
    assert summary["uniform noise"]["p90"] < summary["test digits"]["p10"]


def test_percentile_and_class_medians():
    scores = np.array([-300.0, -200.0, -100.0, -50.0])
    assert density.percentile_of(scores, -100.0) == 75.0
    assert density.percentile_of(scores, -1000.0) == 0.0
    rows = density.class_medians(scores, np.array([0, 0, 1, 1]), ["a", "b"])
    assert rows == [("b", -75.0), ("a", -250.0)]
    assert density.ink_fraction(np.full((2, 28, 28), 200, np.uint8)).tolist() == [1.0, 1.0]
