"""Bad input of every kind, through the app itself (AppTest): broken checkpoints, hostile links,
unusable uploads, training settings out of range.

Every test checks both halves of "handled": what the user is told (the message names the file,
the field or the value) and that the app carried on (the latent sliders still render, and moving
one still changes st.session_state["z"] and the decoded image).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from PIL import Image
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from explorer import checkpoints, jobs
from explorer.config import ConfigError
from test_app import no_exceptions, run_app, slider_by_dim
from tests.conftest import FIRST_TAB, TABS, open_tab

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints"
DEFAULT = "mnist-z16"

pytestmark = pytest.mark.skipif(not (SHIPPED / f"{DEFAULT}.safetensors").is_file(),
                                reason="needs the shipped mnist-z16 checkpoint")


# helpers


def use_folder(folder: Path, monkeypatch) -> None:
    """Point the app at ``folder`` as its checkpoints folder (it reads the variable on every run)."""
    monkeypatch.setenv("VAE_EXPLORER_CHECKPOINTS", str(folder))


@pytest.fixture
def ckpt_dir(tmp_path, monkeypatch) -> Path:
    """A temp checkpoints folder holding a copy of mnist-z16 and mnist-z2, used by the app."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in (DEFAULT, "mnist-z2"):
        shutil.copy(SHIPPED / f"{name}.safetensors", folder)
    use_folder(folder, monkeypatch)
    return folder


def sidebar_texts(at: AppTest) -> str:
    return " | ".join([w.value for w in at.sidebar.warning] + [e.value for e in at.sidebar.error]
                      + [m.value for m in at.sidebar.markdown] + [c.value for c in at.sidebar.caption])


def digit_url(at: AppTest) -> str:
    """URL of the digit decoded from the sliders (the first image of the page)."""
    return at.image[0].value[0]


def assert_still_works(at: AppTest, dim: int = 16) -> None:
    """No exception; one slider per latent dimension; moving one changes z (only there) and the digit.
    The sliders are on the first tab: another open tab is left for it (only the open tab runs)."""
    no_exceptions(at)
    if at.session_state["tab"] != FIRST_TAB:
        open_tab(at, FIRST_TAB)
        no_exceptions(at)
    assert len([s for s in at.slider if (s.key or "").startswith("zslider_")]) == dim
    before, img = list(at.session_state["z"]), digit_url(at)
    target = -2.5 if before[1] != -2.5 else 2.5
    slider_by_dim(at, 1).set_value(target).run()
    no_exceptions(at)
    after = at.session_state["z"]
    assert after[1] == pytest.approx(target)
    assert after[:1] + after[2:] == before[:1] + before[2:]
    assert digit_url(at) != img


# broken checkpoint files


def tiny_checkpoint(path: Path, hidden=(32,), latent_dim: int = 4) -> Path:
    from explorer.config import ModelConfig
    from explorer.model import VAE

    torch.manual_seed(0)
    return checkpoints.save(VAE(ModelConfig(latent_dim=latent_dim, hidden=hidden)), path)


def raw(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k).clone() for k in f.keys()}, f.metadata()  # clone: not backed by the file


