"""MNIST-style preprocessing of drawings and uploads: centring, inversion, scaling, and clear errors."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from explorer.preprocess import (BOX, MAX_UPLOAD_BYTES, PreprocessError, centre_of_mass, crop_to_ink, decode_upload,
                                 fit_in_box, ink_on_black, paste_centred, preprocess, preprocess_upload, to_greyscale)

# helpers


def stroke_digit(size: int = 28, centre: tuple[int, int] = (14, 14), half: tuple[int, int] = (8, 3)) -> np.ndarray:
    """A white-on-black 'one' with a foot: uint8 (size, size)."""
    img = np.zeros((size, size), np.uint8)
    r, c = centre
    img[r - half[0]:r + half[0], c - half[1] // 2:c + half[1] - half[1] // 2] = 255
    img[r + half[0] - 2:r + half[0], c - half[1]:c + half[1]] = 255
    return img


def png(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def ink_extent(img: np.ndarray, threshold: int = 26) -> tuple[int, int]:
    rows, cols = np.flatnonzero((img > threshold).any(1)), np.flatnonzero((img > threshold).any(0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


# the pipeline


def test_output_is_mnist_shaped_and_fits_the_20px_box():
    out = preprocess(stroke_digit(200, (100, 100), (70, 20))).digit
    assert out.shape == (28, 28) and out.dtype == np.uint8
    h, w = ink_extent(out)
    assert max(h, w) <= BOX and max(h, w) >= BOX - 1  # scaled up to fill the box, never beyond
    assert out.max() >= 250 and out[0].max() == 0 and out[:, 0].max() == 0


def test_a_centred_digit_stays_centred():
    img = stroke_digit()
    before = centre_of_mass(img)
    after = centre_of_mass(preprocess(img).digit)
    assert abs(after[0] - before[0]) <= 1.0 and abs(after[1] - before[1]) <= 1.0


def test_an_off_centre_digit_is_centred_by_mass():
    img = stroke_digit(120, (30, 90), (20, 6))  # top right of a big picture
    cy, cx = centre_of_mass(preprocess(img).digit)
    assert abs(cy - 14) <= 1.0 and abs(cx - 14) <= 1.0


def test_real_mnist_digits_pass_through_almost_unchanged(mnist_dir):
    from explorer.data import load_dataset

    images = load_dataset("mnist", "test", mnist_dir).images[:20]
    for img in images:
        out = preprocess(img).digit
        assert np.abs(out.astype(int) - img.astype(int)).mean() < 25  # grey levels shift a little, shape stays
        assert np.allclose(centre_of_mass(out), centre_of_mass(img), atol=1.0)


def test_black_on_white_is_inverted_and_white_on_black_is_not():
    digit = stroke_digit()
    paper = preprocess(255 - digit)
    assert paper.inverted
    assert not preprocess(digit).inverted
    assert np.array_equal(paper.digit, preprocess(digit).digit)


def test_rgb_and_transparent_inputs():
    digit = stroke_digit()
    rgb = np.stack([255 - digit] * 3, -1)  # black ink on white paper, RGB
    rgba = np.zeros((28, 28, 4), np.uint8)  # black ink on a transparent sheet
    rgba[..., 3] = digit
    expected = preprocess(digit).digit
    assert np.array_equal(preprocess(rgb).digit, expected)
    assert np.array_equal(preprocess(rgba).digit, expected)


@pytest.mark.parametrize("value,word", [(255, "white"), (0, "black"), (128, "")])
def test_an_image_without_ink_raises_a_clear_error(value, word):
    with pytest.raises(PreprocessError, match=f"no ink found.*{word}"):
        preprocess(np.full((50, 40), value, np.uint8))


def test_steps_are_pure_functions_on_arrays():
    grey = to_greyscale(255 - stroke_digit(60, (30, 30), (20, 6)))
    ink, inverted = ink_on_black(grey)
    assert inverted and ink.min() == 0.0 and ink.max() == 1.0
    crop = crop_to_ink(ink)
    assert crop.shape == (40, 12)
    fitted = fit_in_box(crop)
    assert fitted.shape == (20, 6) and 0.0 <= fitted.min() and fitted.max() <= 1.0
    centred = paste_centred(fitted)
    assert centred.shape == (28, 28)
    assert np.allclose(centre_of_mass(centred), (14, 14), atol=0.5)


def test_gallery_lists_every_step():
    steps = preprocess(stroke_digit())
    captions = [c for c, _ in steps.gallery()]
    assert len(captions) == 5 and captions[-1].startswith("5")


# decoding uploads


def test_png_and_jpeg_uploads_round_trip():
    digit = 255 - stroke_digit(64, (32, 32), (24, 8))
    for fmt in ("PNG", "JPEG"):
        steps = preprocess_upload(png(digit, fmt))
        assert steps.inverted and steps.digit.shape == (28, 28)
        cy, cx = centre_of_mass(steps.digit)
        assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


def test_not_an_image_gives_a_clear_error():
    with pytest.raises(PreprocessError, match="not an image"):
        decode_upload(b"%PDF-1.4 this is not a picture at all" * 10)
    with pytest.raises(PreprocessError, match="empty"):
        decode_upload(b"")


def test_truncated_image_gives_a_clear_error():
    data = png(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
    with pytest.raises(PreprocessError, match="damaged or truncated"):
        decode_upload(data[: len(data) // 2])


def test_other_formats_are_refused():
    buf = io.BytesIO()
    Image.new("L", (32, 32)).save(buf, format="GIF")
    with pytest.raises(PreprocessError, match="GIF.*PNG or JPEG"):
        decode_upload(buf.getvalue())


def test_one_pixel_image_gives_a_clear_error():
    with pytest.raises(PreprocessError, match="only 1x1 pixels"):
        decode_upload(png(np.zeros((1, 1), np.uint8)))
    with pytest.raises(PreprocessError, match="only 1x1 pixels"):
        preprocess(np.zeros((1, 1), np.uint8))


def test_huge_file_is_refused_before_decoding():
    with pytest.raises(PreprocessError, match="limit is 5 MB"):
        decode_upload(b"\x89PNG" + bytes(MAX_UPLOAD_BYTES))


def test_decompression_bomb_is_refused_from_its_header():
    # a small file that declares 30000 x 30000 pixels: refused before any pixel is decoded
    data = png(np.zeros((300, 300), np.uint8))
    ihdr = data.index(b"IHDR")
    fields = (30000).to_bytes(4, "big") * 2 + data[ihdr + 12:ihdr + 17]
    chunk = b"IHDR" + fields
    bomb = data[:ihdr] + chunk + zlib.crc32(chunk).to_bytes(4, "big") + data[ihdr + 21:]
    with pytest.raises(PreprocessError, match="megapixels|too many pixels"):
        decode_upload(bomb)


def test_pillow_bomb_error_is_translated(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's own guard fires first now
    with pytest.raises(PreprocessError, match="too many pixels"):
        decode_upload(png(np.zeros((100, 100), np.uint8)))
