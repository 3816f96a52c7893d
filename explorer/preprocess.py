"""Turn a drawing or a photo of a digit into an MNIST-style 28x28 image, keeping every step.

MNIST's own recipe (LeCun et al.): white ink on black, the digit scaled to fit a 20x20 box with its
aspect ratio kept (antialiased, hence grey levels), then pasted into 28x28 so that its centre of mass
sits at the centre. Each step is a pure function on arrays; ``preprocess`` runs them all and returns
the intermediate images so the app can show them.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # checked before anything is decoded
MAX_PIXELS = 20_000_000  # a 5000x4000 photo; anything larger is refused before decoding
MIN_SIDE = 8  # smaller than this cannot hold a recognisable digit
FORMATS = ("PNG", "JPEG")
BOX = 20  # MNIST digits fit a 20x20 box ...
SIZE = 28  # ... inside a 28x28 image
CENTRE = 14.0  # MNIST's mean centre of mass, in pixel-index coordinates (row, col)
MIN_CONTRAST = 0.08  # ink must differ from the background by 8% of full scale


class PreprocessError(ValueError):
    """An image that cannot be turned into a digit; the message says why, in plain words."""


# decoding an upload


def decode_upload(data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA; PreprocessError if unusable.

    The byte size is checked before decoding, the pixel count from the header before the pixels are
    read, so neither a huge file nor a decompression bomb is ever expanded in memory.
    """
    if not data:
        raise PreprocessError("the file is empty")
    if len(data) > max_bytes:
        raise PreprocessError(f"the file is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in FORMATS:
                raise PreprocessError(f"this is a {img.format or 'unknown'} image; please upload a PNG or JPEG")
            w, h = img.size
            if w * h > max_pixels:
                raise PreprocessError(f"the image is {w}x{h} pixels ({w * h / 1e6:.0f} megapixels); "
                                      f"the limit is {max_pixels / 1e6:.0f} megapixels")
            if min(w, h) < MIN_SIDE:
                raise PreprocessError(f"the image is only {w}x{h} pixels; a digit needs at least "
                                      f"{MIN_SIDE}x{MIN_SIDE}")
            img.load()
    except PreprocessError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise PreprocessError(f"the image declares too many pixels to decode safely ({e})") from e
    except UnidentifiedImageError as e:
        raise PreprocessError("this file is not an image Pillow can read; please upload a PNG or JPEG") from e
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt data
        raise PreprocessError(f"the image is damaged or truncated ({type(e).__name__}: {e})") from e
    if img.mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
    return np.asarray(img, dtype=np.uint8)


# the steps


def to_greyscale(img: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 3) or (H, W, 4), uint8 or float in [0, 1] -> float32 (H, W) in [0, 1].

    Transparent pixels are laid on whichever of white or black contrasts with the opaque ink, so
    black-on-transparent and white-on-transparent drawings both survive.
    """
    a = np.asarray(img)
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    if a.ndim == 2:
        return np.clip(a, 0.0, 1.0)
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise PreprocessError(f"expected a greyscale, RGB or RGBA image, got an array of shape {a.shape}")
    colour, alpha = (a[..., :-1], a[..., -1]) if a.shape[2] in (2, 4) else (a, None)
    grey = colour[..., 0] if colour.shape[2] == 1 else colour @ np.array([0.299, 0.587, 0.114], np.float32)
    if alpha is not None and alpha.min() < 1.0:
        opaque = alpha > 0.5
        ink = float(grey[opaque].mean()) if opaque.any() else 0.0
        backdrop = 0.0 if ink > 0.5 else 1.0
        grey = alpha * grey + (1 - alpha) * backdrop
    return np.clip(grey, 0.0, 1.0).astype(np.float32)


def border_median(grey: np.ndarray) -> float:
    """Median of the outermost rows and columns: the background level of a (H, W) image."""
    g = np.asarray(grey)
    border = np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])
    return float(np.median(border))


def ink_on_black(grey: np.ndarray) -> tuple[np.ndarray, bool]:
    """(H, W) in [0, 1] -> (white ink on black, background 0 and brightest ink 1; whether it was inverted).

    The image is inverted when its border is light (dark ink on paper). PreprocessError when nothing
    stands out from the background (an all-white or all-black image).
    """
    g = np.asarray(grey, dtype=np.float32)
    inverted = border_median(g) > 0.5
    if inverted:
        g = 1.0 - g
    background = border_median(g)
    span = float(g.max()) - background
    if span < MIN_CONTRAST:
        shade = "white" if (1.0 - background if inverted else background) > 0.5 else "black"
        raise PreprocessError(f"no ink found: the image is plain {shade}. Draw or upload a digit that stands "
                              "out from its background")
    return np.clip((g - background) / span, 0.0, 1.0), inverted


def ink_box(ink: np.ndarray, threshold: float = 0.1) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) bounds (bottom/right exclusive) of the pixels above threshold."""
    mask = np.asarray(ink) > threshold
    if not mask.any():
        raise PreprocessError("no ink found after removing the background")
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop_to_ink(ink: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """(H, W) white-on-black -> the smallest (h, w) crop holding every pixel above threshold."""
    top, bottom, left, right = ink_box(ink, threshold)
    return np.asarray(ink, dtype=np.float32)[top:bottom, left:right]


def fit_in_box(crop: np.ndarray, box: int = BOX) -> np.ndarray:
    """(h, w) -> (h', w') with max(h', w') == box, aspect ratio kept, antialiased (Lanczos)."""
    h, w = crop.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL wants (width, height)
    out = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32)).resize(size, Image.LANCZOS)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    """Intensity-weighted mean (row, col) of a (H, W) image, in pixel-index coordinates."""
    a = np.asarray(img, dtype=np.float64)
    total = a.sum()
    if total <= 0:
        return (a.shape[0] - 1) / 2, (a.shape[1] - 1) / 2
    r, c = np.arange(a.shape[0]), np.arange(a.shape[1])
    return float((a.sum(1) * r).sum() / total), float((a.sum(0) * c).sum() / total)


