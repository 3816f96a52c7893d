"""The decoder's weights as a compact JSON payload, so a browser can decode z itself.

The decoder is a stack of Linear layers with ReLU between them (see ``explorer.model._mlp``), ending
in 784 pixel logits; the browser computes ``sigmoid(W_n relu(... relu(W_1 [z, onehot(y)] + b_1)) + b_n)``
with plain Float32Array matrix products. Arrays travel as base64 of little-endian float16 or
float32; float16 (half the bytes) is used only when decoding with the rounded weights stays within
0.4/255 of the float32 model on a fixed set of probe codes, so the page's 8-bit canvas (which rounds,
adding up to 0.5/255) still agrees with ``model.decode`` to within 1/255 per pixel.
"""

from __future__ import annotations

import base64
import hashlib
import json

import numpy as np
import torch
from torch import nn

from .model import VAE

FORMAT = "vae-explorer-decoder/1"
MAX_PARAMS = 4_000_000  # ~16 MB of float32; bigger decoders are slow to ship and to run per frame
FP16_TOLERANCE = 0.4 / 255  # largest pixel error float16 weights may add (canvas rounding adds 0.5/255)

# helpers


def _linear_layers(model: VAE) -> list[nn.Linear]:
    """The decoder's Linear layers; ValueError (with the reason) if it is not Linear/ReLU/.../Linear."""
    dec = getattr(model, "decoder", None)
    if not isinstance(dec, nn.Sequential):
        raise ValueError(f"the decoder is a {type(dec).__name__}, not an nn.Sequential of Linear/ReLU layers")
    mods = list(dec.children())
    if not mods:
        raise ValueError("the decoder has no layers")
    for i, m in enumerate(mods):
        want = nn.Linear if i % 2 == 0 else nn.ReLU
        if type(m) is not want:
            raise ValueError(f"decoder layer {i} is {type(m).__name__}; live decoding needs Linear and ReLU "
                             "layers alternating")
    if not isinstance(mods[-1], nn.Linear):
        raise ValueError("the decoder must end in a Linear layer (pixel logits)")
    linears = [m for m in mods if isinstance(m, nn.Linear)]
    for a, b in zip(linears[:-1], linears[1:]):
        if a.out_features != b.in_features:
            raise ValueError(f"decoder widths do not chain ({a.out_features} -> {b.in_features})")
    return linears


def _input_dim(model: VAE) -> int:
    c = model.config
    return c.latent_dim + (c.num_classes if c.conditional else 0)


