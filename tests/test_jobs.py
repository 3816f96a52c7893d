"""Background training jobs (explorer.jobs): progress, cancel, refusal, failure, and the saved checkpoint.

Each job trains a tiny model in a real spawned child process on a small synthetic IDX data set
written into a temp folder (so no test depends on downloads or on the 5-second MNIST fallback).
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from explorer import checkpoints, jobs
from explorer.config import ConfigError, ModelConfig, TrainConfig

TINY_MODEL = ModelConfig(latent_dim=4, hidden=(32,))


def tiny_train(**kw) -> TrainConfig:
    base = dict(epochs=2, limit=500, eval_k=5, eval_limit=200, batch_size=100, warmup_epochs=0)
    return TrainConfig(**{**base, **kw})


# helpers


def write_idx(path: Path, arr: np.ndarray) -> None:
    """uint8 array -> gzipped IDX file (magic 0x08 0x0N, big-endian dims)."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.tobytes())


def write_idx_dataset(folder: Path, n_train: int = 600, n_test: int = 200) -> Path:
    """A tiny MNIST-layout folder of blob 'digits' whose position depends on the label."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        imgs = np.zeros((n, 28, 28), np.uint8)
        for i, y in enumerate(labels):
            r, c = 6 + 2 * (y // 5) * 4 + rng.integers(0, 3), 4 + 4 * (y % 5) + rng.integers(0, 3)
            imgs[i, r:r + 6, c:c + 4] = 255
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", imgs)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


def wait_until(pred, timeout: float = 60.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


# fixtures


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_idx_dataset(tmp_path_factory.mktemp("idx"))


@pytest.fixture
def ckpt_dir(tmp_path, tiny_checkpoint) -> Path:
    """A checkpoints folder holding one 'shipped' checkpoint."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "shipped.safetensors").write_bytes(tiny_checkpoint.read_bytes())
    return folder


@pytest.fixture
def manager(ckpt_dir):
    m = jobs.JobManager(ckpt_dir)
    yield m
    m.cancel()
    m.wait(10)


# tests


def test_a_new_folder_is_idle(ckpt_dir):
    snap = jobs.JobManager(ckpt_dir).snapshot()
    assert snap["state"] == "idle"
    assert snap["history"] == [] and snap["samples"] is None and snap["error"] is None


def test_job_trains_reports_every_epoch_and_saves_a_loadable_checkpoint(manager, ckpt_dir, data_dir):
    shipped = (ckpt_dir / "shipped.safetensors").read_bytes()
    job = manager.start(TINY_MODEL, tiny_train(epochs=3), "my run!", owner="ada", data_dir=data_dir)
    assert job.name == "my-run" and job.owner == "ada"
    assert manager.snapshot()["state"] in ("running", "done")
    snap = manager.wait(120)
    assert snap["state"] == "done", snap["error"]
    # one report per epoch, with train and test -ELBO = rec + KL
    assert [h["epoch"] for h in snap["history"]] == [1, 2, 3]
    for h in snap["history"]:
        assert h["train_loss"] == pytest.approx(h["train_rec"] + h["train_kl"], rel=1e-4)
        assert h["test_loss"] == pytest.approx(h["test_rec"] + h["test_kl"], rel=1e-4)
    assert snap["history"][-1]["train_loss"] < snap["history"][0]["train_loss"]
    assert snap["samples"].shape == (16, 28, 28) and snap["samples"].dtype == np.uint8
    assert snap["samples_epoch"] == 3 and snap["progress"] == 1.0
    assert snap["finished_at"] >= snap["started_at"]
    assert "IDX files in" in snap["data_source"]
    # the checkpoint: in the user folder, loadable, with metrics and who trained it
    path = Path(snap["checkpoint"])
    assert path == ckpt_dir / "user" / "my-run.safetensors"
    model, meta = checkpoints.load(path)
    assert model.config == TINY_MODEL
    assert np.isfinite(meta["metrics"]["test_nll"]) and meta["metrics"]["n"] == 200
    assert meta["metrics"]["test_elbo"] == pytest.approx(snap["metrics"]["test_elbo"])
    assert meta["train"]["extra"]["trained_by"] == "ada"
    assert len(meta["train"]["history"]) == 3
    # nothing else changed: the shipped checkpoint is intact, no temp files, the record says done
    assert (ckpt_dir / "shipped.safetensors").read_bytes() == shipped
    assert files_in(ckpt_dir / "user") == {"my-run.safetensors", "job.json"}
    record = json.loads((ckpt_dir / "user" / "job.json").read_text())
    assert record["state"] == "done" and record["name"] == "my-run" and record["owner"] == "ada"


