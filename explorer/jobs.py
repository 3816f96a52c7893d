"""Background training jobs: at most one per server process, trained in a separate child process.

The child is a fresh interpreter (``python -c``: not a fork of the threaded server, and not
multiprocessing's spawn, which would re-run Streamlit's ``__main__``, i.e. the whole app, in the
child). It runs ``explorer.train.train_and_save`` with one torch thread at idle CPU priority, so
the server (and every open page) stays responsive on a small machine. Progress (status lines,
per-epoch reports, a grid of prior samples, ETA) comes back through a pipe, read by a monitor
thread into a ``Job`` whose ``snapshot()`` is plain values for the UI to poll. A second pipe is
the stop signal: the child checks it between batches, and it also reads as "stop" when the server
dies. ``cancel()`` signals and terminates the child if it has not stopped within a second;
checkpoints are written atomically (temp file + rename) and temp files of dead jobs are removed,
so a cancelled or killed job leaves no file. A small JSON record of the job in the user folder
lets the next server start report a job that died with its server.

    manager = get_manager("checkpoints")
    job = manager.start(ModelConfig(latent_dim=8), TrainConfig(epochs=5), "my-run", owner="ada")
    manager.snapshot()["state"]   # "running", then "done" (or "failed" / "cancelled")
"""

from __future__ import annotations

import json
import logging
import multiprocessing.connection as mpc
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .config import ConfigError, ModelConfig, TrainConfig

log = logging.getLogger(__name__)

USER_SUBDIR = "user"  # trained checkpoints go to <checkpoint_dir>/user/<name>.safetensors
RECORD_NAME = "job.json"  # the last job of this folder, for the next server start
SUFFIX = ".safetensors"
STATES = ("idle", "running", "cancelling", "done", "failed", "cancelled")
ACTIVE_STATES = ("running", "cancelling")
N_SAMPLES = 16  # prior samples drawn after each epoch (a 4 x 4 grid)
STALE_TMP_S = 60.0  # temp files older than this in the user folder belong to nobody
HEARTBEAT_S = 10.0  # the record of a running job is rewritten at least this often
STALE_RECORD_S = 120.0  # a "running" record not rewritten for this long is from a dead server
SERVER_DIED = "server stopped during training"
PRIORITY_ENV = "VAE_EXPLORER_TRAIN_PRIORITY"  # "idle" (default), "low" (nice 10) or "normal"
YIELD_ENV = "VAE_EXPLORER_TRAIN_YIELD"  # "1" (default): pause between batches while the machine is busy; "0": never


class JobRefused(RuntimeError):
    """A job cannot start now (another one runs, or the folder is unusable); the message says why."""


# helpers


