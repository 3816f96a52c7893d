"""How likely is an image under the model: scores for sets of images, out-of-distribution sets,
and Monte Carlo versus importance sampling for one image.

The estimators themselves live in ``explorer.evaluate`` (``iwae_log_px``, ``running_log_px``);
this module only feeds them images and summarises what comes back. All numbers are nats.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .evaluate import iwae_log_px, model_inputs, running_log_px
from .model import VAE, gaussian_kl

Progress = Callable[[int, int], None]  # (done, total)
PROPOSALS = ("prior", "encoder")

# scoring images


def log_px_images(model: VAE, images: np.ndarray, labels: np.ndarray | None = None, *, k: int = 200,
                  seed: int = 0, progress: Progress | None = None) -> np.ndarray:
    """log p(x) of uint8 images (N, 28, 28) by importance sampling with k samples -> (N,) nats.

    Inputs are prepared exactly as ``explorer.evaluate.evaluate`` does (seeded binarization for a
    Bernoulli decoder), so -mean of this equals its ``test_nll`` for the same images, k and seed.
    A conditional model scores log p(x | y) and needs the labels.
    """
    x = model_inputs(model, images, seed)
    y = None
    if model.config.conditional:
        if labels is None:
            raise ValueError("a conditional model needs labels; use log_px_marginal to sum them out")
        y = torch.as_tensor(np.asarray(labels)).long().reshape(-1)
    return iwae_log_px(model, x, y, k=k, seed=seed, progress=progress)


def log_px_marginal(model: VAE, images: np.ndarray, *, k: int = 200, seed: int = 0,
                    progress: Progress | None = None) -> np.ndarray:
    """log p(x) = log (1/C) sum_y p(x | y) for uint8 images (N, 28, 28) -> (N,) nats.

    For an unconditional model this is ``log_px_images``; a conditional one is scored once per class
    (C times the cost) with a uniform prior over the C classes, so no label is needed.
    """
    if not model.config.conditional:
        return log_px_images(model, images, k=k, seed=seed, progress=progress)
    c, n = model.config.num_classes, len(images)
    per_class = []
    for y in range(c):
        per_class.append(log_px_images(model, images, np.full(n, y), k=k, seed=seed))
        if progress:
            progress((y + 1) * n, c * n)
    return (torch.logsumexp(torch.as_tensor(np.stack(per_class)), 0) - math.log(c)).numpy()


def percentile_of(scores: np.ndarray, value: float) -> float:
    """Share of ``scores`` at or below ``value``, in percent (0..100)."""
    s = np.asarray(scores)
    return float(100.0 * np.mean(s <= value)) if len(s) else float("nan")


# out-of-distribution sets


def rotate90(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> the same images turned a quarter turn counter-clockwise."""
    return np.ascontiguousarray(np.rot90(np.asarray(images), 1, axes=(1, 2)))


def uniform_noise(n: int, seed: int = 0, size: int = 28) -> np.ndarray:
    """n images of independent uniform pixel values -> uint8 (n, size, size)."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def ink_fraction(images: np.ndarray, threshold: int = 128) -> np.ndarray:
    """Share of bright pixels per uint8 image (N, 28, 28) -> (N,) in [0, 1]."""
    return (np.asarray(images) >= threshold).reshape(len(images), -1).mean(1)


def anomaly_sets(test_images: np.ndarray, other_images: np.ndarray | None, *, limit: int = 500,
                 names: tuple[str, str] = ("test digits", "Fashion-MNIST"), seed: int = 0) -> dict[str, np.ndarray]:
    """The four sets of the anomaly view, at most ``limit`` uint8 images each:
    the model's own test images, the same rotated 90 degrees, another data set (if given), and noise."""
    own, other = names
    own_short = own.removeprefix("test ")
    sets = {own: test_images[:limit], f"rotated {own_short} (90°)": rotate90(test_images[:limit])}
    if other_images is not None and len(other_images):
        sets[other] = other_images[:limit]
    sets["uniform noise"] = uniform_noise(min(limit, len(test_images)) or limit, seed)
    return sets


