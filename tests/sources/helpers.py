"""Inputs built at test time (images in many modes and states of repair) and a helper that
runs real recipes over them through the openai backend and a loopback endpoint."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import yaml
from PIL import Image, ImageDraw

from pipelines.commands.run import run
from pipelines.config.recipe import read_recipe
from tests.fault_server import FaultServer
from tests.published import published_rows


def picture(seed: int = 0, size: tuple[int, int] = (96, 64), mode: str = "RGB") -> Image.Image:
    """A distinct little picture per seed (shapes at seed-dependent places)."""
    img = Image.new("RGB", size, (240, 240 - seed % 50, 230))
    d = ImageDraw.Draw(img)
    w, h = size
    for k in range(3):
        x, y = (seed * 37 + k * 53) % w, (seed * 29 + k * 41) % h
        d.rectangle([x, y, x + w // 4, y + h // 4], fill=((seed * 70 + k * 90) % 256, (k * 120) % 256, (seed * 30) % 256))
    return img.convert(mode) if mode != "RGB" else img


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header claims another size: a decompression bomb's shape."""
    data = bytearray(encode(picture(1, (8, 8))))
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def run_recipe(tmp_path: Path, sources: list[dict], ingest: dict | None = None, filters: list | None = None, answer: str = "Reasoning.\nAnswer: 4"):
    """Run a real recipe over `sources` with a loopback OpenAI-compatible teacher; no
    filters by default, so every record that passes the source checks is kept."""
    server = FaultServer(answer=answer)
    data = {
        "name": "sources-test",
        "sources": sources,
        "ingest": ingest or {},
        "teacher": {"backend": "openai", "model": "served", "openai": {"base_url": server.url, "api_key_env": "ET_NO_KEY"}},
        "stages": {"think": {"sampling": {"n": 1}}},
        "filters": filters or [],
        "output": {"dir": str(tmp_path / "out"), "min_kept": 0},  # publish even when every row is rejected
        "cache": {"dir": None},
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        outcome = run(read_recipe(path))
    finally:
        server.close()
    return outcome


def load(outcome, config: str):
    if outcome.funnel.to_dict()["kept" if config != "rejected" else "rejected"] == 0 and config != "rejected":
        return []
    return list(published_rows(str(outcome.out_dir), config))


def conserved(outcome) -> bool:
    f = outcome.funnel.to_dict()
    return f["in"] == f["kept"] + f["rejected"] + f["failed"]
