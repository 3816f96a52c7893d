"""The sprite-sheet atlas: layout, exact pixels, ids; and the point payload the map sends with it."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from explorer.atlas import COLUMNS, atlas_grid, atlas_id, image_atlas, png_size, tile_origin


def decode(png: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and im.mode == "L"
    return np.asarray(im)


def tile(sheet: np.ndarray, i: int, shape: tuple[int, int], columns: int) -> np.ndarray:
    x, y = tile_origin(i, shape, columns)
    return sheet[y:y + shape[0], x:x + shape[1]]


@pytest.fixture
def images() -> np.ndarray:
    """250 distinct random uint8 (28, 28) images: 2.5 atlas rows at 100 columns."""
    return np.random.default_rng(0).integers(0, 256, (250, 28, 28), dtype=np.uint8)


def test_every_tile_is_its_image_exactly(images):
    png = image_atlas(images)
    sheet = decode(png)
    assert sheet.shape == (3 * 28, COLUMNS * 28)
    assert png_size(png) == (COLUMNS * 28, 3 * 28)
    for i in range(len(images)):
        np.testing.assert_array_equal(tile(sheet, i, (28, 28), COLUMNS), images[i])
    assert not sheet[2 * 28:, 50 * 28:].any()  # the 50 cells after the last image are black


def test_few_images_make_one_row_and_other_tile_sizes_work():
    imgs = np.arange(3 * 5 * 7, dtype=np.uint8).reshape(3, 5, 7)
    sheet = decode(image_atlas(imgs, columns=10))
    assert atlas_grid(3, 10) == (1, 3)
    assert sheet.shape == (5, 21)
    for i in range(3):
        np.testing.assert_array_equal(tile(sheet, i, (5, 7), 3), imgs[i])


@pytest.mark.parametrize("bad", [np.zeros((4, 28, 28), np.float32), np.zeros((28, 28), np.uint8),
                                 np.zeros((0, 28, 28), np.uint8)])
def test_rejects_what_is_not_a_stack_of_uint8_images(bad):
    with pytest.raises(ValueError):
        image_atlas(bad)


def test_png_size_rejects_other_bytes():
    with pytest.raises(ValueError):
        png_size(b"GIF89a" + bytes(30))


def test_atlas_id_names_the_content_and_layout(images):
    same = images.copy()
    assert atlas_id(images) == atlas_id(same)
    same[17, 3, 4] ^= 1
    assert atlas_id(images) != atlas_id(same)
    assert atlas_id(images) != atlas_id(images, columns=50)
    assert atlas_id(images) != atlas_id(images[:-1])


def test_mnist_test_set_atlas_is_2800_square_and_small(mnist_dir, monkeypatch):
    """10,000 real digits: 2800 x 2800, tile i == image i, and (measured) ~1.7 MB of PNG."""
    from explorer.data import load_dataset

    monkeypatch.setenv("VAE_EXPLORER_DATA", str(mnist_dir))
    ds = load_dataset("mnist", "test")
    png = image_atlas(ds.images)
    sheet = decode(png)
    assert sheet.shape == (2800, 2800)
    tiles = sheet.reshape(100, 28, 100, 28).transpose(0, 2, 1, 3).reshape(10000, 28, 28)
    np.testing.assert_array_equal(tiles, ds.images)
    assert len(png) < 2_000_000
    assert len(base64.b64encode(png)) < 2_700_000


def test_points_payload_round_trips():
    """The map's point fields decode back to the same float32 coords and labels."""
    pytest.importorskip("streamlit")
    from explorer.ui.mapview import points_payload

    rng = np.random.default_rng(1)
    coords = rng.normal(size=(500, 2)).astype(np.float32)
    labels = rng.integers(0, 10, 500)
    p = points_payload(coords, labels, [str(c) for c in range(10)])
    xy = np.frombuffer(base64.b64decode(p["xy"]), "<f4").reshape(-1, 2)
    np.testing.assert_array_equal(xy, coords)
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(p["labels"]), np.uint8), labels)
    assert p["n"] == 500
    assert p["points_id"] == points_payload(coords, labels, [str(c) for c in range(10)])["points_id"]
    assert p["points_id"] != points_payload(coords[::-1], labels, [str(c) for c in range(10)])["points_id"]
    with pytest.raises(ValueError):
        points_payload(coords, labels + 10, [str(c) for c in range(10)])
    with pytest.raises(ValueError):
        points_payload(np.full((3, 2), np.nan), np.zeros(3, int), ["a"])


def _map_script():
    import numpy as np
    import streamlit as st

    from explorer.atlas import atlas_id, image_atlas
    from explorer.ui.mapview import latent_map

    n = st.session_state.get("n", 50)
    imgs = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    coords = np.random.default_rng(1).normal(size=(n, 2))
    st.session_state["result"] = latent_map(coords, np.arange(n) % 10, class_names=[str(c) for c in range(10)],
                                            atlas_png=image_atlas(imgs), atlas_key=atlas_id(imgs), key="m")


def test_map_sends_the_atlas_once_per_key_and_again_when_the_page_asks():
    """The send-once protocol and the click value, with the browser's state writes simulated."""
    pytest.importorskip("streamlit")
    import json

    from streamlit.testing.v1 import AppTest

    def sent(at) -> dict:
        return json.loads(at.get("bidi_component")[0].proto.json)["atlas"]

    at = AppTest.from_function(_map_script).run()
    assert not at.exception
    first = sent(at)
    assert first["png"] and first["columns"] == 50 and first["tile"] == 28
    at.run()
    assert sent(at)["png"] is None and at.session_state["result"] is None
    # the page lost it: it asks (state "missing"); a click arrives as state "click"
    at.session_state["m"]["missing"] = {"kind": "atlas", "key": first["key"], "nonce": 5}
    at.session_state["m"]["click"] = {"index": 7, "nonce": 6}
    at.run()
    assert sent(at)["png"] == first["png"]
    assert at.session_state["result"] == {"index": 7, "nonce": 6}
    at.run()  # that request is served: not again
    assert sent(at)["png"] is None and at.session_state["result"] == {"index": 7, "nonce": 6}
    at.session_state["n"] = 60  # other images, another key: sent
    at.run()
    assert sent(at)["png"] and sent(at)["key"] != first["key"]
