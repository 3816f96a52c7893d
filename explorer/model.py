"""The VAE: MLP encoder q(z|x) and decoder p(x|z), optionally conditioned on the label.

Kingma & Welling, "Auto-Encoding Variational Bayes" (2014). The decoder is a plain stack of
Linear + ReLU layers ending in one Linear to pixel logits, so a browser can run it too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

LOG_2PI = math.log(2 * math.pi)

# helpers


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per dimension, (B, z) -> (B, z).

    Closed form from Appendix B of Kingma & Welling: -1/2 (1 + log s^2 - mu^2 - s^2).
    """
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dim, (..., z) -> (...)."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


def diag_normal_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dim, (..., z) -> (...)."""
    return -0.5 * ((z - mu).pow(2) / logvar.exp() + logvar + LOG_2PI).sum(-1)


# classes


class VAE(nn.Module):
    """encode -> (mu, logvar); reparameterize; decode -> pixel means in [0, 1]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config.validate()
        c = config
        cond = c.num_classes if c.conditional else 0
        self.encoder = _mlp([c.input_dim + cond, *c.hidden])
        self.to_mu = nn.Linear(c.hidden[-1], c.latent_dim)
        self.to_logvar = nn.Linear(c.hidden[-1], c.latent_dim)
        self.decoder = _mlp([c.latent_dim + cond, *reversed(c.hidden), c.input_dim])

    # -- plumbing

    def _with_label(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if not self.config.conditional:
            return h
        if y is None:
            raise ValueError("this is a conditional VAE: pass the digit labels as y=")
        y = torch.as_tensor(y, device=h.device).long().reshape(-1)
        if y.shape[0] == 1 and h.shape[0] > 1:
            y = y.expand(h.shape[0])
        return torch.cat([h, F.one_hot(y, self.config.num_classes).to(h.dtype)], dim=1)

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.config.input_dim:
            side = self.config.image_size
            raise ValueError(f"expected images of {side}x{side} = {self.config.input_dim} pixels, got {x.shape[1]}")
        return x.float()

    # -- the four methods of a VAE

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, 28, 28) or (B, 784) in [0, 1] -> mu (B, z), logvar (B, z)."""
        h = F.relu(self.encoder(self._with_label(self._flatten(x), y)))
        return self.to_mu(h), self.to_logvar(h).clamp(-12.0, 8.0)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I): the sample is differentiable in mu and sigma."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + (0.5 * logvar).exp() * eps

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, z) -> (B, 784) pre-sigmoid decoder outputs."""
        return self.decoder(self._with_label(z.float(), y))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, z) -> (B, 1, 28, 28) pixel means in [0, 1]."""
        s = self.config.image_size
        return torch.sigmoid(self.decode_logits(z, y)).reshape(-1, 1, s, s)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """x -> (decoder logits (B, 784), mu, logvar) for one reparameterized sample."""
        mu, logvar = self.encode(x, y)
        return self.decode_logits(self.reparameterize(mu, logvar), y), mu, logvar

    # -- likelihood of the data under the decoder

    def log_px_given_z(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels; x (..., 784), logits (..., 784) -> (...)."""
        if self.config.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        sigma = self.config.sigma
        mean = torch.sigmoid(logits)
        return -0.5 * (((x - mean) / sigma).pow(2) + 2 * math.log(sigma) + LOG_2PI).sum(-1)

    def sample(self, n: int, *, y: torch.Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode n draws from the prior N(0, temperature^2 I) -> (n, 1, 28, 28)."""
        p = next(self.parameters())
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=p.device) * temperature
        return self.decode(z, y)


def elbo_terms(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image reconstruction term -E_q[log p(x|z)] (one sample) and KL(q(z|x) || p(z)): (B,), (B,).

    -ELBO = reconstruction + KL; the training loss is reconstruction + beta * KL.
    """
    x = model._flatten(x)
    mu, logvar = model.encode(x, y)
    z = model.reparameterize(mu, logvar, generator)
    rec = -model.log_px_given_z(x, model.decode_logits(z, y))
    kl = gaussian_kl(mu, logvar).sum(-1)
    return rec, kl