def _b64(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode("ascii")


def _probe_inputs(model: VAE, n: int = 512) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fixed probe codes (B, z) from N(0, 2^2) and labels (B,) for the float16 accuracy check."""
    g = torch.Generator().manual_seed(0)
    z = 2.0 * torch.randn(n, model.config.latent_dim, generator=g)
    y = torch.arange(n) % model.config.num_classes if model.config.conditional else None
    return z, y


@torch.no_grad()
def _forward(linears: list[nn.Linear], weights: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    for i, (w, b) in enumerate(weights):
        x = x @ w.T + b
        if i < len(weights) - 1:
            x = torch.relu(x)
    return torch.sigmoid(x)


@torch.no_grad()
def float16_error(model: VAE) -> float:
    """Largest pixel difference (in [0, 1] units) that float16-rounded decoder weights cause on the probe codes."""
    linears = _linear_layers(model)
    z, y = _probe_inputs(model)
    x = model._with_label(z, y)
    exact = [(m.weight.float().cpu(), m.bias.float().cpu()) for m in linears]
    rounded = [(w.half().float(), b.half().float()) for w, b in exact]
    return float((_forward(linears, exact, x) - _forward(linears, rounded, x)).abs().max())


# the payload


def supported(model: VAE) -> tuple[bool, str]:
    """(True, "") if the browser can run this decoder, else (False, a reason to show the user)."""
    try:
        linears = _linear_layers(model)
    except ValueError as e:
        return False, str(e)
    c = model.config
    if linears[0].in_features != _input_dim(model):
        return False, (f"the decoder takes {linears[0].in_features} inputs, expected {_input_dim(model)} "
                       f"(latent_dim {c.latent_dim}{' + labels' if c.conditional else ''})")
    if linears[-1].out_features != c.image_size * c.image_size:
        return False, f"the decoder makes {linears[-1].out_features} outputs, expected {c.image_size ** 2} pixels"
    n = sum(m.weight.numel() + m.bias.numel() for m in linears)
    if n > MAX_PARAMS:
        return False, f"the decoder has {n:,} weights; live decoding handles up to {MAX_PARAMS:,}"
    for m in linears:
        if not (torch.isfinite(m.weight).all() and torch.isfinite(m.bias).all()):
            return False, "the decoder has NaN or infinite weights"
    return True, ""


@torch.no_grad()
def decoder_payload(model: VAE, *, dtype: str = "auto") -> dict:
    """The decoder as a JSON-ready dict for the browser; ValueError if ``supported(model)`` is False.

    ``dtype`` is "float32", "float16", or "auto" (float16 when ``float16_error`` <= FP16_TOLERANCE).
    Keys: format, payload_id (changes whenever any weight or field changes), latent_dim, conditional,
    num_classes, image_size, dtype, fp16_error, n_params, layers = [{shape: [out, in], weight: b64
    (row-major out x in, little-endian), bias: b64, relu: bool}, ...].
    """
    ok, reason = supported(model)
    if not ok:
        raise ValueError(f"cannot decode this model in the browser: {reason}")
    if dtype not in ("auto", "float32", "float16"):
        raise ValueError(f"dtype must be 'auto', 'float32' or 'float16', got {dtype!r}")
    linears = _linear_layers(model)
    err = float16_error(model)
    if dtype == "auto":
        dtype = "float16" if err <= FP16_TOLERANCE else "float32"
    c = model.config
    layers = []
    for i, m in enumerate(linears):
        w = m.weight.detach().float().cpu().numpy()
        b = m.bias.detach().float().cpu().numpy()
        layers.append({"shape": [int(w.shape[0]), int(w.shape[1])], "weight": _b64(w, dtype),
                       "bias": _b64(b, dtype), "relu": i < len(linears) - 1})
    payload = {"format": FORMAT, "latent_dim": int(c.latent_dim), "conditional": bool(c.conditional),
               "num_classes": int(c.num_classes), "image_size": int(c.image_size), "dtype": dtype,
               "fp16_error": err, "n_params": int(sum(m.weight.numel() + m.bias.numel() for m in linears)),
               "layers": layers}
    payload["payload_id"] = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    return payload


def payload_arrays(payload: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode a payload back to float32 [(weight (out, in), bias (out,)), ...] (for tests and checks)."""
    dt = np.dtype(payload["dtype"]).newbyteorder("<")
    out = []
    for layer in payload["layers"]:
        w = np.frombuffer(base64.b64decode(layer["weight"]), dtype=dt).astype(np.float32)
        b = np.frombuffer(base64.b64decode(layer["bias"]), dtype=dt).astype(np.float32)
        out.append((w.reshape(layer["shape"]), b))
    return out


def decode_with_payload(payload: dict, z, y: int | None = None) -> np.ndarray:
    """What the browser computes, in NumPy: z (z,) [+ label] -> pixels (image_size, image_size) in [0, 1]."""
    x = np.asarray(z, dtype=np.float32).reshape(-1)
    if payload["conditional"]:
        onehot = np.zeros(payload["num_classes"], np.float32)
        onehot[0 if y is None else int(y)] = 1.0
        x = np.concatenate([x, onehot])
    layers = payload_arrays(payload)
    for i, (w, b) in enumerate(layers):
        x = w @ x + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    s = payload["image_size"]
    return (1.0 / (1.0 + np.exp(-x))).reshape(s, s).astype(np.float32)
