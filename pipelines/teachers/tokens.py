"""Token estimates of teacher requests, for batches weighted by tokens instead of records.

A batch of 32 records means little to a GPU: 32 text-only focus prompts are a few thousand
tokens, 32 extraction prompts with large images can be a hundred thousand. With
`teacher.max_batch_tokens` set, Beam cuts batches by the estimated tokens of the requests
(prompt text, image tokens, and the completion budget max_tokens x n), so every batch
gives the engine a similar amount of work.

Image tokens follow the model's own processor settings (its preprocessor_config.json and
the recipe's `mm_processor_kwargs`):
- patch-merging processors (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): the image is resized to
  multiples of patch_size x merge_size within [min_pixels, max_pixels]; one token per
  merged patch;
- tiling processors (Idefics3 / SmolVLM): the longest edge is resized to size.longest_edge,
  cut into max_image_size tiles (plus a global view when split), image_seq_len tokens each;
- otherwise a fixed `image_tokens` per image (hosted APIs, unknown models).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.teachers.base import ChatRequest

if TYPE_CHECKING:
    import apache_beam as beam

log = logging.getLogger(__name__)
CHARS_PER_TOKEN = 4  # a conservative average for English prompts
FALLBACK_IMAGE_TOKENS = 1024


@dataclass(frozen=True)
class ImageTokens:
    kind: str  # "patches", "tiles" or "fixed"
    patch_size: int = 14
    merge_size: int = 2
    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 1280
    longest_edge: int = 1456
    tile_edge: int = 364
    seq_len: int = 64
    split: bool = True
    fixed: int = FALLBACK_IMAGE_TOKENS

    def count(self, width: int, height: int) -> int:
        if self.kind == "patches":
            factor = self.patch_size * self.merge_size
            h, w = max(factor, round(height / factor) * factor), max(factor, round(width / factor) * factor)
            if h * w > self.max_pixels:
                beta = math.sqrt(height * width / self.max_pixels)
                h, w = max(factor, math.floor(height / beta / factor) * factor), max(factor, math.floor(width / beta / factor) * factor)
            elif h * w < self.min_pixels:
                beta = math.sqrt(self.min_pixels / (height * width))
                h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
            return (h // self.patch_size) * (w // self.patch_size) // (self.merge_size ** 2)
        if self.kind == "tiles":
            if not self.split:
                return self.seq_len
            scale = self.longest_edge / max(width, height)
            w, h = width * scale, height * scale
            tiles = math.ceil(w / self.tile_edge) * math.ceil(h / self.tile_edge)
            return self.seq_len * (tiles + 1 if tiles > 1 else 1)
        return self.fixed


def _read_json(model: str, name: str, revision: str) -> dict | None:
    try:
        from transformers.utils import cached_file

        path = cached_file(model, name, revision=revision, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
    except Exception:  # noqa: BLE001 - no settings means the fallback estimate, not a failed run
        return None
    if not path:
        return None
    with open(path) as f:
        return json.load(f)


def image_tokens_for(model: str, revision: str = "main", overrides: dict[str, Any] | None = None,
                     fallback: int = FALLBACK_IMAGE_TOKENS) -> ImageTokens:
    """How the model's processor turns an image into tokens, from its saved settings."""
    proc = _read_json(model, "processor_config.json", revision) or {}
    # transformers 5 saves the image processor inside processor_config.json; older saves beside it
    pre = _read_json(model, "preprocessor_config.json", revision) or proc.get("image_processor") or {}
    settings = {**pre, **(overrides or {})}
    if "merge_size" in settings and "patch_size" in settings:
        size = settings.get("size") or {}
        return ImageTokens(
            "patches", patch_size=settings["patch_size"], merge_size=settings["merge_size"],
            min_pixels=settings.get("min_pixels") or size.get("shortest_edge") or 56 * 56,
            max_pixels=settings.get("max_pixels") or size.get("longest_edge") or 28 * 28 * 1280,
        )
    if "max_image_size" in settings:
        return ImageTokens(
            "tiles", longest_edge=(settings.get("size") or {}).get("longest_edge", 1456),
            tile_edge=settings["max_image_size"].get("longest_edge", 364),
            seq_len=proc.get("image_seq_len", settings.get("image_seq_len", 64)),
            split=settings.get("do_image_splitting", True),
        )
    if model not in ("oracle", ""):
        log.info("no image processor settings found for %s; estimating %d tokens per image", model, fallback)
    return ImageTokens("fixed", fixed=fallback)


def request_tokens(request: ChatRequest, images: ImageTokens) -> int:
    """Prompt text (chars / 4) + image tokens + the completion budget (max_tokens x n)."""
    text, n_images = 0, 0
    for message in request.messages:
        content = message["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for part in parts:
            if part["type"] == "text":
                text += len(part["text"])
            else:
                n_images += 1
    record = request.meta.get("record")
    known = [(im.width, im.height) for im in record.images] if record is not None else []
    image = sum(images.count(*known[i]) if i < len(known) else images.fixed for i in range(n_images))
    return text // CHARS_PER_TOKEN + image + request.sampling.max_tokens * request.sampling.n


class ElementTokens:
    """Beam's `element_size_fn` for RunInference: the estimated tokens of one element (a
    record's requests of one stage, keyed or not)."""

    def __init__(self, images: ImageTokens):
        self.images = images

    def __call__(self, element) -> int:
        requests = element[1] if isinstance(element, tuple) else element
        return max(1, sum(request_tokens(r, self.images) for r in requests))


def token_batches(config) -> "beam.PTransform | None":
    """Batches of a stage's (record, requests) elements cut at `config.max_batch_tokens`
    estimated tokens (and `batch_size` records), sorted by size within a bundle so that
    similar requests share a batch; None when batching by record count only.

    (Beam 2.77's ModelHandler takes `max_batch_weight`, but RunInference hands it to
    BatchElements, which refuses it; SortAndBatchElements is the transform that honours it,
    with RunInference told that its input comes batched.)"""
    if not config.max_batch_tokens:
        return None
    from apache_beam.transforms.util import SortAndBatchElements

    images = image_tokens_for(config.model, config.revision, config.vllm.mm_processor_kwargs, config.image_tokens)
    return SortAndBatchElements(min_batch_size=1, max_batch_size=config.batch_size,
                                max_batch_weight=config.max_batch_tokens, element_size_fn=ElementTokens(images))
