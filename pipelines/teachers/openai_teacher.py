"""The `openai` teacher: any OpenAI-compatible chat endpoint (a vLLM or SGLang server, TGI,
hosted APIs) through the official async client.

Requests of a batch run concurrently, at most `max_concurrency` at a time, on one event
loop that lives in a background thread for the life of the teacher (so connections are
reused across batches). Each attempt has a deadline (`timeout_s`, from sending the request
to the last byte of the reply: a server that drips bytes cannot hold it) and a size limit
(`max_response_bytes`, read as the bytes arrive). Attempts are retried with exponential
backoff and jitter on 429, 5xx, timeouts, connection errors and malformed replies (a body
that is cut off, too large, not UTF-8, not JSON, or whose fields have the wrong types),
waiting as long as a `Retry-After` header asks but never longer than `backoff_max_s`.
Other 4xx answers are not retried, nor is a redirect to another scheme, host or port (it
would carry the prompts elsewhere; one within the endpoint's origin is followed). After the
last attempt the request's reply carries the error and the record fails; the batch goes on.

The API key is read from the environment variable named in the recipe (`api_key_env`);
it is never written to a file, a log or an error message (error texts are scrubbed:
servers may echo the Authorization header).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from typing import Any, Sequence

import httpx2
import openai

from pipelines.config.recipe import TeacherConfig
from pipelines.core.jsontext import bounded_json
from pipelines.core.record import MAX_TOKEN_COUNT, TeacherOutput
from pipelines.core.secrets import register_env, scrub
from pipelines.teachers.base import ChatRequest, TeacherReply, split_thinking
from pipelines.teachers.fleet import Fleet

log = logging.getLogger(__name__)


class MalformedReply(ValueError):
    pass


class ResponseTooLarge(openai.OpenAIError):
    """Raised while a reply's bytes arrive (an OpenAIError, so the client passes it on as is)."""


class RedirectRefused(openai.OpenAIError):
    """The endpoint answered with a redirect to another scheme, host or port: following it
    would send the prompts (and the key) somewhere the recipe did not name. Not retried."""


_REDIRECTS = (301, 302, 303, 307, 308)


# Transient by nature: asking again may succeed. Any other exception is a bug and propagates.
_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError,
              openai.APIResponseValidationError, asyncio.TimeoutError, ResponseTooLarge, MalformedReply)


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner, limit: int):
        self._inner, self._limit = inner, limit

    async def __aiter__(self):
        total = 0
        async for chunk in self._inner:
            total += len(chunk)
            if total > self._limit:
                raise ResponseTooLarge(f"the reply is longer than max_response_bytes ({self._limit})")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CappedTransport(httpx2.AsyncBaseTransport):
    """The default transport, with every response body cut off at `limit` bytes."""

    def __init__(self, limit: int):
        self._inner = httpx2.AsyncHTTPTransport(limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100))
        self._limit = limit

    async def handle_async_request(self, request):
        response = await self._inner.handle_async_request(request)
        if response.status_code in _REDIRECTS and "location" in response.headers:
            target = request.url.join(response.headers["location"])
            if (target.scheme, target.host, target.port) != (request.url.scheme, request.url.host, request.url.port):
                await response.aclose()
                raise RedirectRefused(f"the endpoint redirects to another origin ({target.scheme}://{target.host}"
                                      f"{':' + str(target.port) if target.port else ''}); not followed")
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self._limit:
            await response.aclose()
            raise ResponseTooLarge(f"the reply announces {length} bytes, more than max_response_bytes ({self._limit})")
        response.stream = _CappedStream(response.stream, self._limit)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _describe(error: BaseException) -> str:
    if isinstance(error, openai.APIStatusError):
        body = error.body.get("message", "") if isinstance(error.body, dict) else ""
        detail = f" ({str(body)[:200]})" if body and error.status_code < 500 else ""
        return scrub(f"HTTP {error.status_code}: {type(error).__name__}{detail}")
    if isinstance(error, (openai.APITimeoutError, asyncio.TimeoutError)):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection error"
    return scrub(f"{type(error).__name__}: {str(error)[:200]}")


def _retry_after(error: BaseException) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _tokens(usage: dict, name: str) -> int:
    value = usage.get(name) or 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKEN_COUNT:
        raise MalformedReply(f"usage.{name} is {str(value)[:40]!r}, not a token count")
    return value


def _text(message: dict, name: str) -> str:
    value = message.get(name)
    if value is not None and not isinstance(value, str):
        raise MalformedReply(f"message.{name} is a {type(value).__name__}, not text")
    return value or ""


