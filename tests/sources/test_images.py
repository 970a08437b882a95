"""Image normalisation and hygiene: each broken input gets its own reason; every mode ends
as 8-bit RGB; the pixel budget keeps the aspect ratio; untouched images keep their bytes."""

import io

import numpy as np
import pytest
from PIL import Image

from pipelines.config.source_config import ImagesConfig
from pipelines.core.images import phash
from pipelines.sources.image_files import Problem, normalise
from tests.sources.helpers import encode, picture, png_claiming

CFG = ImagesConfig(max_pixels=10_000, min_side=8, max_source_pixels=1_000_000)


def _decode(image_data):
    return Image.open(io.BytesIO(image_data.bytes))


def test_an_rgb_png_within_budget_keeps_its_bytes():
    data = encode(picture(3, (80, 60)))
    out = normalise(data, CFG)
    assert out.bytes == data and (out.width, out.height) == (80, 60) and out.original_size == (80, 60)


def test_the_pixel_budget_keeps_the_aspect_ratio_and_the_original_size():
    out = normalise(encode(picture(3, (400, 100))), CFG)
    assert out.width * out.height <= 10_000
    assert abs(out.width / out.height - 4.0) < 0.05
    assert out.original_size == (400, 100)
    assert _decode(out).size == (out.width, out.height)


def test_exif_orientation_is_applied():
    img = picture(5, (90, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = normalise(encode(img, "JPEG", exif=exif.tobytes()), CFG)
    assert (out.width, out.height) == (30, 90)
    assert _decode(out).format == "JPEG"  # auto: a JPEG stays a JPEG


@pytest.mark.parametrize("mode", ["P", "L", "1", "LA", "RGBA", "CMYK", "I;16", "I", "F"])
def test_every_mode_ends_as_rgb(mode):
    img = picture(7, (40, 40))
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img.convert("L"), dtype=np.uint16) * 257)  # uint16 -> I;16 in every Pillow
        assert img.mode == "I;16"
    else:
        img = img.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode in ("I", "F", "I;16") else "PNG"
    out = normalise(encode(img, fmt), CFG)
    decoded = _decode(out)
    assert decoded.mode == "RGB" and decoded.size == (40, 40)
    if mode == "I;16":  # 16-bit is scaled to 8 bits, not clipped to white
        grey = np.asarray(decoded.convert("L"))
        assert 0 < grey.min() < grey.max() < 255


def test_alpha_and_palette_transparency_are_composited_over_white():
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    assert _decode(normalise(encode(rgba), CFG)).getpixel((5, 5)) == (255, 255, 255)
    pal = Image.new("P", (20, 20), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.info["transparency"] = 0
    assert _decode(normalise(encode(pal, transparency=0), CFG)).getpixel((5, 5)) == (255, 255, 255)


@pytest.mark.parametrize("data, reason", [
    (b"", "image_empty"),
    (encode(picture(1))[:200], "image_truncated"),
    (encode(picture(1), "JPEG")[:300], "image_truncated"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image_corrupt"),
    (b"hello, I am a text file and not an image", "image_unsupported"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image_unsupported"),
    (encode(picture(1), "ICO"), "image_format_not_allowed"),
    (png_claiming(5000, 5000), "image_too_large"),
    (encode(picture(1, (4, 50))), "image_too_small"),
])
def test_broken_images_get_their_own_reason(data, reason):
    with pytest.raises(Problem) as e:
        normalise(data, CFG)
    assert e.value.reason == reason and e.value.detail


def test_the_bomb_guard_refuses_from_the_header_without_decoding():
    # 200k x 200k would need 120 GB decoded; the guard answers at once from the header.
    with pytest.raises(Problem) as e:
        normalise(png_claiming(200_000, 200_000), CFG)
    assert e.value.reason == "image_too_large"


def test_phash_survives_re_encoding_and_resizing_but_tells_pictures_apart():
    a = picture(11, (200, 150))
    again = Image.open(io.BytesIO(encode(a.resize((160, 120)), "JPEG", quality=70)))
    other = picture(12, (200, 150))
    assert bin(phash(a) ^ phash(again)).count("1") <= 4
    assert bin(phash(a) ^ phash(other)).count("1") > 10
