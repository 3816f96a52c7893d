"""Arrays to pictures: crisp (nearest-neighbour) PNG upscaling, mosaics, animated GIFs."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (or uint8) -> uint8 (white ink on black, like MNIST)."""
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def upscale(img: np.ndarray, scale: int = 8) -> Image.Image:
    """(H, W) image -> PIL image scale x larger with hard pixel edges (no blur)."""
    pil = Image.fromarray(to_uint8(img), mode="L")
    return pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)


def png_bytes(img: np.ndarray, scale: int = 8) -> bytes:
    """(H, W) image -> PNG bytes, upscaled crisply."""
    buf = io.BytesIO()
    upscale(img, scale).save(buf, format="PNG")
    return buf.getvalue()


def gif_bytes(frames: np.ndarray, scale: int = 6, ms_per_frame: int = 90, bounce: bool = True) -> bytes:
    """Frames (T, H, W) -> looping animated GIF bytes (there and back again when ``bounce``)."""
    seq = list(frames) + (list(frames[-2:0:-1]) if bounce and len(frames) > 2 else [])
    pils = [upscale(f, scale) for f in seq]
    buf = io.BytesIO()
    pils[0].save(buf, format="GIF", save_all=True, append_images=pils[1:], duration=ms_per_frame, loop=0)
    return buf.getvalue()