def parse_completion(body: bytes | str | dict, n: int) -> TeacherReply:
    """A chat completion (its JSON body, or the body parsed) as a reply; raises
    MalformedReply for anything that is not one: invalid UTF-8 or JSON, nesting past
    MAX_JSON_DEPTH, missing choices, fields of the wrong type, token counts out of range,
    only empty texts. Texts with lone surrogates come back repaired (TeacherOutput)."""
    try:
        data = body if isinstance(body, dict) else bounded_json(body)
    except ValueError as e:
        raise MalformedReply(f"the reply is {e}") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise MalformedReply("the response has no choices")
    usage = data.get("usage")
    usage = {} if usage is None else usage
    if not isinstance(usage, dict):
        raise MalformedReply("usage is not an object")
    prompt_tokens, completion_total = _tokens(usage, "prompt_tokens"), _tokens(usage, "completion_tokens")
    if not all(isinstance(c, dict) and isinstance(c.get("message"), dict) and isinstance(c.get("index", 0), int) for c in choices):
        raise MalformedReply("a choice is not an object with a message")
    outputs = []
    for choice in sorted(choices, key=lambda c: c.get("index", 0))[:n]:
        message = choice["message"]
        text = _text(message, "content")
        # vLLM's reasoning parsers return the thinking apart; otherwise split <think> tags.
        thinking = _text(message, "reasoning_content") or _text(message, "reasoning")
        if not thinking:
            thinking, text = split_thinking(text)
        finish = choice.get("finish_reason") or "stop"
        if not isinstance(finish, str):
            raise MalformedReply("finish_reason is not text")
        try:
            outputs.append(TeacherOutput(text.strip(), finish, prompt_tokens, completion_total // len(choices), thinking))
        except ValueError as e:
            raise MalformedReply(str(e)) from None
    if not any(o.text or o.thinking for o in outputs):  # an endpoint glitch, not an answer: ask again
        raise MalformedReply("every completion is empty")
    return TeacherReply(tuple(outputs))


def endpoints_of(opts) -> list[str]:
    """The endpoints an `openai` block names: `base_url`, then `base_urls`, each once."""
    return list(dict.fromkeys([*([opts.base_url] if opts.base_url else []), *opts.base_urls]))


# Failures that say the endpoint (not the request) is in trouble: it rests, and the next
# attempt goes elsewhere.
_TRANSPORT = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError,
              asyncio.TimeoutError)


class OpenAITeacher:
    backend = "openai"

    def __init__(self, config: TeacherConfig):
        self.opts = config.openai
        self.model, self.revision = config.model, config.revision
        urls = endpoints_of(self.opts)
        if not urls:
            raise ValueError("teacher.openai.base_url is required for the openai backend")
        register_env(self.opts.api_key_env)
        key = os.environ.get(self.opts.api_key_env)
        if not key:
            log.warning("environment variable %s is not set; sending no API key", self.opts.api_key_env)
        self._key = key or "EMPTY"  # local servers accept any key
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="openai-teacher", daemon=True)
        self._thread.start()
        self.fleet = Fleet(urls, self.opts.cooldown_s)
        for endpoint in self.fleet.endpoints:
            endpoint.client = self._call(self._make_client(endpoint.url))

    async def _make_client(self, url: str) -> openai.AsyncOpenAI:
        http = openai.DefaultAsyncHttpxClient(transport=_CappedTransport(self.opts.max_response_bytes), timeout=self.opts.timeout_s)
        return openai.AsyncOpenAI(api_key=self._key, base_url=url, max_retries=0, timeout=self.opts.timeout_s, http_client=http)

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def generate(self, requests: Sequence[ChatRequest]) -> list[TeacherReply]:
        return self._call(self._all(requests))

    def endpoint_stats(self) -> dict[str, tuple[int, int]]:
        """Per endpoint (host:port): attempts sent and failed for a transport reason, since the
        last call of this method (the handler counts them into the funnel)."""
        return self.fleet.take_stats()

    def endpoints_up(self) -> tuple[int, int]:
        """(endpoints not resting after a failure, endpoints)."""
        return self.fleet.awake(), len(self.fleet.endpoints)

    async def _all(self, requests: Sequence[ChatRequest]) -> list[TeacherReply]:
        gate = asyncio.Semaphore(self.opts.max_concurrency * len(self.fleet.endpoints))
        return list(await asyncio.gather(*(self._one(r, gate) for r in requests)))

    async def _one(self, request: ChatRequest, gate: asyncio.Semaphore) -> TeacherReply:
        s = request.sampling
        body = dict(model=self.model, messages=request.messages, temperature=s.temperature, top_p=s.top_p,
                    max_tokens=s.max_tokens, n=s.n, timeout=self.opts.timeout_s)
        if s.seed is not None:
            body["seed"] = s.seed
        if self.opts.extra_body:
            body["extra_body"] = dict(self.opts.extra_body)
        if request.schema is not None and self.opts.json_schema:
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "reply", "strict": True, "schema": request.schema}}
        last = "no attempt made"
        for attempt in range(self.opts.max_retries + 1):
            async with gate:
                endpoint, transport = self.fleet.pick(), False
                try:
                    return parse_completion(await asyncio.wait_for(self._attempt(endpoint.client, body), self.opts.timeout_s), s.n)
                except _RETRYABLE as e:
                    transport = isinstance(e, _TRANSPORT)
                    last = _describe(e) + (f" at {endpoint.label}" if len(self.fleet.endpoints) > 1 else "")
                    wait = _retry_after(e)
                except openai.APIStatusError as e:  # 4xx other than 429: asking again will not help
                    return TeacherReply(error=f"{_describe(e)} (not retried)")
                except RedirectRefused as e:
                    return TeacherReply(error=f"{_describe(e)} (not retried)")
                except UnicodeEncodeError:  # text no request can carry (replies are repaired; this guards the rest)
                    return TeacherReply(error="the request holds text that is not valid Unicode (not sent)")
                finally:
                    self.fleet.done(endpoint, transport)
            if attempt < self.opts.max_retries and not (transport and self.fleet.awake()):  # another endpoint is up: at once
                backoff = min(self.opts.backoff_max_s, self.opts.backoff_s * 2**attempt) * random.uniform(0.5, 1.5)
                await asyncio.sleep(min(wait, self.opts.backoff_max_s) if wait is not None else backoff)
        return TeacherReply(error=f"{last} (after {self.opts.max_retries + 1} attempts)")

    async def _attempt(self, client, body: dict[str, Any]) -> bytes:
        """One request; the reply's raw bytes (read within max_response_bytes)."""
        raw = await client.chat.completions.with_raw_response.create(**body)
        return raw.http_response.content

    def close(self) -> None:
        if self._loop.is_running():
            for endpoint in self.fleet.endpoints:
                self._call(endpoint.client.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
