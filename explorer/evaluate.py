"""Test ELBO and the importance-weighted estimate of log p(x) (Burda et al., 2016).

log p(x) >= E_q[log (1/k) sum_i p(x, z_i) / q(z_i|x)] >= ELBO, tight as k -> infinity; the
Bernoulli models are scored on a seeded binarization of the test set, so numbers are repeatable.
``python -m explorer.evaluate CHECKPOINT --k 1000`` prints a table and can write JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Callable

import numpy as np
import torch

from .model import VAE, diag_normal_log_prob, elbo_terms, standard_normal_log_prob

Progress = Callable[[int, int], None]  # (done, total)

# helpers


def _device_of(model: VAE) -> torch.device:
    return next(model.parameters()).device


def model_inputs(model: VAE, images: np.ndarray | torch.Tensor, seed: int = 0) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 784): a seeded binarization for Bernoulli models, x/255 otherwise."""
    x = torch.as_tensor(np.asarray(images)).reshape(len(images), -1).float() / 255.0
    if model.config.likelihood == "bernoulli":
        g = torch.Generator().manual_seed(seed)
        x = torch.bernoulli(x, generator=g)
    return x


def _labels(model: VAE, labels, n: int) -> torch.Tensor | None:
    if not model.config.conditional:
        return None
    if labels is None:
        raise ValueError("a conditional model needs the labels")
    return torch.as_tensor(np.asarray(labels)).long().reshape(-1)[:n]


# estimators


