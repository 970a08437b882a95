"""The `openai` teacher: any OpenAI-compatible chat endpoint (a vLLM or SGLang server, TGI,
hosted APIs) through the official async client.

Requests of a batch run concurrently, at most `max_concurrency` at a time, on one event
loop that lives in a background thread for the life of the teacher (so connections are
reused across batches). Each request has its own timeout and is retried with exponential
backoff and jitter on 429, 5xx, timeouts, connection errors and malformed bodies, waiting
as long as a `Retry-After` header asks. Other 4xx answers are not retried. After the last
attempt the request's reply carries the error and the record fails; the batch goes on.

The API key is read from the environment variable named in the recipe (`api_key_env`);
it is never written to a file, a log or an error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
from typing import Sequence

import openai

from pipelines.record import TeacherOutput
from pipelines.recipe import TeacherConfig
from pipelines.teachers.base import ChatRequest, TeacherReply, split_thinking

log = logging.getLogger(__name__)
class MalformedReply(ValueError):
    pass


# Transient by nature: asking again may succeed. A cut-off body surfaces as a JSON error,
# a body without choices or with only empty texts as MalformedReply; any other exception is
# a bug and propagates.
_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError,
              openai.APIResponseValidationError, json.JSONDecodeError, MalformedReply)


def _describe(error: BaseException) -> str:
    if isinstance(error, openai.APIStatusError):
        body = error.body.get("message", "") if isinstance(error.body, dict) else ""
        detail = f" ({str(body)[:200]})" if body and error.status_code < 500 else ""
        return f"HTTP {error.status_code}: {type(error).__name__}{detail}"
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection error"
    return f"{type(error).__name__}: {str(error)[:200]}"


def _retry_after(error: BaseException) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def parse_completion(response, n: int) -> TeacherReply:
    """A chat completion as a reply; raises MalformedReply when it is not one."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise MalformedReply("the response has no choices")
    usage = getattr(response, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_total = int(getattr(usage, "completion_tokens", 0) or 0)
    outputs = []
    for choice in sorted(choices, key=lambda c: c.index)[:n]:
        message = choice.message
        text = message.content or ""
        # vLLM's reasoning parsers return the thinking apart; otherwise split <think> tags.
        thinking = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None) or ""
        if not thinking:
            thinking, text = split_thinking(text)
        outputs.append(TeacherOutput(text.strip(), choice.finish_reason or "stop", prompt_tokens,
                                     completion_total // max(len(choices), 1), thinking))
    if not any(o.text or o.thinking for o in outputs):  # an endpoint glitch, not an answer: ask again
        raise MalformedReply("every completion is empty")
    return TeacherReply(tuple(outputs))


class OpenAITeacher:
    backend = "openai"

    def __init__(self, config: TeacherConfig):
        self.opts = config.openai
        self.model, self.revision = config.model, config.revision
        if not self.opts.base_url:
            raise ValueError("teacher.openai.base_url is required for the openai backend")
        key = os.environ.get(self.opts.api_key_env)
        if not key:
            log.warning("environment variable %s is not set; sending no API key", self.opts.api_key_env)
        self._key = key or "EMPTY"  # local servers accept any key
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="openai-teacher", daemon=True)
        self._thread.start()
        self._client = self._call(self._make_client())

    async def _make_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=self._key, base_url=self.opts.base_url, max_retries=0,
                                  timeout=self.opts.timeout_s)

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def generate(self, requests: Sequence[ChatRequest]) -> list[TeacherReply]:
        return self._call(self._all(requests))

    async def _all(self, requests: Sequence[ChatRequest]) -> list[TeacherReply]:
        gate = asyncio.Semaphore(self.opts.max_concurrency)
        return list(await asyncio.gather(*(self._one(r, gate) for r in requests)))

    async def _one(self, request: ChatRequest, gate: asyncio.Semaphore) -> TeacherReply:
        s = request.sampling
        body = dict(model=self.model, messages=request.messages, temperature=s.temperature, top_p=s.top_p,
                    max_tokens=s.max_tokens, n=s.n, timeout=self.opts.timeout_s)
        if s.seed is not None:
            body["seed"] = s.seed
        if self.opts.extra_body:
            body["extra_body"] = dict(self.opts.extra_body)
        last = "no attempt made"
        for attempt in range(self.opts.max_retries + 1):
            async with gate:
                try:
                    return parse_completion(await self._client.chat.completions.create(**body), s.n)
                except _RETRYABLE as e:
                    last = _describe(e)
                    wait = _retry_after(e)
                except openai.APIStatusError as e:  # 4xx other than 429: asking again will not help
                    return TeacherReply(error=f"{_describe(e)} (not retried)")
            if attempt < self.opts.max_retries:
                backoff = min(self.opts.backoff_max_s, self.opts.backoff_s * 2**attempt) * random.uniform(0.5, 1.5)
                await asyncio.sleep(wait if wait is not None else backoff)
        return TeacherReply(error=f"{last} (after {self.opts.max_retries + 1} attempts)")

    def close(self) -> None:
        if self._loop.is_running():
            self._call(self._client.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
