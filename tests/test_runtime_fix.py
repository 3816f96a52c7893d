"""explorer.ui.runtime_fix: a rerun request waits until a finished ScriptRunner's queued events are handled."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType

from explorer.ui import runtime_fix


def _run(scenario) -> None:
    """asyncio.run(scenario()) in a thread of its own (the browser tests' playwright keeps a loop running in
    this one); its exception, if any, is raised here."""
    errors: list[BaseException] = []

    def target():
        try:
            asyncio.run(scenario())
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            errors.append(e)

    t = threading.Thread(target=target)
    t.start()
    t.join(30)
    if errors:
        raise errors[0]


def _runner(state: ScriptRequestType):
    return SimpleNamespace(_requests=SimpleNamespace(_state=state))


def _session(runner):
    return SimpleNamespace(_scriptrunner=runner)


def test_a_request_waits_for_the_finished_runners_events_then_goes_through():
    calls: list[tuple[str, object]] = []

    def original(session, client_state):
        calls.append(("request", client_state, session._scriptrunner))

    patched = runtime_fix.deferring(original)
    session = _session(_runner(ScriptRequestType.STOP))

    async def scenario():
        loop = asyncio.get_running_loop()
        # the old runner's events, queued on the loop before the request arrives; the last is its shutdown
        loop.call_soon(calls.append, ("delta", None, None))
        loop.call_soon(lambda: (calls.append(("shutdown", None, None)), setattr(session, "_scriptrunner", None)))
        patched(session, "cs")
        assert calls == [], "the request went through before the events queued ahead of it"
        await asyncio.sleep(0.05)

    _run(scenario)
    assert [c[0] for c in calls] == ["delta", "shutdown", "request"]
    assert calls[-1][1] == "cs" and calls[-1][2] is None  # the session had let go of the old runner


def test_a_runner_that_still_takes_requests_gets_them_at_once():
    calls = []
    patched = runtime_fix.deferring(lambda session, cs: calls.append(cs))

    async def scenario():
        for state in (ScriptRequestType.CONTINUE, ScriptRequestType.RERUN):
            patched(_session(_runner(state)), state)
        patched(_session(None), "no runner")

    _run(scenario)
    assert calls == [ScriptRequestType.CONTINUE, ScriptRequestType.RERUN, "no runner"]


def test_a_shutdown_that_never_comes_delays_the_request_by_a_bounded_time(monkeypatch):
    monkeypatch.setattr(runtime_fix, "MAX_WAIT_S", 0.05)
    calls = []
    patched = runtime_fix.deferring(lambda session, cs: calls.append(cs))

    async def scenario():
        patched(_session(_runner(ScriptRequestType.STOP)), "late")
        await asyncio.sleep(0.02)
        assert calls == []
        await asyncio.sleep(0.2)

    _run(scenario)
    assert calls == ["late"]


def test_install_patches_streamlit_once(monkeypatch):
    from streamlit.runtime.app_session import AppSession

    monkeypatch.setattr(AppSession, "request_rerun", AppSession.request_rerun)  # restored after the test
    monkeypatch.setattr(runtime_fix, "_installed", False)
    original = AppSession.request_rerun
    assert runtime_fix.install() and runtime_fix.install()
    assert AppSession.request_rerun is not original
    assert AppSession.request_rerun.__wrapped__ is original  # wrapped once, not twice
