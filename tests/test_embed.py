"""2-D maps of latent codes: PCA, t-SNE (UMAP behind the slow flag), and their disk cache."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from explorer import embed


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """OpenMP/BLAS with 2 threads on a CPU shared with other jobs is many times slower than 1 (t-SNE: ~8x)."""
    with threadpool_limits(1):
        yield


def blobs(n: int = 200, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two well-separated Gaussian clusters in ``dim`` dimensions -> codes (n, dim), cluster ids (n,)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n) % 2
    centres = np.zeros((2, dim))
    centres[1, 0] = 12.0
    return (centres[ids] + rng.standard_normal((n, dim))).astype(np.float32), ids


def nearest_neighbour_agreement(coords: np.ndarray, ids: np.ndarray) -> float:
    d = ((coords[:, None] - coords[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((ids[d.argmin(1)] == ids).mean())


# PCA


def test_pca_coords():
    codes, ids = blobs()
    proj = embed.fit_projection(codes, "pca")
    assert proj.method == "pca"
    assert proj.coords.shape == (200, 2) and proj.coords.dtype == np.float32
    var = proj.coords.var(0)
    assert var[0] >= var[1]  # components come in order of variance
    # the first component is the direction separating the clusters
    assert abs(proj.coords[ids == 0, 0].mean() - proj.coords[ids == 1, 0].mean()) > 10
    np.testing.assert_allclose(proj.coords.mean(0), 0, atol=1e-4)  # centred
    assert proj.can_transform
    np.testing.assert_allclose(proj.transform(codes[:5]), proj.coords[:5], atol=1e-4)


def test_pca_of_a_2d_latent_is_the_identity():
    codes = np.random.default_rng(1).standard_normal((50, 2)).astype(np.float32) * 3 + 1
    proj = embed.fit_projection(codes, "pca")
    np.testing.assert_array_equal(proj.coords, codes)
    assert proj.coords is not codes  # a copy, not an alias
    new = np.array([[0.5, -0.5]], np.float32)
    np.testing.assert_array_equal(proj.transform(new), new)


def test_unknown_method():
    with pytest.raises(ValueError, match="method"):
        embed.fit_projection(np.zeros((10, 3)), "isomap")


# t-SNE


def test_tsne_on_200_points():
    codes, ids = blobs(200)
    proj = embed.fit_projection(codes, "tsne", seed=0)
    assert proj.coords.shape == (200, 2) and np.isfinite(proj.coords).all()
    assert nearest_neighbour_agreement(proj.coords, ids) > 0.95  # the clusters stay apart
    assert not proj.can_transform
    with pytest.raises(ValueError, match="cannot place new points"):
        proj.transform(codes[:3])
    again = embed.fit_projection(codes, "tsne", seed=0)
    np.testing.assert_allclose(again.coords, proj.coords, atol=1e-4)  # seeded


# the disk cache


def test_cached_coords_round_trip(tmp_path):
    codes, _ = blobs(60)
    coords, from_cache = embed.cached_coords(codes, "pca", "ckpt-abc|mnist test", folder=tmp_path)
    assert not from_cache and coords.shape == (60, 2)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy" and files[0].name.startswith("pca-")
    again, from_cache = embed.cached_coords(codes, "pca", "ckpt-abc|mnist test", folder=tmp_path)
    assert from_cache
    np.testing.assert_array_equal(again, coords)
    # another key (another checkpoint) or another seed is another entry
    _, hit = embed.cached_coords(codes, "pca", "ckpt-xyz|mnist test", folder=tmp_path)
    assert not hit
    _, hit = embed.cached_coords(codes, "pca", "ckpt-abc|mnist test", seed=1, folder=tmp_path)
    assert not hit
    assert len(list(tmp_path.glob("*.npy"))) == 3
    assert not list(tmp_path.glob("*.tmp"))


def test_cached_coords_ignores_a_stale_cache_of_another_size(tmp_path):
    codes, _ = blobs(60)
    embed.cached_coords(codes, "pca", "k", folder=tmp_path)
    coords, from_cache = embed.cached_coords(codes[:40], "pca", "k", folder=tmp_path)
    assert not from_cache and coords.shape == (40, 2)


@pytest.mark.parametrize("content", [b"\x93NUMPY garbage \x00\xff" * 5, b"", b"not numpy at all"])
def test_corrupt_cache_is_recomputed(tmp_path, content):
    codes, _ = blobs(60)
    fresh, _ = embed.cached_coords(codes, "pca", "k", folder=tmp_path)
    (path,) = tmp_path.glob("*.npy")
    path.write_bytes(content)
    coords, from_cache = embed.cached_coords(codes, "pca", "k", folder=tmp_path)
    assert not from_cache
    np.testing.assert_allclose(coords, fresh, atol=1e-6)
    np.testing.assert_allclose(np.load(path), fresh, atol=1e-6)  # rewritten, valid again
    assert embed.cached_coords(codes, "pca", "k", folder=tmp_path)[1]


def test_wrong_shape_or_nan_cache_is_recomputed(tmp_path):
    codes, _ = blobs(60)
    fresh, _ = embed.cached_coords(codes, "pca", "k", folder=tmp_path)
    (path,) = tmp_path.glob("*.npy")
    np.save(path, np.zeros((60, 3), np.float32))
    coords, hit = embed.cached_coords(codes, "pca", "k", folder=tmp_path)
    assert not hit
    np.testing.assert_allclose(coords, fresh, atol=1e-6)
    bad = fresh.copy()
    bad[0, 0] = np.nan
    np.save(path, bad)
    coords, hit = embed.cached_coords(codes, "pca", "k", folder=tmp_path)
    assert not hit and np.isfinite(coords).all()


def test_cache_in_a_read_only_folder_still_returns_coords(tmp_path):
    codes, _ = blobs(30)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        coords, hit = embed.cached_coords(codes, "pca", "k", folder=ro)
        assert not hit and coords.shape == (30, 2)
    finally:
        ro.chmod(0o700)


# UMAP: its import and first fit JIT-compile for tens of seconds


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:n_jobs value")
def test_umap(tmp_path, monkeypatch):
    pytest.importorskip("umap")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    import numba

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    codes, ids = blobs(300)
    try:
        proj = embed.fit_projection(codes, "umap", seed=0)
    finally:
        numba.set_num_threads(threads)
    assert proj.coords.shape == (300, 2) and np.isfinite(proj.coords).all()
    assert nearest_neighbour_agreement(proj.coords, ids) > 0.95
    assert proj.can_transform and proj.transform(codes[:4]).shape == (4, 2)