def anomaly_scores(model: VAE, sets: dict[str, np.ndarray], k: int = 50, limit: int = 500, *, seed: int = 0,
                   progress: Progress | None = None) -> dict[str, np.ndarray]:
    """log p(x) (nats, label summed out for a conditional model) of the first ``limit`` images of each set.

    ``sets`` maps a name to uint8 images (N, 28, 28); returns name -> (min(N, limit),) scores.
    """
    total = sum(min(len(v), limit) for v in sets.values())
    done, out = 0, {}
    for name, images in sets.items():
        imgs = np.asarray(images)[:limit]
        out[name] = log_px_marginal(model, imgs, k=k, seed=seed)
        done += len(imgs)
        if progress:
            progress(done, total)
    return out


def summarise(scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """name -> {median, p10, p90, n} of each set's scores (nats)."""
    return {name: {"median": float(np.median(s)), "p10": float(np.percentile(s, 10)),
                   "p90": float(np.percentile(s, 90)), "n": int(len(s))}
            for name, s in scores.items() if len(s)}


def class_medians(scores: np.ndarray, labels: np.ndarray, class_names: list[str]) -> list[tuple[str, float]]:
    """Median score per class, highest first -> [(class name, median nats)]."""
    labels = np.asarray(labels)[:len(scores)]
    rows = [(class_names[c], float(np.median(scores[labels == c]))) for c in range(len(class_names))
            if (labels == c).any()]
    return sorted(rows, key=lambda r: -r[1])


# Monte Carlo versus importance sampling


def input_row(model: VAE, images: np.ndarray, index: int = 0, seed: int = 0) -> torch.Tensor:
    """The model input of image ``index`` when ``images`` (N, 28, 28) uint8 are prepared together
    exactly as ``evaluate`` prepares a test set (same seeded binarization) -> (784,)."""
    return model_inputs(model, images, seed)[index]


def running_estimates(model: VAE, x: torch.Tensor, label: int | None = None, *, n: int = 10_000,
                      repeats: int = 4, seed: int = 0, proposals: tuple[str, ...] = PROPOSALS) -> dict[str, np.ndarray]:
    """Running log p(x) estimates for one model input x (784,) -> proposal -> (repeats, n) nats.

    'prior': log (1/m) sum p(x | z_i), z_i ~ p(z) (plain Monte Carlo); 'encoder': z_i ~ q(z|x),
    each weighted by p(z_i) / q(z_i|x) (importance sampling). Repeat r uses seed + r.
    """
    y = None if not model.config.conditional else int(0 if label is None else label)
    return {p: np.stack([running_log_px(model, x, y, n=n, proposal=p, seed=seed + r) for r in range(repeats)])
            for p in proposals}


def log_spaced(n: int, points: int = 200) -> np.ndarray:
    """About ``points`` distinct sample counts from 1 to n, evenly spaced on a log axis -> int (m,)."""
    return np.unique(np.round(np.logspace(0, math.log10(max(n, 1)), points)).astype(int))


def single_log_px(model: VAE, x: torch.Tensor, label: int | None = None, *, k: int = 1000,
                  seed: int = 0) -> float:
    """IWAE log p(x) of one model input x (784,) with k samples -> nats."""
    y = None if not model.config.conditional else torch.tensor([0 if label is None else int(label)])
    return float(iwae_log_px(model, x.reshape(1, -1), y, k=k, seed=seed)[0])


def posterior_kl(model: VAE, x: torch.Tensor, label: int | None = None) -> float:
    """KL(q(z|x) || p(z)) for one model input x (784,) -> nats; prior sampling needs roughly e^KL draws."""
    y = None if not model.config.conditional else torch.tensor([0 if label is None else int(label)])
    with torch.no_grad():
        mu, logvar = model.encode(x.reshape(1, -1), y)
    return float(gaussian_kl(mu, logvar).sum())
