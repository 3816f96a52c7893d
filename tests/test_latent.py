"""Latent-space tools: interpolation, per-dimension KL, traversals, grids, mosaics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import make_model
from explorer import latent
from explorer.model import elbo_terms, gaussian_kl

# interpolation


@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_interpolate_endpoints_and_shape(mode):
    rng = np.random.default_rng(0)
    z0, z1 = rng.standard_normal(6), rng.standard_normal(6) * 2
    path = latent.interpolate(z0, z1, 9, mode=mode)
    assert path.shape == (9, 6) and path.dtype == np.float32
    np.testing.assert_allclose(path[0], z0, atol=1e-6)
    np.testing.assert_allclose(path[-1], z1, atol=1e-6)


def test_linear_interpolation_is_evenly_spaced():
    path = latent.interpolate([0.0, 0.0], [4.0, -8.0], 5, mode="linear")
    np.testing.assert_allclose(path, [[0, 0], [1, -2], [2, -4], [3, -6], [4, -8]], atol=1e-6)


def test_slerp_keeps_equal_norms_and_follows_the_great_circle():
    z0 = np.array([3.0, 0.0, 0.0])
    z1 = np.array([0.0, 3.0, 0.0])
    path = latent.interpolate(z0, z1, 7, mode="slerp")
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 3.0, atol=1e-5)
    angles = np.arctan2(path[:, 1], path[:, 0])
    np.testing.assert_allclose(angles, np.linspace(0, np.pi / 2, 7), atol=1e-5)  # equal angular steps
    assert np.abs(path[:, 2]).max() < 1e-6  # stays in the plane of the endpoints
    # linear interpolation cuts through the centre instead
    mid = latent.interpolate(z0, z1, 3, mode="linear")[1]
    assert np.linalg.norm(mid) < 2.2


def test_slerp_norms_are_linear_between_endpoints():
    rng = np.random.default_rng(1)
    z0 = rng.standard_normal(16)
    z1 = rng.standard_normal(16) * 3
    path = latent.interpolate(z0, z1, 11, mode="slerp")
    np.testing.assert_allclose(np.linalg.norm(path, axis=1),
                               np.linspace(np.linalg.norm(z0), np.linalg.norm(z1), 11), rtol=1e-5)


def test_slerp_degenerate_cases():
    # a zero endpoint or identical directions: no division by zero, a straight line
    path = latent.interpolate([0.0, 0.0], [2.0, 2.0], 3, mode="slerp")
    np.testing.assert_allclose(path, [[0, 0], [1, 1], [2, 2]], atol=1e-6)
    path = latent.interpolate([1.0, 1.0], [2.0, 2.0], 3, mode="slerp")
    np.testing.assert_allclose(path, [[1, 1], [1.5, 1.5], [2, 2]], atol=1e-6)
    assert np.isfinite(latent.interpolate([1.0, 0.0], [-1.0, 0.0], 5)).all()  # opposite directions


def test_interpolate_rejects_bad_arguments():
    for steps in (1, 0, -3):
        with pytest.raises(ValueError, match="steps"):
            latent.interpolate([0, 0], [1, 1], steps)
    with pytest.raises(ValueError, match="mode"):
        latent.interpolate([0, 0], [1, 1], 3, mode="cubic")


# codes and KL


def test_encode_images_uses_the_mean_and_accepts_uint8():
    model = make_model(latent_dim=4)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    mu, logvar = latent.encode_images(model, images, batch_size=7)
    assert mu.shape == (30, 4) and logvar.shape == (30, 4)
    ref_mu, ref_lv = model.encode(torch.from_numpy(images.astype(np.float32) / 255))
    np.testing.assert_allclose(mu, ref_mu.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(logvar, ref_lv.detach().numpy(), atol=1e-5)
    mu2, _ = latent.encode_images(model, images.astype(np.float32) / 255)  # floats in [0, 1] too
    np.testing.assert_allclose(mu2, mu, atol=1e-5)
    again, _ = latent.encode_images(model, images, batch_size=7)
    np.testing.assert_array_equal(again, mu)  # deterministic: the mean, no sampling


def test_kl_per_dimension_sums_to_the_average_kl_term():
    model = make_model(latent_dim=6)
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    mu, logvar = latent.encode_images(model, images)
    per_dim = latent.kl_per_dimension(mu, logvar)
    assert per_dim.shape == (6,) and (per_dim >= 0).all()
    x = torch.from_numpy(images.astype(np.float32) / 255)
    _, kl = elbo_terms(model, x)
    assert per_dim.sum() == pytest.approx(kl.mean().item(), rel=1e-5)
    ref = gaussian_kl(torch.as_tensor(mu), torch.as_tensor(logvar)).sum(-1).mean().item()
    assert per_dim.sum() == pytest.approx(ref, rel=1e-6)


def test_kl_per_dimension_known_values():
    mu = np.array([[0.0, 2.0], [0.0, -2.0]], np.float32)
    logvar = np.zeros((2, 2), np.float32)
    np.testing.assert_allclose(latent.kl_per_dimension(mu, logvar), [0.0, 2.0], atol=1e-6)  # mu^2 / 2


def test_active_units():
    rng = np.random.default_rng(4)
    mu = np.stack([rng.standard_normal(500), np.full(500, 0.3) + rng.standard_normal(500) * 0.01], 1)
    np.testing.assert_array_equal(latent.active_units(mu), [True, False])


# decoding, traversals, grids


def test_decode_numpy():
    model = make_model(latent_dim=3)
    imgs = latent.decode_numpy(model, np.zeros((5, 3)))
    assert imgs.shape == (5, 28, 28) and imgs.dtype == np.float32
    assert imgs.min() >= 0 and imgs.max() <= 1
    one = latent.decode_numpy(model, np.zeros(3))
    assert one.shape == (1, 28, 28)
    np.testing.assert_allclose(one[0], imgs[0], atol=1e-6)
    cvae = make_model(latent_dim=3, conditional=True)
    z = np.zeros((2, 3))
    d3 = latent.decode_numpy(cvae, z, y=3)
    assert not np.allclose(d3, latent.decode_numpy(cvae, z, y=5))
    np.testing.assert_allclose(latent.decode_numpy(cvae, z), latent.decode_numpy(cvae, z, y=0), atol=1e-6)
    np.testing.assert_allclose(latent.decode_numpy(cvae, z, y=[3, 5])[0], d3[0], atol=1e-6)


def test_traversal():
    z = np.array([0.5, -1.0, 2.0])
    vals = [-2.0, 0.0, 2.0, 4.0]
    codes = latent.traversal(z, 1, vals)
    assert codes.shape == (4, 3)
    np.testing.assert_array_equal(codes[:, 1], vals)
    np.testing.assert_array_equal(codes[:, 0], 0.5)
    np.testing.assert_array_equal(codes[:, 2], 2.0)
    np.testing.assert_array_equal(z, [0.5, -1.0, 2.0])  # the input is not modified


def test_grid_codes():
    z = np.array([9.0, 9.0, 7.0])
    codes, vals = latent.grid_codes(z, (0, 2), n=5, span=2.0)
    assert codes.shape == (25, 3)
    np.testing.assert_allclose(vals, [-2, -1, 0, 1, 2])
    np.testing.assert_array_equal(codes[:, 1], 9.0)  # the other dimension stays fixed
    np.testing.assert_allclose(codes[0], [-2, 9, 2])  # top-left: x = -span, y = +span
    np.testing.assert_allclose(codes[4], [2, 9, 2])  # top-right
    np.testing.assert_allclose(codes[20], [-2, 9, -2])  # bottom-left
    np.testing.assert_allclose(codes[24], [2, 9, -2])  # bottom-right
    grid = codes.reshape(5, 5, 3)
    assert (np.diff(grid[:, :, 0], axis=1) > 0).all()  # columns: x increases to the right
    assert (np.diff(grid[:, :, 2], axis=0) < 0).all()  # rows: y decreases downwards


def test_tile():
    images = np.stack([np.full((28, 28), i / 10, np.float32) for i in range(5)])
    mosaic = latent.tile(images, cols=3, pad=1, pad_value=1.0)
    assert mosaic.shape == (2 * 29 - 1, 3 * 29 - 1)
    np.testing.assert_array_equal(mosaic[:28, :28], images[0])
    np.testing.assert_array_equal(mosaic[:28, 29:57], images[1])
    np.testing.assert_array_equal(mosaic[29:57, 29:57], images[4])
    np.testing.assert_array_equal(mosaic[28, :], 1.0)  # padding row
    np.testing.assert_array_equal(mosaic[:, 28], 1.0)  # padding column
    np.testing.assert_array_equal(mosaic[29:, 58:], 1.0)  # the empty sixth cell
    assert latent.tile(images[:2], cols=2, pad=0).shape == (28, 56)
