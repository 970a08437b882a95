"""The teacher interface: OpenAI-style chat messages in; text, finish reason and token
counts out.

Every backend implements `generate(requests) -> replies`, one reply per request, in order.
A backend never raises for one bad request: it returns a `TeacherReply` whose `error` says
what went wrong, so one failure fails one record, not the batch. A backend that can start
requests ahead of the call that needs them (the vLLM engine) also has
`prefetch(requests)`, which returns at once; a later `generate` of equal requests collects
their replies.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from pipelines.config.recipe import Sampling
from pipelines.core.record import ImageData, TeacherOutput


class TeacherDown(RuntimeError):
    """The teacher failed every request of `fail_fast_batches` batches in a row: it is gone (an
    endpoint down, a key revoked), and the run stops rather than fail record after record."""


@dataclass
class ChatRequest:
    """`messages` follow the OpenAI chat format; image parts are `image_url` parts with a
    data URI. `meta` travels beside the prompt and is never shown to a real model (the stage
    name, the record, the turn index: for metrics, and for the oracle test instrument)."""

    messages: list[dict]
    sampling: Sampling
    meta: dict = field(default_factory=dict)
    # A JSON schema the reply must follow, for backends that can constrain their output
    # (vLLM's structured outputs, an OpenAI-compatible `response_format`); part of the cache key.
    schema: dict | None = None


@dataclass(frozen=True)
class TeacherReply:
    outputs: tuple[TeacherOutput, ...] = ()  # `sampling.n` completions
    error: str | None = None
    meta: dict = field(default_factory=dict)  # backend-specific facts (the oracle's injections)


class Teacher(Protocol):
    backend: str
    model: str
    revision: str

    def generate(self, requests: Sequence[ChatRequest]) -> list[TeacherReply]: ...

    def close(self) -> None: ...


def data_uri(image: ImageData) -> str:
    mime = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}.get(image.format, "image/png")
    return f"data:{mime};base64,{base64.b64encode(image.bytes).decode()}"


def user_message(text: str, images: Sequence[ImageData] = ()) -> list[dict]:
    """A one-turn conversation. Text-only prompts use plain string content, which every
    chat template accepts; prompts with images use content parts, images first."""
    if not images:
        return [{"role": "user", "content": text}]
    parts = [{"type": "image_url", "image_url": {"url": data_uri(im)}} for im in images]
    return [{"role": "user", "content": parts + [{"type": "text", "text": text}]}]


def decode_data_uri(url: str) -> bytes:
    if not url.startswith("data:") or ";base64," not in url:
        raise ValueError(f"only base64 data URIs are supported here, got {url[:40]!r}")
    return base64.b64decode(url.split(";base64,", 1)[1])


def split_thinking(text: str) -> tuple[str, str]:
    """(thinking, answer text) for models that think inside <think>...</think>."""
    if "</think>" in text:
        head, tail = text.split("</think>", 1)
        return head.replace("<think>", "").strip(), tail.strip()
    return "", text.strip()