def paste_centred(digit: np.ndarray, size: int = SIZE, centre: float = CENTRE) -> np.ndarray:
    """(h, w) with h, w <= size -> (size, size), shifted by whole pixels so its centre of mass is at
    (centre, centre); the shift is limited so that no ink falls off the edge."""
    h, w = digit.shape
    if h > size or w > size:
        raise ValueError(f"a {h}x{w} digit does not fit in {size}x{size}")
    cy, cx = centre_of_mass(digit)
    top = int(np.clip(round(centre - cy), 0, size - h))
    left = int(np.clip(round(centre - cx), 0, size - w))
    out = np.zeros((size, size), np.float32)
    out[top:top + h, left:left + w] = digit
    return out


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 (rounded)."""
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# the pipeline


@dataclass(frozen=True)
class Steps:
    """Every intermediate image of ``preprocess``; ``digit`` is the (28, 28) uint8 result."""

    grey: np.ndarray  # (H, W) float in [0, 1], as uploaded
    ink: np.ndarray  # (H, W) white ink on black, contrast stretched
    inverted: bool
    cropped: np.ndarray  # (h, w) the ink's bounding box
    fitted: np.ndarray  # (h', w') scaled into the 20x20 box
    centred: np.ndarray  # (28, 28) float, centre of mass at the centre
    digit: np.ndarray  # (28, 28) uint8, what the model sees

    def gallery(self) -> list[tuple[str, np.ndarray]]:
        """(caption, image) for each step, in order."""
        return [("1 · greyscale", self.grey),
                ("2 · " + ("inverted: white ink on black" if self.inverted else "ink on black (no inversion)"),
                 self.ink),
                (f"3 · cropped to the ink ({self.cropped.shape[1]}x{self.cropped.shape[0]})", self.cropped),
                (f"4 · fit into {BOX}x{BOX} ({self.fitted.shape[1]}x{self.fitted.shape[0]})", self.fitted),
                (f"5 · {SIZE}x{SIZE}, centred by mass", self.digit)]


def preprocess(img: np.ndarray) -> Steps:
    """Any grey/RGB/RGBA image array -> Steps ending in an MNIST-like (28, 28) uint8 digit."""
    a = np.asarray(img)
    if a.ndim < 2 or min(a.shape[:2]) < 2:
        raise PreprocessError(f"the image is only {'x'.join(map(str, a.shape[:2][::-1]))} pixels; "
                              "a digit needs more than that")
    grey = to_greyscale(a)
    ink, inverted = ink_on_black(grey)
    cropped = crop_to_ink(ink)
    fitted = fit_in_box(cropped)
    centred = paste_centred(fitted)
    return Steps(grey, ink, inverted, cropped, fitted, centred, to_uint8(centred))


def preprocess_upload(data: bytes) -> Steps:
    """Uploaded PNG/JPEG bytes -> Steps; PreprocessError with a plain message for anything unusable."""
    return preprocess(decode_upload(data))
