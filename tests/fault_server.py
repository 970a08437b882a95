"""A real HTTP server on loopback speaking the OpenAI chat-completions protocol, with faults
on demand: a marker in the prompt, `[[KIND xN]]`, makes the first N attempts at that prompt
fail with KIND and later ones succeed; `[[400]]` and `[[500 always]]` never succeed. Kinds:
429, 500, timeout, malformed (a cut-off body), empty (no choices), blank (an empty text),
drip (the reply one byte at a time, `drip_s` apart), wait (a 429 asking to Retry-After an
hour), badutf8 (a body that is not UTF-8), badusage (token counts that are not numbers),
huge (a valid reply padded to `huge_bytes`), echo (a 401 whose body quotes the request's
Authorization header, as some gateways do), redirect (a 307 to `redirect_url`, another
origin), redirect_local (a 307 to the same path on this server), and each shape of HOSTILE (nesting 100,000 deep in
every field, counts of 10^30, NaN, lone surrogates, wrong types, empty choices). `fault_rate` > 0 fails that share of all attempts at random
(seeded), in kinds drawn evenly from `random_kinds` (RANDOM_KINDS by default); the first attempts fail in the kinds
of `first_kinds`, in order. `capacity` > 0 serves at most that many
requests at once (the others queue), each taking `delay_s`: an endpoint of known throughput
capacity / delay_s. It counts attempts and the most requests in flight at once."""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARKER = re.compile(r"\[\[(\w+)(?: x(\d+)| (always))?\]\]")
RANDOM_KINDS = ("429", "500", "timeout", "malformed", "blank")
_DEEP = "[" * 100_000 + "]" * 100_000  # Python's decoder gives up at ~1,000 levels
_HOLE = "\"@@HOLE@@\""


def _with(completion: dict, path: tuple, raw: str) -> bytes:
    """The completion's JSON with the value at `path` (keys and indexes) replaced by the raw
    JSON text `raw` (which need not be valid JSON: NaN, 1e999, 100,000 brackets)."""
    node = completion
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = "@@HOLE@@"
    return json.dumps(completion).replace(_HOLE, raw, 1).encode()


_MESSAGE = ("choices", 0, "message")
# Replies no well-behaved server sends, each as (completion dict) -> body bytes: the shapes a
# proxy, a buggy server or an attacker can put in front of a run. Each must end as one
# request's MalformedReply (retried, then one failed record), or be repaired (surrogates).
HOSTILE = {
    "deep_body": lambda c: _DEEP.encode(),
    "deep_choices": lambda c: _with(c, ("choices",), _DEEP),
    "deep_message": lambda c: _with(c, ("choices", 0, "message"), _DEEP),
    "deep_content": lambda c: _with(c, (*_MESSAGE, "content"), _DEEP),
    "deep_reasoning": lambda c: _with(c, (*_MESSAGE, "reasoning_content"), _DEEP),
    "deep_tool_calls": lambda c: _with(c, (*_MESSAGE, "tool_calls"), _DEEP),
    "deep_usage": lambda c: _with(c, ("usage",), _DEEP),
    "deep_decodable": lambda c: _with(c, ("choices", 0, "logprobs"), "[" * 500 + "]" * 500),
    "huge_usage": lambda c: _with(c, ("usage", "prompt_tokens"), "1" + "0" * 30),
    "digits_usage": lambda c: _with(c, ("usage", "completion_tokens"), "9" * 5000),
    "negative_usage": lambda c: _with(c, ("usage", "completion_tokens"), "-5"),
    "nan_usage": lambda c: _with(c, ("usage", "prompt_tokens"), "NaN"),
    "inf_usage": lambda c: _with(c, ("usage", "prompt_tokens"), "1e999"),
    "float_usage": lambda c: _with(c, ("usage", "prompt_tokens"), "11.5"),
    "surrogate": lambda c: _with(c, (*_MESSAGE, "content"), json.dumps(c["choices"][0]["message"]["content"] + " \udcff end")),
    "surrogate_reasoning": lambda c: _with(c, (*_MESSAGE, "reasoning_content"), '"think \\ud800 more"'),
    "content_number": lambda c: _with(c, (*_MESSAGE, "content"), "42"),
    "choices_object": lambda c: _with(c, ("choices",), "{}"),
    "message_text": lambda c: _with(c, ("choices", 0, "message"), '"hello"'),
    "finish_list": lambda c: _with(c, ("choices", 0, "finish_reason"), "[1]"),
    "index_text": lambda c: _with(c, ("choices", 0, "index"), '"0"'),
    "usage_list": lambda c: _with(c, ("usage",), "[]"),
    "body_list": lambda c: b"[]",
    "body_null": lambda c: b"null",
    "choices_empty": lambda c: _with(c, ("choices",), "[]"),
}


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # socketserver's default of 5 makes bursts of connections wait seconds


