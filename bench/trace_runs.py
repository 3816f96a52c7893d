"""A trace of every script run of a Streamlit server, for ``bench/load.py --trace`` (debugging lost actions).

Imported by the wrapper script that load.py writes; patches a few Streamlit internals (1.67) to append
one JSON line per event to ``$VAE_EXPLORER_TRACE``:

- ``start``: a run starts (``frags``: the fragment ids it runs, [] for a full run; ``auto``: a run_every poll),
- ``end``: it finished (``event``: success / fragment success / stopped for a rerun),
- ``drop``: unsent messages dropped from the session's queue when a run started (``frag_deltas``: how many
  of them were deltas of the fragments about to run, ``finished_kept``: whether a "finished successfully" of
  the previous full run stayed in the queue: the Streamlit race that ``explorer.ui.common.fragment`` guards),
- ``missing``: a rerun asked for a fragment the server no longer has (the request is dropped),
- ``runner``: the session starts a new ScriptRunner (``frag``: for a fragment run, ``old_alive``: the
  previous runner's thread still running; ``held``: explorer.ui.runtime_fix's counters so far),
- ``ignored``: an event of a previous ScriptRunner reached the session after a new one took over, and was
  dropped (``event``, ``msg``: the forward message's type, e.g. a delta or script_finished).

Each line names the page by its ``bench`` query parameter (load.py adds ``&bench=<session>`` to each URL).
Nothing here is imported by the app itself.
"""

from __future__ import annotations

import json
import os
import threading
import time
from urllib.parse import parse_qs

from streamlit.runtime import app_session
from streamlit.runtime import forward_msg_queue as fmq
from streamlit.runtime import fragment as fragment_mod
from streamlit.runtime.scriptrunner import script_runner as sr
from streamlit.runtime.scriptrunner_utils import script_run_context as src

PATH = os.environ.get("VAE_EXPLORER_TRACE")
_lock = threading.Lock()
_page: dict[str, str] = {}  # session id -> bench page


def log(**kw) -> None:
    if not PATH:
        return
    kw["t"] = round(time.time(), 3)
    with _lock, open(PATH, "a") as f:
        f.write(json.dumps(kw) + "\n")


def _who() -> tuple[str | None, str | None]:
    ctx = src.get_script_run_ctx()
    if ctx is None:
        return None, None
    return ctx.session_id[:8], _page.get(ctx.session_id)


def install() -> None:
    reset = src.ScriptRunContext.reset

    def traced_reset(self, query_string: str = "", *args, **kwargs):
        page = parse_qs(query_string).get("bench", [None])[0]
        if page is not None:
            _page[self.session_id] = page
        reset(self, query_string, *args, **kwargs)
        log(ev="start", sid=self.session_id[:8], page=_page.get(self.session_id),
            frags=[f[:8] for f in (self.fragment_ids_this_run or [])])

    src.ScriptRunContext.reset = traced_reset

    finished = sr.ScriptRunner._on_script_finished

    def traced_finished(self, ctx, event, premature_stop, run_descriptor):
        log(ev="end", sid=ctx.session_id[:8], page=_page.get(ctx.session_id), event=event.name,
            frags=[f[:8] for f in (ctx.fragment_ids_this_run or [])])
        return finished(self, ctx, event, premature_stop, run_descriptor)

    sr.ScriptRunner._on_script_finished = traced_finished

    clear = fmq.ForwardMsgQueue.clear

    def traced_clear(self, retain_lifecycle_msgs: bool = False, fragment_ids_this_run=None):
        if retain_lifecycle_msgs and self._queue:
            frags = set(fragment_ids_this_run or [])
            frag_deltas = sum(1 for m in self._queue if m.WhichOneof("type") == "delta"
                              and m.delta.fragment_id in frags)
            finished_ok = any(m.WhichOneof("type") == "script_finished"
                              and m.script_finished == m.ScriptFinishedStatus.FINISHED_SUCCESSFULLY
                              for m in self._queue)
            sid, page = _who()
            log(ev="drop", sid=sid, page=page, queued=len(self._queue), frag_deltas=frag_deltas,
                finished_kept=bool(finished_ok and fragment_ids_this_run),
                frags=[f[:8] for f in frags])
        return clear(self, retain_lifecycle_msgs, fragment_ids_this_run)

    fmq.ForwardMsgQueue.clear = traced_clear

    lookup = fragment_mod.MemoryFragmentStorage.lookup

    def traced_lookup(self, key):
        try:
            return lookup(self, key)
        except fragment_mod.FragmentStorageKeyError:
            sid, page = _who()
            log(ev="missing", sid=sid, page=page, frag=key[:8])
            raise

    fragment_mod.MemoryFragmentStorage.lookup = traced_lookup

    create = app_session.AppSession._create_scriptrunner

    def traced_create(self, initial_rerun_data):
        old = self._scriptrunner
        thread = getattr(old, "_script_thread", None)
        from explorer.ui import runtime_fix  # its counters so far (requests it held back, longest wait)

        log(ev="runner", sid=self.id[:8], page=_page.get(self.id), frag=bool(initial_rerun_data.fragment_id),
            old_alive=bool(thread and thread.is_alive()), held=dict(runtime_fix.stats))
        return create(self, initial_rerun_data)

    app_session.AppSession._create_scriptrunner = traced_create

    handle = app_session.AppSession._handle_scriptrunner_event_on_event_loop

    def traced_handle(self, sender, event, forward_msg=None, *args, **kwargs):
        if sender is not self._scriptrunner:
            log(ev="ignored", sid=self.id[:8], page=_page.get(self.id), event=event.name,
                msg=forward_msg.WhichOneof("type") if forward_msg is not None else None)
        return handle(self, sender, event, forward_msg, *args, **kwargs)

    app_session.AppSession._handle_scriptrunner_event_on_event_loop = traced_handle


def summary(path) -> dict:
    """Counts from a trace file: runs, fragment runs, new runners, ignored events (deltas among them), races
    where a fragment run dropped a full run's unsent deltas of that fragment but kept its "finished"."""
    counts = {"runs": 0, "fragment_runs": 0, "runners": 0, "ignored_events": 0, "ignored_deltas": 0,
              "dropped_fragment_deltas_with_finished_kept": 0, "missing_fragments": 0}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return counts
    for line in lines:
        d = json.loads(line)
        ev = d["ev"]
        if ev == "start":
            counts["runs"] += 1
            counts["fragment_runs"] += bool(d["frags"])
        elif ev == "runner":
            counts["runners"] += 1
            counts.update({f"held_{k}": v for k, v in d.get("held", {}).items()})
        elif ev == "ignored":
            counts["ignored_events"] += 1
            counts["ignored_deltas"] += d.get("msg") == "delta"
        elif ev == "drop" and d["frag_deltas"] and d["finished_kept"]:
            counts["dropped_fragment_deltas_with_finished_kept"] += 1
        elif ev == "missing":
            counts["missing_fragments"] += 1
    return counts
