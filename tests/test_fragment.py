"""explorer.ui.common.fragment: every fragment call sits alone in a container drawn by the full run.

Why (see the docstring of ``fragment``): when a fragment run drops the unsent messages of the full run
before it, the browser removes the fragment's old container; a fragment that is the only child of its
parent then re-appears at index 0, which is always a valid place, and shifts no sibling.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _app() -> None:
    import streamlit as st

    from explorer.ui.common import fragment

    st.session_state.setdefault("full_runs", 0)
    st.session_state["full_runs"] += 1

    @fragment
    def counter(step: int) -> int:
        st.session_state.setdefault("fragment_runs", 0)
        st.session_state["fragment_runs"] += 1
        n = st.number_input("n", value=0, step=step, key="n")
        st.markdown(f"n is {n}")
        return n

    st.markdown("before")
    got = counter(2)
    st.markdown(f"after; the call returned {got}")


def _blocks(node) -> list:
    return [c for c in node.children.values() if type(c).__name__ == "Block"]


def test_fragment_sits_alone_in_its_own_container_between_its_siblings():
    at = AppTest.from_function(_app).run()
    assert not at.exception
    kids = list(at.main.children.values())
    assert [type(k).__name__ for k in kids] == ["Markdown", "Block", "Markdown"]
    outer = kids[1]
    assert len(outer.children) == 1, "the fragment's container must be the only child of the outer one"
    inner = _blocks(outer)[0]
    assert [type(c).__name__ for c in inner.children.values()] == ["NumberInput", "Markdown"]
    assert kids[2].value == "after; the call returned 0"  # the wrapper passes the return value through


def test_fragment_keeps_its_place_after_an_interaction():
    # (AppTest reruns the whole script on an interaction; the browser tests cover fragment-only reruns)
    at = AppTest.from_function(_app).run()
    at.number_input(key="n").increment().run()
    assert at.session_state["fragment_runs"] == 2
    kids = list(at.main.children.values())
    assert [type(k).__name__ for k in kids] == ["Markdown", "Block", "Markdown"]
    inner = _blocks(kids[1])[0]
    assert inner.children[1].value == "n is 2"
    assert kids[0].value == "before"


def test_no_panel_uses_a_bare_st_fragment():
    # a bare st.fragment next to siblings brings the white-page race back (see explorer.ui.common.fragment)
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sources = [root / "app.py", *(root / "explorer" / "ui").rglob("*.py")]
    bare = [f"{p.relative_to(root)}:{n}" for p in sources if p.name != "common.py"
            for n, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r"@st\.fragment\b|st\.fragment\(", line) and not line.lstrip().startswith("#")]
    assert bare == [], f"use explorer.ui.common.fragment instead of st.fragment: {bare}"
