"""Image hygiene: decode what a source gives us, refuse what is broken with a specific reason,
and normalise the rest to RGB within a pixel budget.

- EXIF orientation is applied (phone photos arrive rotated otherwise);
- palette, alpha, CMYK, 16-bit and float modes become 8-bit RGB (alpha over white);
- an image over `max_pixels` is scaled down keeping its aspect ratio (squashing everything to
  a square hurts text-heavy images); the original size stays on the record;
- the size in the header is checked against `max_source_pixels` *before* decoding, so a
  decompression bomb costs nothing;
- an image that needs no change keeps its original bytes (re-encoding costs milliseconds),
  unless its file carries more than the image (`only_image`).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.config.source_config import ImagesConfig
from pipelines.core.images import phash, thumbnail
from pipelines.core.record import ImageData

MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"),
         (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"RIFF", "WEBP"))


def _broken(error: Exception) -> str:
    text = str(error).lower()
    return "image_truncated" if "truncat" in text or "not enough data" in text else "image_corrupt"


class Problem(Exception):
    """A record cannot be used: `reason` is a stable name, `detail` says what exactly."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        hi = a.max() if a.size else 0.0
        scale = 255.0 / (65535.0 if im.mode.startswith("I;16") or hi > 255 else max(hi, 1.0))
        im = Image.fromarray(np.clip(a * scale, 0, 255).astype(np.uint8))  # 2-D uint8: mode L
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def _fit(size: tuple[int, int], max_pixels: int) -> tuple[int, int]:
    w, h = size
    if not max_pixels or w * h <= max_pixels:
        return size
    scale = (max_pixels / (w * h)) ** 0.5
    return max(1, int(w * scale)), max(1, int(h * scale))


def only_image(data: bytes, fmt: str, width: int, height: int) -> bool:
    """Whether a PNG or JPEG file holds its image and little else, so that its bytes can be
    kept as they are: it ends where its format ends (IEND, EOI) and is no larger than the raw
    pixels plus room for headers. Anything appended or stuffed into side chunks (text,
    another file) would otherwise travel to the teacher and into the published dataset."""
    end = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9"}.get(fmt)
    return end is not None and data.endswith(end) and len(data) <= width * height * 3 + 65536


def normalise(data: bytes, config: ImagesConfig, what: str = "image") -> ImageData:
    """Decoded, checked and normalised image; raises `Problem` with a specific reason."""
    if not data:
        raise Problem("image_empty", f"{what} has zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise Problem("image_too_large", f"{what}: {e}") from None
    except UnidentifiedImageError:
        known = next((name for magic, name in MAGIC if data.startswith(magic)), None)
        if known:  # the signature of a format we read, then nothing readable
            raise Problem("image_corrupt", f"{what}: starts like a {known} file but its header cannot be read") from None
        raise Problem("image_unsupported", f"{what}: not an image format Pillow can read ({len(data)} bytes)") from None
    except Exception as e:  # a header that starts right and then breaks
        raise Problem(_broken(e), f"{what}: {type(e).__name__}: {e}") from None
    fmt = (im.format or "").upper()
    if fmt not in config.formats:
        raise Problem("image_format_not_allowed", f"{what} is {fmt or 'of no known format'}; allowed: {', '.join(config.formats)}")
    w, h = im.size
    if w * h > config.max_source_pixels:
        raise Problem("image_too_large", f"{what} is {w}x{h} = {w * h} pixels > max_source_pixels {config.max_source_pixels}")
    if min(w, h) < config.min_side:
        raise Problem("image_too_small", f"{what} is {w}x{h}; the shorter side must be >= {config.min_side}")
    try:
        im.load()
    except Exception as e:
        raise Problem(_broken(e), f"{what}: {type(e).__name__}: {e}") from None

    rotated = im.getexif().get(0x0112, 1) not in (1, None)
    rgb = _to_rgb(ImageOps.exif_transpose(im) if rotated else im)
    target = _fit(rgb.size, config.max_pixels)
    if target != rgb.size:
        rgb = rgb.resize(target, Image.Resampling.LANCZOS)
    if not rotated and im.mode == "RGB" and target == (w, h) and getattr(im, "n_frames", 1) == 1 and only_image(data, fmt, w, h):
        return ImageData.from_bytes(data, w, h, fmt, (w, h), phash(rgb), thumbnail(rgb))
    out_fmt = "JPEG" if config.encode == "jpeg" or (config.encode == "auto" and fmt == "JPEG") else "PNG"
    buf = io.BytesIO()
    if out_fmt == "JPEG":
        rgb.save(buf, format="JPEG", quality=config.jpeg_quality)
    else:
        rgb.save(buf, format="PNG", compress_level=1)
    return ImageData.from_bytes(buf.getvalue(), rgb.width, rgb.height, out_fmt, (w, h), phash(rgb), thumbnail(rgb))
