"""Training throughput of ``explorer.train.fit()`` against a textbook PyTorch loop, same run, same data.

Both train the same model config (the default ``ModelConfig``) on the same images with the same
optimizer (Adam, lr 1e-3, batch 128) and the same loss (``explorer.model.elbo_terms``), with dynamic
binarization and no augmentation. The textbook loop is the pytorch/examples one: a ``Dataset`` that
turns each uint8 image into a PIL image and applies ``transforms.ToTensor()`` (as torchvision's MNIST
does), a ``DataLoader(batch_size=128, shuffle=True)``, and ``torch.bernoulli`` per batch. ``fit()``
keeps the uint8 set in one tensor and builds each batch with batched tensor ops. ``fit()`` with its
random-affine augmentation on is reported too (that costs extra work, so it is not in the ratio).

    .venv/bin/python bench/train_speed.py [--epochs 3] [--repeats 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from explorer.config import ModelConfig, TrainConfig  # noqa: E402
from explorer.data import load_dataset  # noqa: E402
from explorer.model import VAE, elbo_terms  # noqa: E402
from explorer.train import fit  # noqa: E402

BATCH, LR = 128, 1e-3

# the textbook loop


class PILDigits(torch.utils.data.Dataset):
    """uint8 digits served one at a time as PIL images through a transform, like torchvision's MNIST."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        from torchvision import transforms

        self.data = torch.as_tensor(images)
        self.targets = torch.as_tensor(labels)
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.data[i].numpy(), mode="L")
        return self.transform(img), int(self.targets[i])


def textbook_train(model: VAE, images: np.ndarray, labels: np.ndarray, epochs: int, seed: int = 0) -> tuple[float, float]:
    """pytorch/examples-style training -> (wall seconds, CPU seconds of this process) for all epochs."""
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(PILDigits(images, labels), batch_size=BATCH, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        for x, _y in loader:
            x = torch.bernoulli(x.view(len(x), -1))
            rec, kl = elbo_terms(model, x)
            loss = (rec + kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - t0, time.process_time() - c0


def fit_train(model: VAE, images: np.ndarray, labels: np.ndarray, epochs: int, augment: bool,
              seed: int = 0) -> tuple[float, float]:
    """explorer.train.fit() -> (wall seconds, CPU seconds of this process) for the whole call."""
    cfg = TrainConfig(epochs=epochs, batch_size=BATCH, lr=LR, augment=augment, seed=seed)
    t0, c0 = time.perf_counter(), time.process_time()
    fit(model, images, labels, cfg)
    return time.perf_counter() - t0, time.process_time() - c0


# the benchmark


def fresh_model(config: ModelConfig) -> VAE:
    torch.manual_seed(0)
    return VAE(config)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/train_speed.py", description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="epochs per timed run (default 3)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each variant; the median is reported")
    ap.add_argument("--limit", type=int, default=5000, help="train on the first N images (default 5000)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads for both (default 1; 0: torch's default). On a CPU shared with "
                         "other jobs, 2 OpenMP threads can be many times slower than 1")
    a = ap.parse_args(argv)
    if a.epochs < 1 or a.repeats < 1 or a.limit < BATCH:
        ap.error("--epochs and --repeats must be positive, --limit at least one batch")
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    ds = load_dataset("mnist", "train", allow_download=False)
    images, labels = ds.images[:a.limit], ds.labels[:a.limit]
    config = ModelConfig()
    n = len(images)
    print(f"data: {ds.source}")
    print(f"model: latent {config.latent_dim}, hidden {list(config.hidden)}, {config.likelihood}; "
          f"{n} images, batch {BATCH}, Adam lr {LR}, {a.epochs} epochs x {a.repeats} repeats, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s)")

    variants = {
        "textbook (ToTensor + DataLoader)": lambda m, e: textbook_train(m, images, labels, e),
        "fit(), augment off": lambda m, e: fit_train(m, images, labels, e, augment=False),
        "fit(), augment on": lambda m, e: fit_train(m, images, labels, e, augment=True),
    }
    # warm-up: one short epoch of each (allocator, kernels, lazy imports)
    warm = images[:1024], labels[:1024]
    textbook_train(fresh_model(config), *warm, 1)
    fit_train(fresh_model(config), *warm, 1, augment=True)

    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(a.repeats):
        for name, run in variants.items():  # interleaved, so load changes hit every variant alike
            w, c = run(fresh_model(config), a.epochs)
            wall[name].append(a.epochs * n / w)
            cpu[name].append(a.epochs * n / max(c, 1e-9))

    med = {name: statistics.median(r) for name, r in wall.items()}
    med_cpu = {name: statistics.median(r) for name, r in cpu.items()}
    base, base_cpu = med["textbook (ToTensor + DataLoader)"], med_cpu["textbook (ToTensor + DataLoader)"]
    print()
    print("images/s: per wall-clock second (median, min..max over repeats), and per CPU-second of this")
    print("process (robust when other jobs share the CPU)")
    print(f"{'variant':<34} {'images/s':>9} {'min..max':>13} {'vs textbook':>11} {'img/CPU-s':>10} {'vs textbook':>11}")
    for name, r in wall.items():
        print(f"{name:<34} {med[name]:>9.0f} {f'{min(r):.0f}..{max(r):.0f}':>13} {med[name] / base:>10.2f}x"
              f" {med_cpu[name]:>10.0f} {med_cpu[name] / base_cpu:>10.2f}x")
    print()
    print(f"ratio fit/textbook (augment off, apples to apples): {med['fit(), augment off'] / base:.2f}x wall-clock, "
          f"{med_cpu['fit(), augment off'] / base_cpu:.2f}x CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