class FaultServer:
    def __init__(self, answer: str = "The description settles it.\nAnswer: 4", hang_s: float = 2.0, delay_s: float = 0.0,
                 fault_rate: float = 0.0, seed: int = 0, capacity: int = 0, drip_s: float = 0.2, huge_bytes: int = 2_000_000,
                 random_kinds: tuple[str, ...] = RANDOM_KINDS, models: list[str] | None = None, fail_after: int | None = None,
                 first_kinds: tuple[str, ...] = ()):
        self.answer, self.hang_s, self.delay_s, self.fault_rate = answer, hang_s, delay_s, fault_rate
        self.drip_s, self.huge_bytes, self.random_kinds = drip_s, huge_bytes, random_kinds
        self.redirect_url = None  # where `redirect` sends clients (another origin)
        self.models = models  # what GET /v1/models lists (None: the route is missing, as on some servers)
        self.fail_after = fail_after  # after this many replies every attempt gets a 503 (None: never)
        self._rng = random.Random(seed)
        self.first_kinds = first_kinds  # the first attempts the server sees fail in these kinds, in order (then at random)
        self.requests = 0
        self.faults: Counter = Counter()  # kind -> attempts failed at random
        self.served = 0  # successful replies
        self.first_at = self.last_at = None  # when the first request came in, the last reply went out
        self._slots = threading.Semaphore(capacity) if capacity else None
        self.attempts: Counter = Counter()
        self.auth: set[str] = set()
        self.bodies: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections, as with a real server

            def log_message(self, *args):
                pass

            def do_GET(self):  # /v1/models: the served model (when `models` is given); else the stats of what it has seen
                if self.path.rstrip("/").endswith("/models"):
                    if server.models is None:
                        return server._send(self, 404, {"error": {"message": "no such route"}})
                    return server._send(self, 200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})
                server._send(self, 200, server.stats())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.first_at = server.first_at or time.time()
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server.auth.add(self.headers.get("Authorization", ""))
                    server.bodies.append(body)
                try:
                    if server._slots is None:
                        server._answer(self, body)
                    else:
                        with server._slots:
                            server._answer(self, body)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                        server.last_at = time.time()

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stats(self) -> dict:
        with self._lock:
            return {"served": self.served, "first_at": self.first_at, "last_at": self.last_at,
                    "max_in_flight": self.max_in_flight, "faults": dict(self.faults), "attempts": sum(self.attempts.values())}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _prompt(self, body) -> str:
        content = body["messages"][-1]["content"]
        if isinstance(content, str):
            return content
        # images count as part of the prompt: two records with the same words are two prompts
        return " ".join(p["text"] if p["type"] == "text" else hashlib.sha256(p["image_url"]["url"].encode()).hexdigest()[:12]
                        for p in content)

    def _answer(self, handler, body):
        prompt = self._prompt(body)
        with self._lock:
            self.attempts[prompt] += 1
            attempt = self.attempts[prompt]
            self.requests += 1
            chance = self._rng.random()
            random_kind = self._rng.choice(self.random_kinds) if chance < self.fault_rate else None
            if self.requests <= len(self.first_kinds):
                random_kind = self.first_kinds[self.requests - 1]
            if random_kind:
                self.faults[random_kind] += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        m = MARKER.search(prompt)
        if random_kind:
            kind, times, always = random_kind, 0, "always"
        elif m:
            kind, times, always = m.group(1), int(m.group(2) or 0), m.group(3)
        if random_kind or m:
            if kind == "400":
                return self._send(handler, 400, {"error": {"message": "bad request"}})
            if kind == "echo":
                auth = handler.headers.get("Authorization", "")
                return self._send(handler, 401, {"error": {"message": f"invalid credentials: {auth}", "key": auth.split()[-1]}})
            if always or attempt <= times:
                if kind == "429":
                    return self._send(handler, 429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
                if kind == "500":
                    return self._send(handler, 500, {"error": {"message": "boom"}})
                if kind == "timeout":
                    time.sleep(self.hang_s)
                    return self._send(handler, 200, self._completion(body, self.answer))
                if kind == "malformed":
                    raw = json.dumps(self._completion(body, self.answer))[:40].encode()
                    handler.send_response(200)
                    handler.send_header("Content-Type", "application/json")
                    handler.send_header("Content-Length", str(len(raw)))
                    handler.end_headers()
                    handler.wfile.write(raw)
                    return
                if kind == "empty":
                    return self._send(handler, 200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"], "choices": []})
                if kind == "blank":  # a well-formed reply with no text
                    return self._send(handler, 200, self._completion(body, ""))
                if kind == "wait":
                    return self._send(handler, 429, {"error": {"message": "come back later"}}, {"Retry-After": "3600"})
                if kind == "drip":
                    return self._drip(handler, json.dumps(self._completion(body, self.answer)).encode())
                if kind == "badutf8":
                    return self._send_raw(handler, 200, json.dumps(self._completion(body, "caf\u00e9")).encode().replace(b"\\u00e9", b"\xff\xfe"))
                if kind == "badusage":
                    completion = self._completion(body, self.answer)
                    completion["usage"]["prompt_tokens"] = "lots"
                    return self._send(handler, 200, completion)
                if kind in ("redirect", "redirect_local"):  # 307: the client must send the body again, to Location
                    where = (self.redirect_url or "http://127.0.0.1:9") if kind == "redirect" else "/v1"
                    return self._send(handler, 307, {}, {"Location": f"{where}/chat/completions"})
                if kind in HOSTILE:
                    return self._send_raw(handler, 200, HOSTILE[kind](self._completion(body, self.answer)))
                if kind == "huge":
                    completion = self._completion(body, self.answer)
                    completion["padding"] = "x" * self.huge_bytes
                    return self._send(handler, 200, completion)
        with self._lock:
            broken = self.fail_after is not None and self.served >= self.fail_after
            if not broken:
                self.served += 1
        if broken:  # the endpoint went down after serving `fail_after` replies
            return self._send(handler, 503, {"error": {"message": "the server is down"}})
        self._send(handler, 200, self._completion(body, self.answer))

    def _completion(self, body, text):
        n = body.get("n", 1)
        return {
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"} for i in range(n)],
            "usage": {"prompt_tokens": 11, "completion_tokens": 5 * n, "total_tokens": 11 + 5 * n},
        }

    def _drip(self, handler, raw: bytes):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        try:
            for i in range(len(raw)):
                handler.wfile.write(raw[i:i + 1])
                handler.wfile.flush()
                time.sleep(self.drip_s)
        except OSError:  # the client gave up
            pass

    def _send(self, handler, status, payload, headers=None):
        self._send_raw(handler, status, json.dumps(payload).encode(), headers)

    def _send_raw(self, handler, status, raw: bytes, headers=None):
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(raw)


if __name__ == "__main__":  # a server in its own process: python -m tests.fault_server --capacity 16 --delay 0.2
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--capacity", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--answer", default="The description settles it.\nAnswer: 4")
    args = ap.parse_args()
    srv = FaultServer(answer=args.answer, delay_s=args.delay, capacity=args.capacity, fault_rate=args.fault_rate)
    print(srv.url, flush=True)
    threading.Event().wait()