def test_cancel_stops_within_a_second_and_leaves_no_file(manager, ckpt_dir, data_dir):
    manager.start(TINY_MODEL, tiny_train(epochs=1000), "long", owner="bob", data_dir=data_dir)
    # progress arrives while it runs
    snap = wait_until(lambda: (s := manager.snapshot())["epoch"] >= 2 and s)
    assert snap["state"] == "running" and snap["phase"] == "training"
    assert snap["eta_s"] is not None and snap["eta_s"] > 0
    assert 0 < snap["progress"] < 1 and len(snap["history"]) >= 2 and snap["samples"] is not None
    if hasattr(os, "SCHED_IDLE"):  # the child is background work: it only gets CPU time nobody else wants
        assert os.sched_getscheduler(manager.job.child_pid) == os.SCHED_IDLE
    t0 = time.perf_counter()
    snap = manager.cancel()
    seconds = time.perf_counter() - t0
    print(f"cancel returned after {seconds:.3f} s")
    assert seconds < 2.0  # the issue asks for "within a second"; slack for a loaded CI machine
    assert snap["state"] == "cancelled" and "nothing was saved" in snap["message"]
    assert not manager.is_running()
    assert files_in(ckpt_dir / "user") == {"job.json"}
    assert json.loads((ckpt_dir / "user" / "job.json").read_text())["state"] == "cancelled"


def test_cancel_during_startup_kills_the_child(manager, ckpt_dir, data_dir):
    manager.start(TINY_MODEL, tiny_train(epochs=1000), "early", owner="bob", data_dir=data_dir)
    t0 = time.perf_counter()
    snap = manager.cancel()  # the child is still importing torch: it cannot check should_stop yet
    assert time.perf_counter() - t0 < 3.0
    assert snap["state"] == "cancelled"
    assert files_in(ckpt_dir / "user") == {"job.json"}


def test_a_second_job_is_refused_with_who_and_how_far(manager, ckpt_dir, data_dir, tmp_path):
    manager.start(TINY_MODEL, tiny_train(epochs=1000), "first", owner="ada", data_dir=data_dir)
    wait_until(lambda: manager.snapshot()["epoch"] >= 1)
    with pytest.raises(jobs.JobRefused) as e:
        manager.start(TINY_MODEL, tiny_train(), "second", owner="bob", data_dir=data_dir)
    msg = str(e.value)
    assert "already running" in msg and "'first'" in msg and "ada" in msg and "epoch" in msg and "/1000" in msg
    # one job per server, even for another checkpoints folder
    other = jobs.JobManager(tmp_path / "elsewhere")
    with pytest.raises(jobs.JobRefused, match="ada"):
        other.start(TINY_MODEL, tiny_train(), "third", owner="cy", data_dir=data_dir)
    assert manager.snapshot()["name"] == "first" and manager.is_running()
    assert not (ckpt_dir / "user" / "second.safetensors").exists()


def test_a_new_job_may_start_once_the_last_one_ended(manager, data_dir):
    manager.start(TINY_MODEL, tiny_train(epochs=1000), "one", owner="ada", data_dir=data_dir)
    manager.cancel()
    job = manager.start(TINY_MODEL, tiny_train(epochs=1), "two", owner="bob", data_dir=data_dir)
    assert job.name == "two"
    assert manager.wait(120)["state"] == "done"


def test_a_failing_job_reports_its_error(manager, ckpt_dir, data_dir):
    # the child fails right after it starts: the device does not exist (on any machine)
    manager.start(TINY_MODEL, tiny_train(device="cuda:99"), "nowhere", owner="ada", data_dir=data_dir)
    snap = manager.wait(120)
    assert snap["state"] == "failed"
    assert "device" in snap["error"] and "cuda:99" in snap["error"] and "not available" in snap["error"]
    assert snap["message"].startswith("failed:")
    assert not manager.is_running()
    assert files_in(ckpt_dir / "user") == {"job.json"}
    assert json.loads((ckpt_dir / "user" / "job.json").read_text())["state"] == "failed"


