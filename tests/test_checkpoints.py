"""The checkpoint format: exact round trips, atomic writes, and a clear CheckpointError for every bad file."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tests.conftest import make_model
from explorer import checkpoints
from explorer.checkpoints import FORMAT, CheckpointError, list_checkpoints, load, safe_name, save
from explorer.config import ModelConfig
from explorer.model import VAE

# helpers


def read_raw(path) -> tuple[dict, dict]:
    """A checkpoint's tensors and string metadata, read with safetensors directly."""
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def trained_looking_model(**kw) -> VAE:
    """A model whose weights are not just the default init (so a round trip proves something)."""
    model = make_model(**kw)
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.add_(torch.randn_like(p) * 0.01 * (i + 1))
    return model


# round trip


@pytest.mark.parametrize("conditional, likelihood", [(False, "bernoulli"), (True, "gaussian")])
def test_round_trip_is_exact(tmp_path, conditional, likelihood):
    model = trained_looking_model(latent_dim=5, conditional=conditional, likelihood=likelihood)
    meta = {"metrics": {"test_elbo": 123.5, "test_nll": 120.25}, "train": {"epochs": 3, "data_source": "x"}}
    path = save(model, tmp_path / "m.safetensors", meta=meta)
    loaded, got = load(path)
    assert loaded.config == model.config
    assert not loaded.training  # eval mode
    ref = model.state_dict()
    assert set(loaded.state_dict()) == set(ref)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert got["metrics"] == meta["metrics"]
    assert got["train"] == meta["train"]
    assert got["config"] == model.config.to_dict()
    assert got["name"] == "m" and got["path"] == str(path)
    x = torch.rand(3, 784)
    y = torch.tensor([1, 2, 3]) if conditional else None
    assert torch.equal(loaded.encode(x, y)[0], model.encode(x, y)[0])
    assert checkpoints.read_meta(path)["metrics"] == meta["metrics"]


def test_meta_defaults_when_absent(tiny_model, tmp_path):
    _, meta = load(save(tiny_model, tmp_path / "bare.safetensors"))
    assert meta["metrics"] == {} and meta["train"] == {}


# atomic, careful writes


