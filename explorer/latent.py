"""Walking the latent space: interpolation, traversals, grids, per-dimension KL, codes of images."""

from __future__ import annotations

import numpy as np
import torch

from .model import VAE, gaussian_kl

# helpers


def _as_tensor(z) -> torch.Tensor:
    return torch.as_tensor(np.asarray(z, dtype=np.float32))


# interpolation


def interpolate(z0, z1, steps: int, mode: str = "slerp") -> np.ndarray:
    """Points from z0 to z1 (both (z,)), endpoints included -> (steps, z); mode 'linear' or 'slerp'.

    Spherical interpolation (Shoemake 1985; White 2016 for generative models) follows the great
    circle between the two directions and interpolates the norms linearly, so intermediate points keep
    the typical norm of Gaussian samples instead of cutting through the low-density centre.
    """
    if steps < 2:
        raise ValueError("steps must be at least 2")
    if mode not in ("linear", "slerp"):
        raise ValueError(f"mode must be 'linear' or 'slerp', got {mode!r}")
    a = np.asarray(z0, dtype=np.float64)
    b = np.asarray(z1, dtype=np.float64)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    if mode == "linear":
        return ((1 - t) * a + t * b).astype(np.float32)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-8 or nb < 1e-8:
        return ((1 - t) * a + t * b).astype(np.float32)
    ua, ub = a / na, b / nb
    omega = np.arccos(np.clip(ua @ ub, -1.0, 1.0))
    if omega < 1e-6:
        direction = (1 - t) * ua + t * ub
    else:
        direction = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
    return (direction * ((1 - t) * na + t * nb)).astype(np.float32)


# decoding helpers


@torch.no_grad()
def decode_numpy(model: VAE, z, y=None) -> np.ndarray:
    """Latent codes (B, z) (or one (z,)) -> images (B, 28, 28) float32 in [0, 1]."""
    zt = _as_tensor(z)
    if zt.ndim == 1:
        zt = zt[None]
    yt = None
    if model.config.conditional:
        yt = torch.as_tensor(np.broadcast_to(np.asarray(0 if y is None else y), (len(zt),)).copy()).long()
    return model.decode(zt, yt)[:, 0].numpy()


@torch.no_grad()
def encode_images(model: VAE, images: np.ndarray, labels: np.ndarray | None = None,
                  batch_size: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """uint8 or [0,1] images (N, 28, 28) -> encoder means (N, z) and log-variances (N, z).

    Embeddings use the mean, never a sample, so plots do not jitter.
    """
    x = np.asarray(images)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    mus, lvs = [], []
    for i in range(0, len(x), batch_size):
        yb = None
        if model.config.conditional:
            yb = torch.as_tensor(np.asarray(labels)[i:i + batch_size]).long()
        mu, lv = model.encode(torch.from_numpy(x[i:i + batch_size]), yb)
        mus.append(mu.numpy())
        lvs.append(lv.numpy())
    return np.concatenate(mus), np.concatenate(lvs)


def kl_per_dimension(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Average KL(q(z_d|x) || N(0,1)) over images, per dimension: (N, z), (N, z) -> (z,) nats.

    Summed over dimensions this is the model's average KL term.
    """
    return gaussian_kl(torch.as_tensor(mu), torch.as_tensor(logvar)).mean(0).numpy()


def active_units(mu: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Burda et al.'s activity: Var_x(E_q[z_d]) > threshold -> bool (z,)."""
    return np.asarray(mu).var(0) > threshold


def traversal(z, dim: int, values) -> np.ndarray:
    """Copies of z (z,) with dimension ``dim`` set to each of ``values`` -> (len(values), z)."""
    base = np.asarray(z, dtype=np.float32)
    out = np.repeat(base[None], len(values), axis=0)
    out[:, dim] = np.asarray(values, dtype=np.float32)
    return out


def grid_codes(z, dims: tuple[int, int], n: int = 15, span: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """An n x n grid over two dimensions of z (others fixed) -> (codes (n*n, z) row-major, axis values (n,)).

    Rows go from +span (top) to -span (bottom) along dims[1]; columns from -span to +span along dims[0].
    """
    base = np.asarray(z, dtype=np.float32)
    vals = np.linspace(-span, span, n, dtype=np.float32)
    codes = np.repeat(base[None], n * n, axis=0)
    for r, yv in enumerate(vals[::-1]):
        for c, xv in enumerate(vals):
            codes[r * n + c, dims[0]] = xv
            codes[r * n + c, dims[1]] = yv
    return codes, vals


def tile(images: np.ndarray, cols: int, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Images (N, H, W) -> one mosaic (rows*(H+pad)-pad, cols*(W+pad)-pad), row-major."""
    n, h, w = images.shape
    rows = -(-n // cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), pad_value, dtype=np.float32)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = im
    return out
