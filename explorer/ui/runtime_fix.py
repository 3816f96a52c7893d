"""A workaround for a Streamlit race (seen in 1.67) that drops a finished run's output under load.

A session's ScriptRunner thread runs one script run (or a chain of them) and ends; its messages (each
delta, "finished", and last "shutdown") reach the session through the server's event loop, a little
later. If a rerun request (a training-status poll, a click in a fragment) arrives in between, the session
finds the runner finished, starts a new one, and then *ignores* every event still queued from the old one
("Ignoring event from non-current ScriptRunner"). The old run's output never reaches the browser: a slider
move that never shows its digit, a tab left half drawn. On a busy server the event loop lags and this
happened to 3-5 of ~130 actions with 20 pages open (``bench/load.py --trace``: hundreds of dropped deltas
a minute).

The fix: while the session still holds a finished runner (its "shutdown" event, always its last, has not
been handled yet), handle the request a moment later, after the events already queued (at most
``MAX_WAIT_S`` later; a warning in the log says when that bound was hit). Once the
shutdown is handled the session lets go of the runner and the request goes through as before.
``install()`` patches ``AppSession.request_rerun`` once per process; if this Streamlit lacks the internals
it relies on, it changes nothing and says so in the log.
"""

from __future__ import annotations

import asyncio
import logging
import time

_LOG = logging.getLogger(__name__)
# Never hold a request longer than this (a runner whose shutdown never comes). Generous: on a starved
# server the event loop can lag by seconds (a 2 s bound gave way during a burst of 20 pages at once).
MAX_WAIT_S = 30.0
GAVE_UP = "a rerun request waited %.1f s for a finished ScriptRunner's shutdown; sending it anyway"
RETRY_S = 0.002
_installed = False
stats = {"deferred": 0, "max_wait_s": 0.0, "gave_up": 0}  # for bench/trace_runs.py


def _finished(runner) -> bool:
    """True if ``runner`` has run its last script (it would refuse a rerun request)."""
    from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType

    return runner._requests._state == ScriptRequestType.STOP


def deferring(original):
    """``AppSession.request_rerun`` that waits for a finished runner's queued events to land first."""

    def request_rerun(self, client_state, _since: float | None = None) -> None:
        runner = self._scriptrunner
        since = time.monotonic() if _since is None else _since
        waited = time.monotonic() - since
        if runner is not None and _finished(runner) and waited >= MAX_WAIT_S:
            _LOG.warning(GAVE_UP, waited)
            stats["gave_up"] += 1
        elif runner is not None and _finished(runner):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on the event loop (no caller does this today): no events to wait for
                return original(self, client_state)
            if _since is None:
                loop.call_soon(request_rerun, self, client_state, since)  # behind the events queued by now
            else:
                loop.call_later(RETRY_S, request_rerun, self, client_state, since)
            return None
        if _since is not None:
            stats["deferred"] += 1
            stats["max_wait_s"] = max(stats["max_wait_s"], round(waited, 3))
        return original(self, client_state)

    request_rerun.__wrapped__ = original
    return request_rerun


def install() -> bool:
    """Patch Streamlit once per process; True if the patch is (now) in place."""
    global _installed
    if _installed:
        return True
    try:
        from streamlit.runtime.app_session import AppSession
        from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequests, ScriptRequestType

        probe = ScriptRequests()
        assert probe._state in ScriptRequestType  # the attribute _finished reads
        assert hasattr(AppSession, "request_rerun") and hasattr(AppSession, "_create_scriptrunner")
    except (ImportError, AttributeError, AssertionError, TypeError) as e:
        _LOG.warning("Streamlit internals changed (%s): not installing the rerun race workaround", e)
        return False
    AppSession.request_rerun = deferring(AppSession.request_rerun)
    _installed = True
    return True
