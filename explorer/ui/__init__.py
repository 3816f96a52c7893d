"""Everything that imports streamlit. Panels are ``render(ctx)`` functions taking a ui.context.Ctx."""

from pathlib import Path

_DECODER_JS = Path(__file__).with_name("decoder.js")


def component_js(module: Path) -> str:
    """A component's ES module: the shared in-page decoder (decoder.js) followed by ``module``'s own code."""
    return _DECODER_JS.read_text() + "\n" + Path(module).read_text()