def _now() -> float:
    return time.time()


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON next to ``path`` and rename it into place (readers never see half a file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_temp_files(folder: Path, stem: str | None = None, *, older_than: float | None = None,
                       since: float | None = None) -> list[Path]:
    """Delete temp files of interrupted writes in ``folder``; -> the removed paths.

    Those are ``.<stem>.*.tmp`` (checkpoints.save and the job record; any stem if None) and
    ``.tmpXXXXXX`` (safetensors writes one and renames it onto the former). ``older_than``: only files
    not touched for that many seconds; ``since``: only ``.tmp*`` files modified after that time.
    """
    removed = []
    if not folder.is_dir():
        return removed
    ours = set(folder.glob(f".{stem}.*.tmp" if stem else ".*.tmp"))
    theirs = set(folder.glob(".tmp*")) - ours
    for p in sorted(ours | theirs):
        try:
            mtime = p.stat().st_mtime
            if older_than is not None and _now() - mtime < older_than:
                continue
            if p in theirs and since is not None and mtime < since:
                continue
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def _fmt_duration(s: float | None) -> str:
    if s is None:
        return "?"
    s = max(0, int(round(s)))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def describe(snap: dict) -> str:
    """One line about a job for people: 'my-run' by ada, epoch 3/20 (15%), about 40 s left."""
    if snap.get("state") in (None, "idle"):
        return "no training job"
    parts = [f"'{snap['name']}' started by {snap['owner']}"]
    if snap["state"] in ACTIVE_STATES:
        parts.append(f"epoch {snap['epoch']}/{snap['epochs']} ({snap['progress'] * 100:.0f}%)")
        if snap.get("eta_s") is not None:
            parts.append(f"about {_fmt_duration(snap['eta_s'])} left")
        elif snap.get("phase"):
            parts.append(snap["phase"])
    else:
        parts.append(snap["state"])
    return ", ".join(parts)


# the child process


ROOT = Path(__file__).resolve().parents[1]
CHILD_CODE = ("import sys; sys.path.insert(0, sys.argv[1]); "
              "from explorer.jobs import _child_main; _child_main(sys.argv[2:])")


def _lower_priority(how: str) -> str:
    """Make this process background work, so that the server and the browsers come first -> what was set.

    "idle": Linux SCHED_IDLE, it runs only on CPU time nobody else wants (measured: the sliders of a
    2-core server slow down far less than with nice 10); "low": nice 10; "normal": unchanged.
    """
    if how == "idle" and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "idle"
        except OSError:
            pass
    if how in ("idle", "low"):
        try:
            os.nice(10)
            return "low"
        except (AttributeError, OSError):
            pass
    return "normal"


class BusyYield:
    """Pause a background loop between steps while other processes keep the machine's CPUs busy.

    Idle scheduling priority decides who gets a free core, but on a small machine whose cores share
    caches and execution units (SMT siblings), a trainer running beside a busy server still slows every
    rerun. ``wait()`` compares the whole machine's busy CPU time (``/proc/stat``) minus this process's own
    over the last ``window`` seconds; while others used more than ``threshold`` cores it sleeps in steps
    of ``window``, at most ``max_pause`` seconds per call, so training always progresses. Linux only: on
    other systems (no ``/proc/stat``) it never pauses.
    """

    def __init__(self, threshold: float = 0.4, window: float = 0.05, max_pause: float = 0.5) -> None:
        self.threshold, self.window, self.max_pause = threshold, window, max_pause
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.paused_s = 0.0  # total time spent paused
        self.last = self._sample()

    def _sample(self) -> tuple[float, float] | None:
        """(monotonic time, CPU seconds used by other processes since boot), or None off Linux."""
        try:
            with open("/proc/stat", "rb") as f:
                vals = [int(v) for v in f.readline().split()[1:8]]
        except (OSError, ValueError):
            return None
        busy = sum(vals) - vals[3] - vals[4]  # all but idle and iowait
        own = os.times()
        return time.monotonic(), busy / self.hz - (own.user + own.system)

    def _others_busy(self) -> float | None:
        """Cores used by other processes since the last sample (None if too soon to tell); advances the sample."""
        now = self._sample()
        if now is None or self.last is None:
            self.last = now
            return None
        dt = now[0] - self.last[0]
        if dt < self.window / 2:  # too short to tell from 10 ms clock ticks
            return None
        cores = (now[1] - self.last[1]) / dt
        self.last = now
        return cores

    def wait(self) -> float:
        """Sleep while others are busy (up to max_pause) -> seconds slept."""
        slept = 0.0
        busy = self._others_busy()
        while busy is not None and busy > self.threshold and slept < self.max_pause:
            time.sleep(self.window)
            slept += self.window
            busy = self._others_busy()
        self.paused_s += slept
        return slept


def _child_main(argv: list[str]) -> None:
    """Entry of the training process: argv = [progress fd, stop fd, JSON spec]; never returns."""
    conn = mpc.Connection(int(argv[0]), readable=False)
    stop = mpc.Connection(int(argv[1]), writable=False)
    spec = json.loads(argv[2])
    _worker(conn, stop, spec["model_config"], spec["train_config"], spec["out_path"], spec["data_dir"])


def _worker(conn, stop, model_cfg: dict, train_cfg: dict, out_path: str, data_dir: str | None) -> None:
    """Child process: train, sample, save; every event goes to ``conn`` as (kind, dict).

    ``stop`` is the read end of the stop pipe: readable (a byte, or EOF because the server died)
    means stop.
    """
    _lower_priority(os.environ.get(PRIORITY_ENV, "idle"))
    import torch

    torch.set_num_threads(1)  # the server keeps the other core(s)
    from .checkpoints import CheckpointError
    from .data import DataError
    from .train import TrainingCancelled, train_and_save

    def send(kind: str, **data) -> None:
        try:
            conn.send((kind, data))
        except (BrokenPipeError, OSError):
            pass  # the server is gone; should_stop() ends the run

    def should_stop() -> bool:
        try:
            return stop.poll(0)  # cancelled, or EOF: the server is gone
        except OSError:
            return True

    state = {"model": None, "t0": None, "last": 0.0, "z": None, "y": None}

    def on_model(model) -> None:
        state["model"] = model
        state["t0"] = time.perf_counter()
        send("phase", phase="training")

    @torch.no_grad()
    def samples() -> np.ndarray | None:
        model = state["model"]
        if model is None:
            return None
        dev = next(model.parameters()).device
        y = None if state["y"] is None else state["y"].to(dev)
        x = model.decode(state["z"].to(dev), y)[:, 0].clamp(0, 1).cpu().numpy()
        return (x * 255 + 0.5).astype(np.uint8)

    yielder = BusyYield() if os.environ.get(YIELD_ENV, "1") != "0" else None

    def on_batch(step: int, total: int) -> None:
        if yielder is not None:
            yielder.wait()  # before the next batch: the server's reruns (and any browsers here) come first
        t = time.perf_counter()
        if t - state["last"] >= 0.25 or step == total:
            state["last"] = t
            elapsed = t - (state["t0"] or t)
            eta = elapsed / step * (total - step) if step else None
            send("progress", step=step, total=total, eta_s=eta,
                 paused_s=yielder.paused_s if yielder is not None else 0.0)

    def on_epoch(report) -> None:
        send("epoch", report={k: (float(v) if isinstance(v, float) else v) for k, v in report.as_dict().items()},
             samples=samples())

    def on_status(msg: str) -> None:
        send("status", message=msg, phase="evaluating" if msg.startswith("evaluating") else None)

    try:
        mc = ModelConfig.from_dict(model_cfg)
        tc = TrainConfig(**train_cfg)
        # the same prior codes every epoch, so the grid shows the decoder learning
        state["z"] = torch.randn(N_SAMPLES, mc.latent_dim, generator=torch.Generator().manual_seed(1234))
        state["y"] = torch.arange(N_SAMPLES) % mc.num_classes if mc.conditional else None
        send("phase", phase="loading data")
        path, meta = train_and_save(mc, tc, out_path, data_dir=data_dir, on_epoch=on_epoch,
                                    should_stop=should_stop, on_batch=on_batch, on_status=on_status,
                                    on_model=on_model)
        send("done", checkpoint=str(path), metrics=meta.get("metrics", {}),
             seconds=meta.get("train", {}).get("seconds"), data_source=meta.get("train", {}).get("data_source"))
    except TrainingCancelled as e:
        send("cancelled", message=str(e))
    except DataError as e:
        send("failed", error=f"no training data: {e}")
    except CheckpointError as e:
        send("failed", error=f"cannot save the checkpoint: {e}")
    except OSError as e:  # mkdir / temp file / write / rename of the checkpoint
        send("failed", error=f"cannot save the checkpoint to {out_path}: {e.strerror or e}"
             + (f" ({e.filename})" if getattr(e, "filename", None) else ""))
    except (ConfigError, FloatingPointError, ValueError) as e:
        send("failed", error=str(e))
    except BaseException as e:  # noqa: BLE001 - report anything, the server must learn about it
        traceback.print_exc()
        send("failed", error=f"{type(e).__name__}: {e}")
    finally:
        try:
            conn.close()
        except OSError:
            pass
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        # Skip the interpreter's slow teardown of torch (seconds): everything is saved and fsynced.
        os._exit(0)


# classes


@dataclass
class Job:
    """One training run and what is known about it; only the manager mutates it."""

    id: str
    name: str
    owner: str
    checkpoint_path: str  # where the checkpoint will be (or was) saved
    model_config: dict
    train_config: dict
    epochs: int
    started_at: float
    state: str = "running"
    phase: str = "starting"  # starting, loading data, training, evaluating, finished
    finished_at: float | None = None
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    eta_s: float | None = None
    paused_s: float = 0.0  # time the trainer paused for other work on the machine (BusyYield)
    history: list[dict] = field(default_factory=list)
    samples: np.ndarray | None = None  # (16, 28, 28) uint8 prior samples after the last epoch
    samples_epoch: int = 0
    message: str = ""
    messages: list[str] = field(default_factory=list)
    error: str | None = None
    metrics: dict | None = None
    data_source: str | None = None
    server_pid: int = 0
    child_pid: int | None = None
    updated_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def progress(self) -> float:
        """Fraction of training steps done, 0..1 (1 once training is over)."""
        if self.state == "done" or self.phase in ("evaluating", "finished"):
            return 1.0
        if self.total_steps:
            return min(1.0, self.step / self.total_steps)
        return min(1.0, self.epoch / max(1, self.epochs))

    def snapshot(self) -> dict:
        """Plain values for the UI (lists are copies; ``samples`` is never mutated, only replaced)."""
        end = self.finished_at or _now()
        return {
            "state": self.state, "id": self.id, "name": self.name, "owner": self.owner,
            "checkpoint": self.checkpoint_path, "phase": self.phase,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "elapsed_s": max(0.0, end - self.started_at),
            "epoch": self.epoch, "epochs": self.epochs, "step": self.step, "total_steps": self.total_steps,
            "progress": self.progress(), "eta_s": self.eta_s if self.active else None, "paused_s": self.paused_s,
            "history": [dict(h) for h in self.history], "samples": self.samples, "samples_epoch": self.samples_epoch,
            "message": self.message, "messages": list(self.messages[-20:]), "error": self.error,
            "metrics": dict(self.metrics) if self.metrics else None, "data_source": self.data_source,
            "model_config": dict(self.model_config), "train_config": dict(self.train_config),
        }

    def record(self) -> dict:
        """What goes into the JSON record (no images)."""
        d = {k: v for k, v in self.snapshot().items() if k not in ("samples", "messages")}
        d.update(server_pid=self.server_pid, child_pid=self.child_pid, updated_at=_now())
        return d

    @classmethod
    def from_record(cls, d: dict) -> "Job":
        return cls(id=str(d.get("id", "?")), name=str(d.get("name", "?")), owner=str(d.get("owner", "?")),
                   checkpoint_path=str(d.get("checkpoint", "")), model_config=dict(d.get("model_config") or {}),
                   train_config=dict(d.get("train_config") or {}), epochs=int(d.get("epochs") or 0),
                   started_at=float(d.get("started_at") or 0.0), state=str(d.get("state", "failed")),
                   phase=str(d.get("phase", "")), finished_at=d.get("finished_at"), epoch=int(d.get("epoch") or 0),
                   step=int(d.get("step") or 0), total_steps=int(d.get("total_steps") or 0),
                   history=list(d.get("history") or []), message=str(d.get("message") or ""),
                   error=d.get("error"), metrics=d.get("metrics"), data_source=d.get("data_source"),
                   server_pid=int(d.get("server_pid") or 0), child_pid=d.get("child_pid"),
                   updated_at=float(d.get("updated_at") or 0.0))


IDLE_SNAPSHOT = {k: None for k in Job("", "", "", "", {}, {}, 0, 0.0).snapshot()}
IDLE_SNAPSHOT.update(state="idle", history=[], messages=[], progress=0.0, epoch=0, epochs=0, step=0,
                     total_steps=0, samples_epoch=0, message="", elapsed_s=0.0, model_config={}, train_config={})

# One job per server process, whichever folder it saves into.
_LOCK = threading.RLock()
_ACTIVE: Job | None = None  # the running job, whichever manager started it
_MANAGERS: dict[str, "JobManager"] = {}


class JobManager:
    """Starts, watches and cancels the training job of one checkpoints folder."""

    def __init__(self, checkpoint_dir: str | os.PathLike) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.user_dir = self.checkpoint_dir / USER_SUBDIR
        self.record_path = self.user_dir / RECORD_NAME
        self._job: Job | None = None
        self._proc: subprocess.Popen | None = None
        self._stop_fds: dict[str, int] = {}  # job id -> write end of its stop pipe, until its child ended
        self._record_lock = threading.Lock()
        self._monitor: threading.Thread | None = None
        self._cancel_requested = False
        self._recover()

    # -- the record of the previous server

    def _recover(self) -> None:
        """Read the last job's record; a job that was running when its server died is marked failed."""
        try:
            d = json.loads(self.record_path.read_text())
            job = Job.from_record(d)
        except FileNotFoundError:
            job = None
        except (OSError, ValueError, TypeError, AttributeError) as e:
            log.warning("ignoring unreadable job record %s: %s", self.record_path, e)
            job = None
        if job is not None and job.state in ACTIVE_STATES:
            other_server = (job.server_pid != os.getpid() and _pid_alive(job.server_pid)
                            and _now() - job.updated_at < STALE_RECORD_S)
            if other_server:
                log.warning("job record %s: a job is running in another server process (pid %s)",
                            self.record_path, job.server_pid)
            else:
                job.state = "failed"
                job.finished_at = job.updated_at or _now()
                job.error = f"{SERVER_DIED} (at epoch {job.epoch}/{job.epochs}); nothing was saved"
                job.message = job.error
                job.phase = "finished"
                # an orphaned child sees its stop pipe close with the old server and stops by itself
                _remove_temp_files(self.user_dir, job.name, since=job.started_at - 1)
                self._job = job
                self._write_record(job)
        self._job = job
        _remove_temp_files(self.user_dir, older_than=STALE_TMP_S)

    def _write_record(self, job: Job) -> None:
        """Persist ``job`` as the folder's record (only the current job: an older one never overwrites it)."""
        with self._record_lock:
            if job is not self._job:
                return
            try:
                self.user_dir.mkdir(parents=True, exist_ok=True)
                _write_json_atomic(self.record_path, job.record())
            except OSError as e:
                log.warning("cannot write the job record %s: %s", self.record_path, e)

    # -- public API

    @property
    def job(self) -> Job | None:
        """The current or last job of this folder (None if there never was one)."""
        return self._job

    def snapshot(self) -> dict:
        """The current or last job as plain values; state 'idle' if there is none."""
        with _LOCK:
            job = self._job
            if job is None:
                return dict(IDLE_SNAPSHOT)
            return job.snapshot()

    def is_running(self) -> bool:
        with _LOCK:
            return self._job is not None and self._job.active

    def checkpoint_path(self, name: str) -> Path:
        """Where a job called ``name`` saves: <checkpoint_dir>/user/<safe name>.safetensors."""
        from .checkpoints import CheckpointError, safe_name

        try:
            stem = safe_name(name)
        except CheckpointError as e:
            raise ConfigError("name", str(e)) from e
        return self.user_dir / f"{stem}{SUFFIX}"

    def check_name(self, name: str) -> Path:
        """The target path for ``name``; ConfigError('name') if unusable or any checkpoint has that name."""
        path = self.checkpoint_path(name)
        taken = [p for p in (self.checkpoint_dir / path.name, path) if p.exists()]
        if taken:
            raise ConfigError("name", f"a checkpoint called '{path.stem}' already exists ({taken[0]}); "
                                      f"choose another name")
        return path

    def start(self, model_cfg: ModelConfig, train_cfg: TrainConfig, name: str, owner: str, *,
              data_dir: str | os.PathLike | None = None) -> Job:
        """Start training in a child process; JobRefused if a job runs, ConfigError for bad settings or name."""
        global _ACTIVE
        model_cfg.validate()
        train_cfg.validate()
        owner = " ".join(str(owner or "").split())[:40] or "anonymous"
        with _LOCK:
            if _ACTIVE is not None and _ACTIVE.active:
                raise JobRefused(f"a training job is already running: {describe(_ACTIVE.snapshot())}. "
                                 f"Wait for it to finish (or ask them to cancel it).")
            self._refuse_if_other_server()
            path = self.check_name(name)
            try:
                self.user_dir.mkdir(parents=True, exist_ok=True)
                probe = self.user_dir / f".write-probe.{os.getpid()}.tmp"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as e:
                raise JobRefused(f"cannot save checkpoints into {self.user_dir}: {e.strerror or e}") from e
            extra = {**train_cfg.extra, "trained_by": owner, "trained_with": "VAE Explorer training job"}
            train_cfg = replace(train_cfg, extra=extra)
            job = Job(id=uuid.uuid4().hex[:12], name=path.stem, owner=owner, checkpoint_path=str(path),
                      model_config=model_cfg.to_dict(), train_config=train_cfg.to_dict(),
                      epochs=train_cfg.epochs, started_at=_now(), server_pid=os.getpid(),
                      message="starting the training process ...")
            proc, recv, stop_fd = self._spawn(job, data_dir)
            job.child_pid = proc.pid
            self._job, self._proc, self._cancel_requested = job, proc, False
            self._stop_fds[job.id] = stop_fd
            _ACTIVE = job
            self._write_record(job)
            self._monitor = threading.Thread(target=self._watch, args=(job, proc, recv), daemon=True,
                                             name=f"vae-train-monitor-{job.id}")
            self._monitor.start()
            return job

    @staticmethod
    def _spawn(job: Job, data_dir) -> tuple[subprocess.Popen, mpc.Connection, int]:
        """Start the child -> (process, read end of its progress pipe, write end of its stop pipe)."""
        prog_r, prog_w = os.pipe()
        stop_r, stop_w = os.pipe()
        spec = {"model_config": job.model_config, "train_config": job.train_config,
                "out_path": job.checkpoint_path, "data_dir": None if data_dir is None else str(data_dir)}
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        try:
            proc = subprocess.Popen([sys.executable, "-c", CHILD_CODE, str(ROOT), str(prog_w), str(stop_r),
                                     json.dumps(spec)], pass_fds=(prog_w, stop_r), env=env, stdin=subprocess.DEVNULL)
        except OSError as e:
            for fd in (prog_r, prog_w, stop_r, stop_w):
                os.close(fd)
            raise JobRefused(f"cannot start the training process: {e}") from e
        os.close(prog_w)  # the child holds the only write end: EOF when it exits
        os.close(stop_r)
        return proc, mpc.Connection(prog_r, writable=False), stop_w

    def cancel(self, timeout: float = 1.0) -> dict:
        """Stop the running job (within ``timeout`` s, else kill it); nothing is saved. -> snapshot."""
        with _LOCK:
            job, proc, monitor = self._job, self._proc, self._monitor
            if job is None or not job.active or proc is None:
                return self.snapshot()
            self._cancel_requested = True
            job.state = "cancelling"
            job.message = "cancelling ..."
            stop_fd = self._stop_fds.get(job.id)
            if stop_fd is not None:
                try:
                    os.write(stop_fd, b"x")
                except OSError:
                    pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("training process %s did not stop within %.1f s; terminating it", proc.pid, timeout)
            proc.terminate()
            try:
                proc.wait(0.5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(1.0)
        if monitor is not None:
            monitor.join(2.0)
        return self.snapshot()

    def wait(self, timeout: float | None = None) -> dict:
        """Block until the job ends (or ``timeout`` s pass) -> snapshot."""
        monitor = self._monitor
        if monitor is not None:
            monitor.join(timeout)
        return self.snapshot()

    # -- internals

    def _refuse_if_other_server(self) -> None:
        job = self._job
        if job is not None and job.active and job.server_pid != os.getpid():
            raise JobRefused(f"a training job is running in another server process (pid {job.server_pid}): "
                             f"{describe(job.snapshot())}")

    def _apply(self, job: Job, kind: str, data: dict) -> None:
        """One message from the child -> the job's fields (called with _LOCK held)."""
        if kind in ("done", "failed", "cancelled"):
            job.finished_at = _now()
            job.eta_s = None
        if kind == "phase":
            job.phase = data["phase"]
            job.message = f"{data['phase']} ..."
        elif kind == "status":
            job.message = data["message"]
            job.messages.append(data["message"])
            if data.get("phase"):
                job.phase = data["phase"]
                job.eta_s = None
            if data["message"].startswith("training data: "):
                job.data_source = data["message"][len("training data: "):]
        elif kind == "progress":
            job.step, job.total_steps, job.eta_s = data["step"], data["total"], data["eta_s"]
            job.paused_s = float(data.get("paused_s") or 0.0)
        elif kind == "epoch":
            r = data["report"]
            job.epoch = int(r["epoch"])
            job.history.append(r)
            if data.get("samples") is not None:
                job.samples = np.asarray(data["samples"], dtype=np.uint8)
                job.samples_epoch = job.epoch
            test = f", test {r['test_loss']:.1f}" if r.get("test_loss") is not None else ""
            job.message = f"epoch {job.epoch}/{job.epochs}: -ELBO {r['train_loss']:.1f} nats{test}"
        elif kind == "done":
            job.state, job.phase = "done", "finished"
            job.checkpoint_path = data["checkpoint"]
            job.metrics = data.get("metrics") or {}
            job.data_source = data.get("data_source") or job.data_source
            m = job.metrics
            job.message = (f"saved '{job.name}': test -ELBO {m['test_elbo']:.1f} nats, "
                           f"-log p(x) {m['test_nll']:.1f} nats" if "test_nll" in m else f"saved '{job.name}'")
        elif kind == "cancelled":
            job.state, job.phase = "cancelled", "finished"
            job.message = f"cancelled by request ({data.get('message', '')}); nothing was saved"
        elif kind == "failed":
            job.state, job.phase = "failed", "finished"
            job.error = data["error"]
            job.message = f"failed: {data['error']}"

    def _watch(self, job: Job, proc, conn) -> None:
        """Monitor thread: apply the child's messages until it ends, then settle the job's final state."""
        global _ACTIVE
        last_record = _now()
        try:
            while True:
                if conn.poll(1.0):
                    try:
                        kind, data = conn.recv()
                    except (EOFError, OSError, ValueError, TypeError, AttributeError, ImportError,
                            pickle.UnpicklingError):
                        break  # the child is gone (EOF, or killed in the middle of a message)
                    with _LOCK:
                        self._apply(job, kind, data)
                    if kind in ("epoch", "done", "failed", "cancelled"):
                        self._write_record(job)
                        last_record = _now()
                if _now() - last_record > HEARTBEAT_S:
                    self._write_record(job)
                    last_record = _now()
        finally:
            conn.close()
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(1.0)
            with _LOCK:
                stop_fd = self._stop_fds.pop(job.id, None)
                if stop_fd is not None:
                    os.close(stop_fd)
            self._settle(job, proc)
            with _LOCK:
                if _ACTIVE is job:
                    _ACTIVE = None

    def _settle(self, job: Job, proc) -> None:
        """After the child exited: final state, no stray files, record written."""
        with _LOCK:
            path = Path(job.checkpoint_path)
            if job.state in ACTIVE_STATES:
                if path.exists():  # saved, but died before it could say so
                    try:
                        from .checkpoints import read_meta

                        job.metrics = read_meta(path).get("metrics", {})
                        job.state, job.message = "done", f"saved '{job.name}'"
                    except Exception as e:  # noqa: BLE001
                        job.state, job.error = "failed", f"the saved checkpoint is unusable: {e}"
                elif self._cancel_requested:
                    job.state, job.message = "cancelled", "cancelled by request; nothing was saved"
                else:
                    code = proc.returncode
                    job.state = "failed"
                    job.error = (f"the training process exited unexpectedly (exit code {code}"
                                 f"{', killed by signal ' + str(-code) if code is not None and code < 0 else ''})"
                                 "; nothing was saved")
                    job.message = f"failed: {job.error}"
            job.phase = "finished"
            job.eta_s = None
            job.finished_at = job.finished_at or _now()
            if job.state != "done":  # a child killed mid-write leaves only temp files: remove them
                _remove_temp_files(path.parent, path.stem, since=job.started_at - 1)
        self._write_record(job)


def get_manager(checkpoint_dir: str | os.PathLike) -> JobManager:
    """The process-wide manager of a checkpoints folder (created, and its record read, on first use)."""
    key = str(Path(checkpoint_dir).resolve())
    with _LOCK:
        if key not in _MANAGERS:
            _MANAGERS[key] = JobManager(checkpoint_dir)
        return _MANAGERS[key]
