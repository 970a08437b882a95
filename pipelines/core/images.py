"""Image hashing: a 64-bit perceptual hash, which near-duplicate detection
(sources/dedup.py) and benchmark decontamination (filters/decontamination.py) both compare,
and the 8x8 RGB thumbnail with its mean difference that confirms a dedup match
(decontamination confirms on 32x32 grey thumbnails of its own, by their largest difference)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def _dct_matrix(n: int = 32) -> np.ndarray:
    k = np.arange(n)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    m[0] /= np.sqrt(2)
    return m * np.sqrt(2 / n)


_DCT = _dct_matrix()


def phash(image: Image.Image) -> int:
    """64-bit perceptual hash (DCT of a 32x32 grey thumbnail, the 8x8 lowest frequencies
    against their median). Re-encoding, rescaling and small edits move it by a few bits."""
    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float64)
    low = (_DCT @ grey @ _DCT.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def thumbnail(image: Image.Image) -> bytes:
    """8x8 RGB thumbnail (box-averaged, 192 bytes): what two images look like at a glance."""
    return image.convert("RGB").resize((8, 8), Image.Resampling.BOX).tobytes()


def pixel_difference(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two thumbnails, 0..255. Copies (resized, saved as JPEG
    at quality 50-80) differ by under 3; two flat images of different colours by the
    difference of their colours."""
    return float(np.abs(np.frombuffer(a, np.uint8).astype(np.int16) - np.frombuffer(b, np.uint8)).mean())