@torch.no_grad()
def elbo_per_image(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, *, seed: int = 0,
                   batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Reconstruction term and KL per image, one seeded z sample each: (N,), (N,) in nats."""
    dev = _device_of(model)
    g = torch.Generator(device=dev).manual_seed(seed)
    recs, kls = [], []
    for i in range(0, len(x), batch_size):
        yb = None if y is None else y[i:i + batch_size].to(dev)
        rec, kl = elbo_terms(model, x[i:i + batch_size].to(dev), yb, generator=g)
        recs.append(rec.cpu())
        kls.append(kl.cpu())
    return torch.cat(recs).numpy(), torch.cat(kls).numpy()


@torch.no_grad()
def log_weights(model: VAE, x: torch.Tensor, y: torch.Tensor | None, k: int,
                generator: torch.Generator | None = None, proposal: str = "encoder") -> torch.Tensor:
    """log p(x, z_i) - log r(z_i) for z_i ~ r, r the encoder q(z|x) or the prior: (B, 784) -> (k, B)."""
    mu, logvar = model.encode(x, y)
    eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device)
    if proposal == "prior":
        z = eps
        log_r = standard_normal_log_prob(z)
    else:
        z = mu + (0.5 * logvar).exp() * eps
        log_r = diag_normal_log_prob(z, mu, logvar)
    yk = None if y is None else y.repeat(k)
    logits = model.decode_logits(z.reshape(k * len(x), -1), yk).reshape(k, len(x), -1)
    return model.log_px_given_z(x, logits) + standard_normal_log_prob(z) - log_r


@torch.no_grad()
def iwae_log_px(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, *, k: int = 1000, seed: int = 0,
                batch_size: int = 100, max_elements: int = 25_000_000, proposal: str = "encoder",
                progress: Progress | None = None) -> np.ndarray:
    """Importance-weighted log p(x) with k samples per image: (N, 784) -> (N,) nats (log-mean-exp of weights)."""
    dev = _device_of(model)
    g = torch.Generator(device=dev).manual_seed(seed)
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev)
        yb = None if y is None else y[i:i + batch_size].to(dev)
        chunk = max(1, min(k, max_elements // (len(xb) * x.shape[1])))
        acc = torch.full((len(xb),), -math.inf, device=dev)
        for j in range(0, k, chunk):
            lw = log_weights(model, xb, yb, min(chunk, k - j), g, proposal)
            acc = torch.logaddexp(acc, torch.logsumexp(lw, 0))
        out.append((acc - math.log(k)).cpu())
        if progress:
            progress(min(i + batch_size, len(x)), len(x))
    return torch.cat(out).numpy()


@torch.no_grad()
def running_log_px(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, *, n: int = 10_000,
                   proposal: str = "encoder", seed: int = 0) -> np.ndarray:
    """Running estimate log (1/m) sum_{i<=m} w_i for m = 1..n, one image (784,) -> (n,) nats."""
    dev = _device_of(model)
    g = torch.Generator(device=dev).manual_seed(seed)
    yb = None if y is None else torch.as_tensor(y).reshape(1).to(dev)
    lw = torch.cat([log_weights(model, x.reshape(1, -1).to(dev), yb, min(5000, n - j), g, proposal)[:, 0]
                    for j in range(0, n, 5000)])
    cum = torch.logcumsumexp(lw, 0)
    return (cum - torch.log(torch.arange(1, n + 1, device=dev, dtype=cum.dtype))).cpu().numpy()


def evaluate(model: VAE, images: np.ndarray, labels: np.ndarray | None = None, *, k: int = 1000, seed: int = 0,
             limit: int | None = None, progress: Progress | None = None) -> dict:
    """Test metrics in nats per image (positive numbers, lower is better)."""
    if limit:
        images = images[:limit]
        labels = None if labels is None else labels[:limit]
    model.eval()
    x = model_inputs(model, images, seed)
    y = _labels(model, labels, len(x))
    t0 = time.perf_counter()
    rec, kl = elbo_per_image(model, x, y, seed=seed)
    log_px = iwae_log_px(model, x, y, k=k, seed=seed, progress=progress)
    return {
        "test_elbo": float(np.mean(rec + kl)),  # -ELBO, nats
        "test_rec": float(np.mean(rec)),
        "test_kl": float(np.mean(kl)),
        "test_nll": float(-np.mean(log_px)),  # -log p(x) by importance sampling, nats
        "k": int(k),
        "n": int(len(x)),
        "binarization_seed": int(seed),
        "likelihood": model.config.likelihood,
        "seconds": round(time.perf_counter() - t0, 2),
    }


# CLI


def main(argv: list[str] | None = None) -> int:
    from . import checkpoints
    from .data import DataError, load_dataset

    p = argparse.ArgumentParser(prog="python -m explorer.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="path to a .safetensors checkpoint")
    p.add_argument("--k", type=int, default=1000, help="importance samples per image (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the test-set binarization and the samples")
    p.add_argument("--limit", type=int, default=None, help="evaluate on the first N test images only")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files (default $VAE_EXPLORER_DATA)")
    p.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    p.add_argument("--write-metadata", action="store_true",
                   help="store the metrics in the checkpoint's metadata (rewrites it atomically)")
    a = p.parse_args(argv)
    if a.k < 1 or (a.limit is not None and a.limit < 1):
        p.error("--k and --limit must be positive")
    try:
        model, meta = checkpoints.load(a.checkpoint)
        ds = load_dataset(meta.get("train", {}).get("dataset", "mnist"), "test", a.data_dir)
    except (checkpoints.CheckpointError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for n in ds.notices:
        print(f"note: skipped data source: {n}", file=sys.stderr)
    print(f"data: {ds.source}", file=sys.stderr)
    from tqdm import tqdm

    bar = tqdm(total=min(len(ds), a.limit or len(ds)), desc=f"log p(x), k={a.k}", unit="img", file=sys.stderr)
    m = evaluate(model, ds.images, ds.labels, k=a.k, seed=a.seed, limit=a.limit,
                 progress=lambda done, total: bar.update(done - bar.n))
    bar.close()
    m["data_source"] = ds.source
    print(f"\n{meta['name']}  ({meta['config']['likelihood']}, latent {meta['config']['latent_dim']}"
          f"{', conditional' if meta['config']['conditional'] else ''})")
    rows = [("test -ELBO", m["test_elbo"]), ("  reconstruction", m["test_rec"]), ("  KL", m["test_kl"]),
            (f"test NLL (k={m['k']})", m["test_nll"])]
    for name, v in rows:
        print(f"  {name:<22} {v:10.2f} nats")
    print(f"  on {m['n']} images, binarization seed {m['binarization_seed']}, {m['seconds']} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(m, f, indent=2)
    if a.write_metadata:
        meta = {k: v for k, v in meta.items() if k not in ("name", "path", "config")}
        meta["metrics"] = m
        checkpoints.save(model, a.checkpoint, meta=meta, overwrite=True)
        print(f"metrics written into {a.checkpoint}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
