"""Small typed configs for the model and for training; the CLI and the UI only fill them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

# helpers

LIKELIHOODS = ("bernoulli", "gaussian")
DATASETS = ("mnist", "fashion")


class ConfigError(ValueError):
    """A hyperparameter outside its allowed range; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def _check_range(name: str, value, lo, hi, kind=(int,)) -> None:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(name, f"must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(name, f"must be finite, got {value!r}")
    if not (lo <= value <= hi):
        raise ConfigError(name, f"must be between {lo} and {hi}, got {value!r}")


# classes


@dataclass(frozen=True)
class ModelConfig:
    """What a VAE is: enough to rebuild it from a checkpoint."""

    latent_dim: int = 16  # size of z, 2..64
    hidden: tuple[int, ...] = (512, 256)  # encoder layer widths; the decoder mirrors them
    likelihood: str = "bernoulli"  # p(x|z): "bernoulli" (binary pixels) or "gaussian" N(f(z), sigma^2 I)
    sigma: float = 0.1  # std of the Gaussian decoder (ignored for bernoulli)
    beta: float = 1.0  # weight on the KL term (beta-VAE); 1 is the true ELBO
    conditional: bool = False  # feed the one-hot label to encoder and decoder (CVAE)
    num_classes: int = 10  # label count when conditional
    image_size: int = 28  # images are image_size x image_size, one channel

    @property
    def input_dim(self) -> int:
        return self.image_size * self.image_size

    def validate(self) -> "ModelConfig":
        _check_range("latent_dim", self.latent_dim, 2, 64)
        if not isinstance(self.hidden, (tuple, list)) or not 1 <= len(self.hidden) <= 4:
            raise ConfigError("hidden", f"must be 1 to 4 layer widths, got {self.hidden!r}")
        for width in self.hidden:
            _check_range("hidden", width, 8, 2048)
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError("likelihood", f"must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        _check_range("sigma", self.sigma, 0.01, 1.0, (int, float))
        _check_range("beta", self.beta, 0.0, 100.0, (int, float))
        if not isinstance(self.conditional, bool):
            raise ConfigError("conditional", f"must be true or false, got {self.conditional!r}")
        _check_range("num_classes", self.num_classes, 2, 100)
        _check_range("image_size", self.image_size, 8, 64)
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Build from a dict (e.g. checkpoint metadata); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown model config field")
        d = dict(d)
        if "hidden" in d and isinstance(d["hidden"], list):
            d["hidden"] = tuple(d["hidden"])
        return cls(**d).validate()


@dataclass(frozen=True)
class TrainConfig:
    """How to train: data, optimisation, and reproducibility."""

    dataset: str = "mnist"  # "mnist" or "fashion"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    augment: bool = True  # small random affine transforms (the offline training set is small)
    augment_strength: float = 1.0  # scales the transforms: 1 = up to 10 deg, 10% scale, 2 px shift, 0.1 shear
    warmup_epochs: int = 5  # linear KL warm-up from 0 to beta over these epochs (0: none)
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda", ...
    limit: int | None = None  # train on the first `limit` images only (quick runs, tests)
    eval_k: int = 100  # importance samples for the final log p(x) estimate
    eval_limit: int | None = None  # evaluate on the first `eval_limit` test images only
    extra: dict = field(default_factory=dict)  # free-form notes carried into checkpoint metadata

    def validate(self) -> "TrainConfig":
        if self.dataset not in DATASETS:
            raise ConfigError("dataset", f"must be one of {DATASETS}, got {self.dataset!r}")
        _check_range("epochs", self.epochs, 1, 1000)
        _check_range("batch_size", self.batch_size, 1, 4096)
        _check_range("lr", self.lr, 1e-6, 1.0, (int, float))
        _check_range("warmup_epochs", self.warmup_epochs, 0, 1000)
        _check_range("augment_strength", self.augment_strength, 0.0, 3.0, (int, float))
        _check_range("seed", self.seed, 0, 2**31 - 1)
        _check_range("eval_k", self.eval_k, 1, 100_000)
        if self.limit is not None:
            _check_range("limit", self.limit, 1, 10_000_000)
        if self.eval_limit is not None:
            _check_range("eval_limit", self.eval_limit, 1, 10_000_000)
        return self

    def to_dict(self) -> dict:
        return asdict(self)
