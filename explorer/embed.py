"""2-D projections of latent codes (PCA, UMAP, t-SNE), cached on disk.

UMAP is imported lazily (its import and first fit JIT-compile for tens of seconds); set
NUMBA_CACHE_DIR to a writable folder so the compiled code is reused across processes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .data import cache_dir, write_cache_atomic

METHODS = ("pca", "umap", "tsne")


class Projection:
    """A fitted 2-D projection; ``transform`` places new codes (PCA and UMAP only)."""

    def __init__(self, method: str, coords: np.ndarray, reducer=None) -> None:
        self.method = method
        self.coords = coords
        self._reducer = reducer

    @property
    def can_transform(self) -> bool:
        return self._reducer is not None and hasattr(self._reducer, "transform")

    def transform(self, codes: np.ndarray) -> np.ndarray:
        """New codes (M, z) -> (M, 2) in the same map; ValueError when the method cannot place them."""
        if not self.can_transform:
            raise ValueError(f"{self.method} cannot place new points; use PCA or UMAP")
        return np.asarray(self._reducer.transform(np.asarray(codes, dtype=np.float32)), dtype=np.float32)


def ensure_numba_cache() -> None:
    """Point numba's JIT cache at a writable folder unless the user chose one."""
    if not os.environ.get("NUMBA_CACHE_DIR"):
        d = cache_dir() / "numba"
        d.mkdir(parents=True, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = str(d)


def fit_projection(codes: np.ndarray, method: str = "pca", seed: int = 0) -> Projection:
    """Codes (N, z) -> Projection with coords (N, 2) float32."""
    codes = np.asarray(codes, dtype=np.float32)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if codes.shape[1] == 2 and method == "pca":
        return Projection("identity", codes.copy(), _Identity())
    if method == "pca":
        from sklearn.decomposition import PCA

        reducer = PCA(n_components=2, random_state=seed).fit(codes)
        return Projection(method, reducer.transform(codes).astype(np.float32), reducer)
    if method == "umap":
        ensure_numba_cache()
        import umap  # lazy: slow import, JIT compile

        reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=15, min_dist=0.1)
        return Projection(method, reducer.fit_transform(codes).astype(np.float32), reducer)
    from sklearn.manifold import TSNE

    coords = TSNE(n_components=2, random_state=seed, init="pca", perplexity=30).fit_transform(codes)
    return Projection(method, coords.astype(np.float32))


class _Identity:
    def transform(self, codes):
        return np.asarray(codes)[:, :2]


def cache_path(key: str, method: str, folder: Path | None = None) -> Path:
    h = hashlib.sha1(key.encode()).hexdigest()[:20]
    return (folder or cache_dir() / "maps") / f"{method}-{h}.npy"


def cached_coords(codes: np.ndarray, method: str, key: str, *, seed: int = 0,
                  folder: Path | None = None) -> tuple[np.ndarray, bool]:
    """Projected coords (N, 2), from the disk cache when present -> (coords, from_cache).

    ``key`` must identify the codes (checkpoint fingerprint + data source). A cache file that is
    unreadable or of the wrong shape is recomputed and rewritten atomically.
    """
    path = cache_path(f"{key}|{seed}|{len(codes)}", method, folder)
    if path.is_file():
        try:
            coords = np.load(path, allow_pickle=False)
            if coords.shape == (len(codes), 2) and np.isfinite(coords).all():
                return coords.astype(np.float32), True
        except (OSError, ValueError, EOFError):
            pass  # corrupt cache: recompute below
    coords = fit_projection(codes, method, seed).coords
    write_cache_atomic(path, lambda f: np.save(f, coords))
    return coords, False


# for a worker process (the app runs projections off its own process)


def worker_init() -> None:
    """Initializer of a projection worker process: one thread, numba's cache in a writable folder."""
    import torch

    torch.set_num_threads(1)
    ensure_numba_cache()


def project_to_cache(codes: np.ndarray, method: str, key: str) -> np.ndarray:
    """``cached_coords(...)[0]``, as a picklable top-level function for a process pool."""
    return cached_coords(codes, method, key)[0]
