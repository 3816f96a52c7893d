"""The one checkpoint format: safetensors weights + JSON metadata. Nothing else reads or writes it.

A checkpoint is ``<name>.safetensors``. Its string metadata holds ``format`` (this module's
version) and ``meta``, a JSON object with ``config`` (the ModelConfig), ``train`` (data source,
epochs, seconds, ...) and ``metrics`` (test ELBO/NLL in nats). No pickle is ever loaded.
Writes are atomic: a temp file in the same folder, fsync, then ``os.replace``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ConfigError, ModelConfig
from .model import VAE

FORMAT = "vae-explorer/1"
SUFFIX = ".safetensors"
MAX_BYTES = 512 * 1024 * 1024  # refuse anything bigger than any model this app builds


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class CheckpointInfo:
    """One entry of a checkpoints folder: either loadable (meta) or not (error)."""

    path: str
    name: str
    meta: dict | None
    error: str | None
    fingerprint: str  # changes whenever the file changes; use it in cache keys

    @property
    def ok(self) -> bool:
        return self.error is None


# helpers


def fingerprint(path: str | os.PathLike) -> str:
    """A cheap identity for cache keys: size + mtime_ns + name."""
    st = os.stat(path)
    return hashlib.sha1(f"{Path(path).name}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _read_header(path: Path) -> dict:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: empty file")
    if size > MAX_BYTES:
        raise CheckpointError(f"{path}: {size / 2**20:.0f} MiB is too large for a VAE checkpoint")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated, or another format "
                              f"such as a pickle): {e}") from e
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a VAE Explorer checkpoint (format {metadata.get('format')!r}, "
                              f"expected {FORMAT!r})")
    try:
        meta = json.loads(metadata["meta"])
        assert isinstance(meta, dict)
    except (KeyError, ValueError, AssertionError) as e:
        raise CheckpointError(f"{path}: metadata is missing or not a JSON object") from e
    return {"meta": meta, "tensors": tensors}


# the format


def save(model: VAE, path: str | os.PathLike, *, meta: dict | None = None, overwrite: bool = False) -> Path:
    """Write model weights + metadata to ``path`` atomically; refuses to replace a file unless ``overwrite``."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != SUFFIX:
        raise CheckpointError(f"{path}: checkpoint names must end in {SUFFIX}")
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path}: already exists; choose another name")
    meta = dict(meta or {})
    meta["config"] = model.config.to_dict()
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": FORMAT, "meta": json.dumps(meta)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        if not overwrite and path.exists():
            raise CheckpointError(f"{path}: already exists; choose another name")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
    except OSError:
        pass
    return path


def read_meta(path: str | os.PathLike) -> dict:
    """Validate the whole checkpoint and return its metadata (without keeping the model)."""
    return load(path)[1]


def load(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> tuple[VAE, dict]:
    """Rebuild the model from a checkpoint -> (model in eval mode, meta); CheckpointError if anything is off."""
    path = Path(path)
    parsed = _read_header(path)
    meta, tensors = parsed["meta"], parsed["tensors"]
    try:
        config = ModelConfig.from_dict(meta.get("config", {}))
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid model config in metadata: {e}") from e
    model = VAE(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: weights do not match the architecture in its config "
                              f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for k, v in expected.items():
        t = tensors[k]
        if t.shape != v.shape:
            raise CheckpointError(f"{path}: tensor {k} has shape {tuple(t.shape)}, expected {tuple(v.shape)}")
        if not torch.is_floating_point(t):
            raise CheckpointError(f"{path}: tensor {k} has dtype {t.dtype}, expected floating point")
        if not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: tensor {k} contains NaN or infinite values")
    model.load_state_dict({k: t.to(v.dtype) for k, v in expected.items() for t in [tensors[k]]})
    model.eval().to(device)
    meta.setdefault("metrics", {})
    meta.setdefault("train", {})
    meta["name"] = path.stem
    meta["path"] = str(path)
    return model, meta


def list_checkpoints(folder: str | os.PathLike, *, recursive: bool = True) -> list[CheckpointInfo]:
    """Every ``*.safetensors`` in ``folder`` (and its subfolders), each validated; sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = f"**/*{SUFFIX}" if recursive else f"*{SUFFIX}"
    out = []
    for p in sorted(folder.glob(pattern)):
        if p.name.startswith("."):
            continue  # temp files of writes in progress
        try:
            fp = fingerprint(p)
        except OSError:
            continue
        try:
            _, meta = load(p)
            out.append(CheckpointInfo(str(p), p.stem, meta, None, fp))
        except CheckpointError as e:
            out.append(CheckpointInfo(str(p), p.stem, None, str(e), fp))
    return out


def safe_name(name: str) -> str:
    """A user-given checkpoint name reduced to a plain file stem; CheckpointError if nothing is left."""
    stem = "".join(c if (c.isalnum() or c in "-_") else "-" for c in name.strip())[:64].strip("-_")
    if not stem:
        raise CheckpointError(f"{name!r} is not a usable checkpoint name (letters, digits, - and _)")
    return stem