def make_truncated(p: Path) -> None:
    blob = tiny_checkpoint(p).read_bytes()
    p.write_bytes(blob[: len(blob) // 2])


def make_empty(p: Path) -> None:
    p.write_bytes(b"")


def make_other_architecture(p: Path) -> None:
    """mnist-z2's weights under mnist-z16's metadata: the config disagrees with every tensor shape."""
    tensors, _ = raw(SHIPPED / "mnist-z2.safetensors")
    _, metadata = raw(SHIPPED / f"{DEFAULT}.safetensors")
    save_file(tensors, str(p), metadata=metadata)


def make_nan(p: Path) -> None:
    tensors, metadata = raw(tiny_checkpoint(p))
    tensors["decoder.0.weight"][3, 1] = float("nan")
    save_file(tensors, str(p), metadata=metadata)


def make_pickle(p: Path) -> None:
    tensors, _ = raw(tiny_checkpoint(p))
    torch.save(tensors, p)  # a torch pickle (zip) under a .safetensors name


def make_link_out(p: Path) -> None:
    p.symlink_to("/etc/passwd")


BROKEN = {  # case -> (maker, what the listed error must say)
    "truncated": (make_truncated, "truncated"),
    "empty": (make_empty, "empty file"),
    "other-architecture": (make_other_architecture, "has shape"),
    "nan": (make_nan, "NaN"),
    "pickle": (make_pickle, "pickle"),
    "link-to-etc-passwd": (make_link_out, "not a readable safetensors file"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_checkpoint_is_listed_with_its_reason_and_a_link_to_it_falls_back(case, ckpt_dir, monkeypatch):
    make, reason = BROKEN[case]
    bad = f"bad-{case}"
    make(ckpt_dir / f"{bad}.safetensors")
    at = run_app({"ckpt": bad}, ckpt_dir, monkeypatch)  # a shared link to the broken file
    no_exceptions(at)
    said = sidebar_texts(at)
    assert f"{bad!r}, which is not here; showing the default" in said
    assert at.sidebar.expander[0].label.endswith("1 checkpoint file(s) could not be loaded")
    listed = next(m.value for m in at.sidebar.markdown if m.value.startswith(f"**{bad}**"))
    assert reason in listed and f"{bad}.safetensors" in listed
    assert "root:" not in said  # nothing of the linked file is echoed
    assert [o.split()[0] for o in at.selectbox(key="checkpoint").options] == [DEFAULT, "mnist-z2"]
    assert at.session_state["checkpoint"] == DEFAULT
    assert_still_works(at)


@pytest.mark.slow
def test_a_checkpoint_corrupted_while_the_app_runs(ckpt_dir, monkeypatch):
    """The chosen file is overwritten with garbage mid-session: the next run says so and switches model."""
    at = run_app({"ckpt": "mnist-z2"}, ckpt_dir, monkeypatch)
    assert at.session_state["checkpoint"] == "mnist-z2" and len(at.session_state["z"]) == 2
    path = ckpt_dir / "mnist-z2.safetensors"
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 3])  # a non-atomic copy cut short
    from explorer.ui.context import list_checkpoints

    list_checkpoints.clear()  # what the listing's 30 s ttl does
    at.run()
    no_exceptions(at)
    assert at.session_state["checkpoint"] == DEFAULT
    assert any(m.value.startswith("**mnist-z2**") and "truncated" in m.value for m in at.sidebar.markdown)
    assert_still_works(at)


@pytest.mark.slow
def test_a_checkpoint_corrupted_before_the_listing_noticed(ckpt_dir, monkeypatch):
    """The listing (cached for 30 s) still calls a file valid that is now broken, and a session picks it:
    the app must say so instead of crashing in the model loader."""
    at = run_app({"ckpt": DEFAULT}, ckpt_dir, monkeypatch)
    path = ckpt_dir / "mnist-z2.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    at.selectbox(key="checkpoint").set_value("mnist-z2").run()
    no_exceptions(at)
    said = sidebar_texts(at) + " | ".join(e.value for e in at.error)
    assert "mnist-z2" in said and "truncated" in said
    assert at.session_state["checkpoint"] == DEFAULT
    assert_still_works(at)


# hostile or nonsense links


@pytest.mark.slow
@pytest.mark.parametrize("wanted", ["../checkpoints/mnist-z2", str(SHIPPED / "mnist-z2"), "user/../mnist-z2",
                                    "mnist-z2.safetensors", "..", "./mnist-z2", "mnist-z2/", "%2e%2e%2fmnist-z2",
                                    "mnist-z2\x00", "MNIST-Z2", " mnist-z2"])
def test_a_link_to_a_path_instead_of_a_name_is_refused(wanted, ckpt_dir, monkeypatch):
    at = run_app({"ckpt": wanted}, ckpt_dir, monkeypatch)
    no_exceptions(at)
    assert f"{wanted[:60]!r}, which is not here" in sidebar_texts(at)
    assert at.session_state["checkpoint"] == DEFAULT
    assert at.query_params["ckpt"] in ([DEFAULT], DEFAULT)  # the link is corrected
    assert_still_works(at)


@pytest.mark.slow
def test_a_real_checkpoint_whose_name_contains_dots_is_usable(ckpt_dir, monkeypatch):
    (ckpt_dir / "user").mkdir()
    tiny_checkpoint(ckpt_dir / "user" / "v1..2.safetensors", latent_dim=3)
    at = run_app({"ckpt": "user/v1..2"}, ckpt_dir, monkeypatch)
    no_exceptions(at)
    assert at.session_state["checkpoint"] == "user/v1..2" and not at.sidebar.warning
    assert_still_works(at, dim=3)
    at = run_app({"ckpt": "user/v1..2/../../mnist-z2"}, ckpt_dir, monkeypatch)
    assert "which is not here" in sidebar_texts(at) and at.session_state["checkpoint"] == DEFAULT


@pytest.mark.slow
@pytest.mark.parametrize("query, message", [
    ({"label": "-1"}, "not a class 0-9"),
    ({"label": "10"}, "not a class 0-9"),
    ({"label": "3.0"}, "not a class 0-9"),
    ({"label": "9" * 5000}, "not a class 0-9"),  # more digits than int() accepts
    ({"z": "1," * 50_000}, "not a list of numbers"),
    ({"z": ",".join(["1e999"] * 16)}, "NaN or infinity"),
    ({"z": ",".join(["0.5"] * 17)}, "17 values for a 16-dimensional model"),
    ({"z": "🔢," * 16}, "not a list of numbers"),
    ({"ckpt": "模型-🔢" * 40}, "which is not here"),
    ({"ckpt": "x" * 100_000}, "which is not here"),
])
def test_nonsense_query_values_are_ignored_with_a_short_warning(query, message, ckpt_dir, monkeypatch):
    at = run_app(query, ckpt_dir, monkeypatch)
    no_exceptions(at)
    warnings = [w.value for w in at.sidebar.warning]
    assert any(message in w for w in warnings), warnings
    assert all(len(w) < 200 for w in warnings)  # a huge value is quoted, never pasted whole
    assert at.session_state["checkpoint"] == DEFAULT
    assert len(at.session_state["z"]) == 16 and at.session_state["z_label"] == 0
    assert_still_works(at)


@pytest.mark.slow
def test_z_in_another_script_and_out_of_range_is_clipped(ckpt_dir, monkeypatch):
    """Digits from other scripts are numbers to Python; far-out values are clipped to the slider range."""
    at = run_app({"z": ",".join(["٣"] * 8 + ["-1e300"] * 8)}, ckpt_dir, monkeypatch)
    no_exceptions(at)
    assert at.session_state["z"] == [3.0] * 8 + [-4.0] * 8
    assert_still_works(at)


@pytest.fixture(scope="module")
def shipped_copy(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shipped")
    for p in SHIPPED.glob("*.safetensors"):
        shutil.copy(p, folder)
    return folder


SHIPPED_DIMS = {p.stem: int(checkpoints.read_meta(p)["config"]["latent_dim"])
                for p in sorted(SHIPPED.glob("*.safetensors"))}
TRICKY = ["", " ", "..", "../../etc/passwd", "mnist-z2", "mnist-cvae-z8", DEFAULT, "nan", "inf", "-0", "1e999",
          "0x10", "٣", "𝟘", "\x00", "\u202e", "1,2,3", ",".join(["0.25"] * 16), ",".join(["9"] * 2), "a" * 3000,
          *TABS, "interpolation"]
values = hs.one_of(hs.text(max_size=80), hs.sampled_from(TRICKY),
                   hs.text(alphabet="0123456789.,-+eEnaIf ", max_size=200))
queries = hs.dictionaries(hs.sampled_from(["ckpt", "z", "label", "live", "tab", "unknown", "Ckpt"]), values, max_size=4)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=queries)
def test_any_query_string_renders_a_valid_model(query, shipped_copy, monkeypatch):
    """Whatever the link holds: no exception, a real checkpoint, a code of its size inside the slider range."""
    use_folder(shipped_copy, monkeypatch)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    no_exceptions(at)
    name = at.session_state["checkpoint"]
    assert name in SHIPPED_DIMS
    if query.get("ckpt") in SHIPPED_DIMS:
        assert name == query["ckpt"]
    z = np.asarray(at.session_state["z"])
    assert z.shape == (SHIPPED_DIMS[name],) and np.isfinite(z).all() and np.abs(z).max() <= 4.0
    assert 0 <= at.session_state["z_label"] <= 9
    assert all(len(w.value) < 200 for w in at.sidebar.warning)
    assert at.session_state["tab"] == (query["tab"] if query.get("tab") in TABS else FIRST_TAB)


# uploads the draw panel cannot use


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def a_digit() -> np.ndarray:
    paper = np.full((90, 90), 255, np.uint8)
    paper[15:75, 40:50] = 0
    return paper


def huge_png() -> bytes:
    """A real 10000 x 10000 white PNG (about 100 KB compressed, 100 megapixels decoded)."""
    return png(np.full((10_000, 10_000), 255, np.uint8))


def gif() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a_digit()).save(buf, format="GIF")
    return buf.getvalue()


UPLOADS = {  # case -> (file name, bytes maker, text the panel must show)
    "pdf": ("digit.png", lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n" * 20,
            "not an image Pillow can read"),
    "gif": ("digit.png", gif, "this is a GIF image; please upload a PNG or JPEG"),
    "truncated": ("digit.png", lambda: png(a_digit())[:-40], "damaged or truncated"),
    "50MB": ("big.png", lambda: png(a_digit()) + bytes(50 * 2**20), "big.png is 50.0 MB; the limit is 5 MB"),
    "1x1": ("dot.png", lambda: png(np.zeros((1, 1), np.uint8)), "only 1x1 pixels"),
    "10000x10000": ("huge.png", huge_png, "declares too many pixels to decode safely (Image size (100000000 pixels)"),
    "5000x5000": ("photo.png", lambda: png(np.full((5000, 5000), 255, np.uint8)),
                  "5000x5000 pixels (25 megapixels); the limit is 20 megapixels"),
    "blank": ("white.png", lambda: png(np.full((64, 64), 255, np.uint8)), "no ink found"),
}


def draw_scores(at: AppTest) -> list[str]:
    """The draw panel's log p(x) readings (the density tab has a metric of its own)."""
    return [m.value for m in at.metric if m.label.startswith("log p(x), importance sampling")]


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    return at.file_uploader(key="draw_upload").set_value((name, data, "image/png")).run()


@pytest.mark.slow
@pytest.mark.parametrize("case", list(UPLOADS))
def test_an_unusable_upload_says_why_and_the_app_carries_on(case, ckpt_dir, monkeypatch):
    name, make, message = UPLOADS[case]
    at = run_app({"ckpt": DEFAULT, "tab": "Draw your own"}, ckpt_dir, monkeypatch)
    at.radio(key="draw_source").set_value("Upload a picture").run()
    upload(at, name, make())
    no_exceptions(at)
    shown = [w.value for w in at.warning] + [e.value for e in at.error]
    assert any(message in s for s in shown), shown
    assert not draw_scores(at)  # nothing was scored
    assert_still_works(at)  # on the sliders tab
    open_tab(at, "Draw your own")  # back to the drawing tab, still on "Upload a picture"
    assert at.radio(key="draw_source").value == "Upload a picture"
    upload(at, "good.png", png(a_digit()))  # the next, usable picture is scored as usual
    no_exceptions(at)
    assert float(draw_scores(at)[0].split()[0]) < 0


@pytest.mark.slow
def test_the_last_upload_survives_a_tab_switch_until_forgotten(ckpt_dir, monkeypatch):
    # the uploader forgets its file while its tab is closed (only the open tab runs); the panel keeps it
    at = run_app({"ckpt": DEFAULT, "tab": "Draw your own"}, ckpt_dir, monkeypatch)
    at.radio(key="draw_source").set_value("Upload a picture").run()
    upload(at, "mine.png", png(a_digit()))
    no_exceptions(at)
    first = draw_scores(at)
    assert first and float(first[0].split()[0]) < 0
    open_tab(at, "Latent sliders")
    assert not draw_scores(at)
    open_tab(at, "Draw your own")
    no_exceptions(at)
    assert draw_scores(at) == first, "the same picture, scored the same"
    texts = [str(e.value) for e in [*at.caption, *at.markdown, *at.info]]
    assert any("mine.png (your last upload)" in t for t in texts), texts
    at.button(key="draw_upload_forget").click().run()
    no_exceptions(at)
    assert not draw_scores(at) and "draw_upload_kept" not in at.session_state


# the training form, at and beyond its limits


def form_driver(folder: str) -> None:
    from pathlib import Path

    from explorer.ui.train_panel import render_training_sidebar

    render_training_sidebar(Path(folder))


AT_LIMITS = [dict(latent_dim=2, hidden="8", sigma=0.01, beta=0.0, epochs=1, batch_size=1, lr=1e-6, limit=0),
             dict(latent_dim=64, hidden="2048, 2048,2048,2048", sigma=1.0, beta=100.0, epochs=1000,
                  batch_size=4096, lr=1.0, limit=10_000_000)]
FORM_DEFAULTS = dict(dataset="mnist", latent_dim=16, hidden="512,256", likelihood="gaussian", sigma=0.1, beta=1.0,
                     conditional=False, epochs=20, lr=1e-3, batch_size=128, augment=True, limit=0, name="x",
                     owner="ada", token=None)


@pytest.mark.parametrize("values", AT_LIMITS)
def test_values_at_the_limits_are_accepted(values):
    from explorer.ui.train_panel import configs_from_form

    mc, tc = configs_from_form({**FORM_DEFAULTS, **values})
    assert mc.latent_dim == values["latent_dim"] and tc.epochs == values["epochs"]
    assert mc.hidden == tuple(int(w) for w in values["hidden"].replace(" ", "").split(","))


BEYOND = [  # (field, form key, value, label of the widget it belongs to, text the message must hold)
    ("latent_dim", "train_latent_dim", 1, "Latent dimensions", "between 2 and 64, got 1"),
    ("latent_dim", "train_latent_dim", 65, "Latent dimensions", "got 65"),
    ("hidden", "train_hidden", "abc", "Hidden layer widths", "comma-separated integers"),
    ("hidden", "train_hidden", "", "Hidden layer widths", "at least one layer width"),
    ("hidden", "train_hidden", "4", "Hidden layer widths", "between 8 and 2048, got 4"),
    ("hidden", "train_hidden", "4096", "Hidden layer widths", "got 4096"),
    ("hidden", "train_hidden", "8,8,8,8,8", "Hidden layer widths", "1 to 4 layer widths"),
    ("hidden", "train_hidden", "1e3", "Hidden layer widths", "comma-separated integers"),
    ("sigma", "train_sigma", 0.0, "σ", "between 0.01 and 1.0"),
    ("beta", "train_beta", -0.5, "β", "got -0.5"),
    ("beta", "train_beta", 101.0, "β", "got 101.0"),
    ("epochs", "train_epochs", 0, "Epochs", "between 1 and 1000, got 0"),
    ("epochs", "train_epochs", 1001, "Epochs", "got 1001"),
    ("batch_size", "train_batch_size", 0, "Batch size", "between 1 and 4096, got 0"),
    ("batch_size", "train_batch_size", 10_000, "Batch size", "got 10000"),
    ("lr", "train_lr", 0.0, "Learning rate", "between 1e-06 and 1.0"),
    ("lr", "train_lr", 2.0, "Learning rate", "got 2.0"),
    ("limit", "train_limit", -1, "Limit", "0 (all images) or a positive number"),
    ("limit", "train_limit", 20_000_000, "Limit", "got 20000000"),
    ("name", "train_name", "../..", "Name", "not a usable checkpoint name"),
    ("name", "train_name", "taken", "Name", "already exists"),
]


def ordered(block, out: list) -> list:
    """Every element of a block, depth first, in page order."""
    for child in block.children.values():
        out.append(child)
        if getattr(child, "children", None) is not None and not hasattr(child, "value"):
            ordered(child, out)
    return out


@pytest.mark.parametrize("field, key, value, label, text", BEYOND, ids=[f"{b[0]}={b[2]!r}" for b in BEYOND])
def test_a_value_beyond_its_limit_is_refused_under_its_field_and_starts_nothing(field, key, value, label, text,
                                                                                 tmp_path):
    tiny_checkpoint(tmp_path / "taken.safetensors")
    at = AppTest.from_function(form_driver, args=(str(tmp_path),), default_timeout=60).run()
    widget = at.number_input(key=key) if key in {w.key for w in at.number_input} else at.text_input(key=key)
    widget.set_value(value)
    if field != "name":
        at.text_input(key="train_name").set_value("fresh")
    next(b for b in at.button if "Start training" in b.label).click().run()
    no_exceptions(at)
    # the message names the field and the offending value, and sits under that field's input
    assert list(at.session_state["train_errors"]) == [field]
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and errors[0].startswith(label) and text in errors[0], errors
    page = [e for e in ordered(at.sidebar, []) if hasattr(e, "label") or type(e).__name__ == "Error"]
    i = next(i for i, e in enumerate(page) if getattr(e, "value", None) == errors[0])
    assert label in page[i - 1].label or (field == "epochs" and page[i - 2].label == "Epochs")
    # and nothing started: no job, no record, no file
    assert jobs.get_manager(tmp_path).snapshot()["state"] == "idle"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["taken.safetensors"]
    # the form keeps what was typed, so it can be corrected
    assert at.session_state[key] == value


def test_a_name_with_path_parts_is_saved_inside_the_user_folder(tmp_path):
    manager = jobs.JobManager(tmp_path)
    for name in ("../../etc/passwd", "/abs/path", "a/../../b", "..\\..\\c", "ümlaut name"):
        path = manager.checkpoint_path(name)
        assert path.parent == tmp_path / "user" and ".." not in path.name and "/" not in path.stem
    with pytest.raises(ConfigError) as e:
        manager.checkpoint_path("../..")
    assert e.value.field == "name"

