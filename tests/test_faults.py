"""Faults: a process killed while it writes checkpoints, a server killed mid-training, an unusable folder.

Every fault here really happens (SIGKILL of real processes; a folder that cannot be created even
by root), and the test then checks what a user would see: every checkpoint still loads, the dead
job is reported as failed, a new job may start, and errors say what went wrong.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from explorer import checkpoints, jobs
from explorer.config import ModelConfig
from explorer.model import VAE
from test_jobs import TINY_MODEL, files_in, tiny_train, wait_until, write_idx_dataset

ROOT = Path(__file__).resolve().parents[1]
BIG = ModelConfig(latent_dim=16, hidden=(1024, 1024))  # ~2.7M parameters (11 MB): a write takes a while

KILLS = 8

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")


# helpers


def big_model(seed: int) -> VAE:
    torch.manual_seed(seed)
    return VAE(BIG)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return jobs._pid_alive(pid)


def python(code: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_idx_dataset(tmp_path_factory.mktemp("idx"))


# a process killed while it writes


@pytest.mark.slow
def test_sigkill_during_checkpoint_writes_never_leaves_a_broken_checkpoint(tmp_path):
    folder = tmp_path / "checkpoints" / "user"
    folder.mkdir(parents=True)
    expected = {seed: big_model(seed).state_dict() for seed in (0, 1)}
    for i in range(3):  # the folder already holds valid checkpoints, which the writers keep replacing
        checkpoints.save(big_model(i % 2), folder / f"ck{i}.safetensors", meta={"seed": i % 2})
    # One process imports torch once and forks a writer per round (a fresh interpreter costs seconds);
    # each writer saves checkpoints in a loop until it is SIGKILLed at a random moment.
    zygote = python(f"""
        import itertools, os, sys, torch
        torch.set_num_threads(1)
        from explorer import checkpoints
        from explorer.config import ModelConfig
        from explorer.model import VAE
        models = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            models.append(VAE(ModelConfig(latent_dim=16, hidden=(1024, 1024))))
        for line in sys.stdin:
            pid = os.fork()
            if pid == 0:
                try:
                    for i in itertools.count():
                        checkpoints.save(models[i % 2], {str(folder)!r} + f"/ck{{i % 3}}.safetensors",
                                         meta={{"seed": i % 2}}, overwrite=True)
                finally:
                    os._exit(1)
            print(pid, flush=True)
            print(os.waitpid(pid, 0)[1], flush=True)
        """, stdin=subprocess.PIPE)
    rng = random.Random(0)
    interrupted = 0
    try:
        for _ in range(KILLS):
            zygote.stdin.write("go\n")
            zygote.stdin.flush()
            writer = int(zygote.stdout.readline())
            time.sleep(rng.uniform(0.05, 0.6))
            os.kill(writer, signal.SIGKILL)
            assert os.WTERMSIG(int(zygote.stdout.readline())) == signal.SIGKILL
            temp = [p for p in folder.iterdir() if p.name.startswith(".")]
            interrupted += bool(temp)
            # at most temp files: ours (.ck0.XXXX.tmp) and the one safetensors renames onto it (.tmpXXXXXX)
            assert all((p.name.startswith(".ck") and p.name.endswith(".tmp")) or p.name.startswith(".tmp")
                       for p in temp), temp
            # every real checkpoint loads, and holds exactly the weights of one of the models
            names = sorted(p.name for p in folder.glob("*.safetensors") if not p.name.startswith("."))
            assert names == ["ck0.safetensors", "ck1.safetensors", "ck2.safetensors"]
            for name in names:
                model, meta = checkpoints.load(folder / name)
                want = expected[meta["seed"]]
                assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items()), name
            assert all(c.ok for c in checkpoints.list_checkpoints(folder))  # the picker skips temp files
    finally:
        zygote.stdin.close()
        zygote.wait(30)
    print(f"{interrupted} of {KILLS} kills interrupted a write")
    assert interrupted >= 1  # the kills did land mid-write (writing is most of what a writer does)
    # temp files of dead writers are removed when a job manager starts on the folder
    for p in folder.glob(".*"):
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    jobs.JobManager(folder.parent)
    assert sorted(p.name for p in folder.iterdir()) == ["ck0.safetensors", "ck1.safetensors", "ck2.safetensors"]


# a server killed mid-training


@pytest.mark.slow
def test_a_server_killed_mid_training_shows_the_job_failed_and_allows_a_new_one(tmp_path, data_dir):
    ckpt_dir = tmp_path / "checkpoints"
    record = ckpt_dir / "user" / "job.json"
    server = python(f"""
        import time
        from explorer import jobs
        from test_jobs import TINY_MODEL, tiny_train
        m = jobs.get_manager({str(ckpt_dir)!r})
        m.start(TINY_MODEL, tiny_train(epochs=1000), "doomed", owner="ada", data_dir={str(data_dir)!r})
        print("started", flush=True)
        time.sleep(600)
        """)
    try:
        assert server.stdout.readline().strip() == "started"
        rec = wait_until(lambda: record.is_file() and (r := json.loads(record.read_text()))["epoch"] >= 1 and r)
        assert rec["state"] == "running" and rec["server_pid"] == server.pid
        child = rec["child_pid"]
        assert alive(child)
    finally:
        server.kill()
        server.wait(10)
    # the next server start
    manager = jobs.JobManager(ckpt_dir)
    snap = manager.snapshot()
    assert snap["state"] == "failed" and snap["name"] == "doomed" and snap["owner"] == "ada"
    assert "server stopped during training" in snap["error"] and "nothing was saved" in snap["error"]
    assert json.loads(record.read_text())["state"] == "failed"
    assert not manager.is_running()
    # the orphaned training process notices its server is gone and stops without saving
    wait_until(lambda: not alive(child), timeout=30)
    assert not (ckpt_dir / "user" / "doomed.safetensors").exists()
    assert not list((ckpt_dir / "user").glob(".*.tmp"))
    # and a new job may start
    manager.start(TINY_MODEL, tiny_train(epochs=1), "next", owner="bob", data_dir=data_dir)
    try:
        assert manager.wait(120)["state"] == "done"
    finally:
        manager.cancel()
    assert files_in(ckpt_dir / "user") == {"job.json", "next.safetensors"}


def test_an_unreadable_job_record_is_ignored(tmp_path):
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "job.json").write_text("{not json")
    assert jobs.JobManager(tmp_path).snapshot()["state"] == "idle"


# a folder that cannot be written (a file where the user folder should be: fails even as root)


def test_start_refuses_with_a_clear_message_when_the_folder_cannot_be_created(tmp_path, data_dir):
    (tmp_path / "user").write_text("not a folder")
    manager = jobs.JobManager(tmp_path)
    with pytest.raises(jobs.JobRefused, match=r"cannot save checkpoints into .*user"):
        manager.start(TINY_MODEL, tiny_train(), "run", owner="ada", data_dir=data_dir)
    assert manager.snapshot()["state"] == "idle" and not manager.is_running()
    assert (tmp_path / "user").read_text() == "not a folder"


@pytest.mark.slow
def test_a_job_whose_folder_disappears_fails_with_cannot_save(tmp_path, data_dir):
    manager = jobs.JobManager(tmp_path)
    manager.start(TINY_MODEL, tiny_train(epochs=2), "run", owner="ada", data_dir=data_dir)
    try:
        # while the child starts up (seconds), the user folder is replaced by a file
        shutil.rmtree(tmp_path / "user")
        (tmp_path / "user").write_text("not a folder")
        snap = manager.wait(120)
    finally:
        manager.cancel()
    assert snap["state"] == "failed"
    assert snap["error"].startswith("cannot save the checkpoint to ") and "run.safetensors" in snap["error"]
    assert len(snap["history"]) == 2  # it trained, then could not save
    assert (tmp_path / "user").read_text() == "not a folder"
    # the manager carries on: a new job may start once the folder is usable again
    (tmp_path / "user").unlink()
    manager.start(TINY_MODEL, tiny_train(epochs=1), "run", owner="ada", data_dir=data_dir)
    try:
        assert manager.wait(120)["state"] == "done"
    finally:
        manager.cancel()