def test_save_leaves_no_temp_files_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "a.safetensors"
    save(make_model(seed=0), path)
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors"]
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="already exists"):
        save(make_model(seed=1), path)
    assert path.read_bytes() == before  # untouched
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors"]
    save(make_model(seed=1), path, overwrite=True)
    assert path.read_bytes() != before
    assert torch.equal(load(path)[0].to_mu.weight, make_model(seed=1).to_mu.weight)
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors"]


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    import safetensors.torch

    def disk_full(*a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(OSError):
        save(make_model(), tmp_path / "b.safetensors")
    assert os.listdir(tmp_path) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    import safetensors.torch

    path = save(make_model(seed=0), tmp_path / "c.safetensors")
    before = path.read_bytes()

    def disk_full(*a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(OSError):
        save(make_model(seed=1), path, overwrite=True)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.safetensors"]


def test_save_requires_the_suffix(tmp_path, tiny_model):
    with pytest.raises(CheckpointError, match=".safetensors"):
        save(tiny_model, tmp_path / "model.pt")


def test_save_creates_missing_folders(tmp_path, tiny_model):
    path = save(tiny_model, tmp_path / "user" / "deep" / "x.safetensors")
    assert path.is_file() and load(path)[1]["name"] == "x"


# corrupt files, each with a clear message


def test_truncated_file(tiny_checkpoint):
    blob = tiny_checkpoint.read_bytes()
    tiny_checkpoint.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated") as e:
        load(tiny_checkpoint)
    assert str(tiny_checkpoint) in str(e.value)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.safetensors"
    p.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty file"):
        load(p)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load(tmp_path / "nope.safetensors")


def test_wrong_shapes_for_the_config(tmp_path):
    path = save(make_model(), tmp_path / "h64.safetensors")  # make_model: hidden (32,)
    _, metadata = read_raw(path)
    model64 = VAE(ModelConfig(latent_dim=4, hidden=(64,)))
    save_file({k: v.contiguous() for k, v in model64.state_dict().items()}, str(path), metadata=metadata)
    # metadata still says hidden (32,), tensors are hidden (64,)
    assert json.loads(metadata["meta"])["config"]["hidden"] == [32]
    with pytest.raises(CheckpointError, match="shape") as e:
        load(path)
    assert "expected" in str(e.value) and str(path) in str(e.value)


def test_missing_tensor(tiny_checkpoint):
    tensors, metadata = read_raw(tiny_checkpoint)
    del tensors["to_mu.bias"]
    save_file(tensors, str(tiny_checkpoint), metadata=metadata)
    with pytest.raises(CheckpointError, match="to_mu.bias"):
        load(tiny_checkpoint)


def test_nan_weights(tiny_checkpoint):
    tensors, metadata = read_raw(tiny_checkpoint)
    tensors["decoder.0.weight"][0, 0] = float("nan")
    save_file(tensors, str(tiny_checkpoint), metadata=metadata)
    with pytest.raises(CheckpointError, match="NaN") as e:
        load(tiny_checkpoint)
    assert "decoder.0.weight" in str(e.value)


def test_pickle_renamed_to_safetensors(tmp_path, tiny_model):
    p = tmp_path / "pickled.safetensors"
    torch.save(tiny_model.state_dict(), p)
    with pytest.raises(CheckpointError, match="pickle"):
        load(p)


def test_safetensors_without_our_metadata(tmp_path, tiny_model):
    p = tmp_path / "foreign.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_model.state_dict().items()}, str(p))
    with pytest.raises(CheckpointError, match="not a VAE Explorer checkpoint"):
        load(p)
    save_file({k: v.contiguous() for k, v in tiny_model.state_dict().items()}, str(p),
              metadata={"format": FORMAT, "meta": "{not json"})
    with pytest.raises(CheckpointError, match="JSON"):
        load(p)


def test_invalid_config_in_metadata(tiny_checkpoint):
    tensors, metadata = read_raw(tiny_checkpoint)
    meta = json.loads(metadata["meta"])
    meta["config"]["latent_dim"] = 1000
    save_file(tensors, str(tiny_checkpoint), metadata={**metadata, "meta": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="latent_dim"):
        load(tiny_checkpoint)


# listing a folder


def test_list_checkpoints_reports_valid_and_invalid(tmp_path, tiny_model):
    save(tiny_model, tmp_path / "good.safetensors", meta={"metrics": {"test_nll": 99.0}})
    save(tiny_model, tmp_path / "sub" / "nested.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00garbage" * 10)
    (tmp_path / ".good.abc123.tmp.safetensors").write_bytes(b"half-written")  # a write in progress
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    infos = list_checkpoints(tmp_path)
    by_name = {i.name: i for i in infos}
    assert sorted(by_name) == ["bad", "good", "nested"]
    assert by_name["good"].ok and by_name["good"].error is None
    assert by_name["good"].meta["metrics"]["test_nll"] == 99.0
    assert by_name["nested"].ok
    assert not by_name["bad"].ok and by_name["bad"].meta is None
    assert "bad.safetensors" in by_name["bad"].error
    assert all(len(i.fingerprint) == 16 for i in infos)
    assert [i.name for i in list_checkpoints(tmp_path, recursive=False)] == ["bad", "good"]
    assert list_checkpoints(tmp_path / "missing") == []


def test_fingerprint_changes_with_the_file(tmp_path):
    path = save(make_model(seed=0), tmp_path / "f.safetensors")
    fp = checkpoints.fingerprint(path)
    assert checkpoints.fingerprint(path) == fp
    st = os.stat(path)
    save(make_model(seed=1), path, overwrite=True)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert checkpoints.fingerprint(path) != fp


def test_safe_name():
    assert safe_name("../../etc/passwd") == "etc-passwd"
    assert safe_name("  my model v2 ") == "my-model-v2"
    assert safe_name("z16_beta-4") == "z16_beta-4"
    assert len(safe_name("a" * 200)) == 64
    for bad in ("", "   ", "../", "/", "..", "!!!"):
        with pytest.raises(CheckpointError):
            safe_name(bad)
    for name in ("../x", "a/../../b", "..\\..\\c"):
        s = safe_name(name)
        assert "/" not in s and "\\" not in s and ".." not in s


# the shipped checkpoints


def test_shipped_checkpoints_load(shipped_checkpoints):
    for path in shipped_checkpoints:
        model, meta = load(path)
        cfg = meta["config"]
        for key in ("latent_dim", "conditional", "likelihood"):
            assert key in cfg, (path, key)
        assert model.config.latent_dim == cfg["latent_dim"]
        metrics = meta["metrics"]
        for key in ("test_elbo", "test_nll"):
            assert key in metrics, (path, key)
        # a lower bound on log p(x): -ELBO >= NLL > 0 (both in nats)
        assert 0 < metrics["test_nll"] <= metrics["test_elbo"] + 1e-3, path
        x = torch.rand(2, 784)
        y = torch.tensor([3, 4]) if cfg["conditional"] else None
        assert model.decode(model.encode(x, y)[0], y).shape == (2, 1, 28, 28)