def test_names_that_exist_or_are_unusable_are_refused(manager, ckpt_dir, data_dir):
    (ckpt_dir / "user").mkdir()
    (ckpt_dir / "user" / "mine.safetensors").write_bytes(b"x")
    for name, why in (("shipped", "already exists"), ("mine", "already exists"), ("../..", "not a usable")):
        with pytest.raises(ConfigError) as e:
            manager.start(TINY_MODEL, tiny_train(), name, owner="ada", data_dir=data_dir)
        assert e.value.field == "name" and why in e.value.message
    with pytest.raises(ConfigError) as e:
        manager.start(ModelConfig(latent_dim=99), tiny_train(), "ok", owner="ada")
    assert e.value.field == "latent_dim"
    assert not manager.is_running() and manager.snapshot()["state"] == "idle"
    assert (ckpt_dir / "user" / "mine.safetensors").read_bytes() == b"x"


def test_get_manager_is_one_per_folder(ckpt_dir):
    assert jobs.get_manager(ckpt_dir) is jobs.get_manager(str(ckpt_dir) + "/.")


def test_describe_says_who_and_how_far():
    snap = {**jobs.IDLE_SNAPSHOT, "state": "running", "name": "run", "owner": "ada", "epoch": 3, "epochs": 20,
            "progress": 0.15, "eta_s": 75.0}
    assert jobs.describe(snap) == "'run' started by ada, epoch 3/20 (15%), about 1 min 15 s left"
    assert jobs.describe(jobs.IDLE_SNAPSHOT) == "no training job"


# pausing for other work (BusyYield)


def scripted_yield(monkeypatch, others_cores: list[float], **kw) -> tuple[jobs.BusyYield, list[float]]:
    """A BusyYield whose clock and /proc/stat readings are scripted: the i-th window saw others_cores[i] cores."""
    clock = {"t": 0.0, "cpu": 0.0, "i": 0}
    sleeps = []

    def sample():
        return clock["t"], clock["cpu"]

    def sleep(s):
        sleeps.append(s)
        advance(s)

    def advance(s):
        rate = others_cores[min(clock["i"], len(others_cores) - 1)]
        clock["t"] += s
        clock["cpu"] += rate * s
        clock["i"] += 1

    y = jobs.BusyYield(**kw)
    monkeypatch.setattr(y, "_sample", sample)
    y.last = sample()
    monkeypatch.setattr(jobs.time, "sleep", sleep)
    y.advance = advance
    return y, sleeps


def test_busy_yield_pauses_while_others_are_busy_then_goes_on(monkeypatch):
    y, sleeps = scripted_yield(monkeypatch, [1.5, 1.0, 0.1], threshold=0.4, window=0.05, max_pause=0.5)
    y.advance(0.1)  # one training batch while others used 1.5 cores
    assert y.wait() == pytest.approx(0.1)  # slept while they used 1.0, went on once they used 0.1
    assert sleeps == [0.05, 0.05] and y.paused_s == pytest.approx(0.1)


def test_busy_yield_never_pauses_on_a_quiet_machine_or_too_soon(monkeypatch):
    y, sleeps = scripted_yield(monkeypatch, [0.2], threshold=0.4, window=0.05)
    y.advance(0.1)
    assert y.wait() == 0.0
    y2, sleeps2 = scripted_yield(monkeypatch, [2.0], threshold=0.4, window=0.05)
    y2.advance(0.01)  # shorter than a window: no verdict yet, no pause
    assert y2.wait() == 0.0 and sleeps == sleeps2 == []


def test_busy_yield_pause_is_bounded_so_training_progresses(monkeypatch):
    y, sleeps = scripted_yield(monkeypatch, [2.0], threshold=0.4, window=0.05, max_pause=0.3)
    y.advance(0.1)
    slept = y.wait()
    assert slept == pytest.approx(0.3) and len(sleeps) == 6


def test_busy_yield_sees_a_real_busy_process():
    """Against the real /proc/stat: a process spinning on a core makes wait() pause."""
    import subprocess
    import sys

    spin = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 5: pass"])
    try:
        time.sleep(0.3)
        y = jobs.BusyYield(threshold=0.4, window=0.05, max_pause=0.3)
        time.sleep(0.1)
        assert y.wait() >= 0.05
    finally:
        spin.kill()
        spin.wait()
