"""A real HTTP server on loopback speaking the OpenAI chat-completions protocol, with faults
on demand: a marker in the prompt, `[[KIND xN]]`, makes the first N attempts at that prompt
fail with KIND (429, 500, timeout, malformed, empty) and later ones succeed; `[[400]]` and
`[[500 always]]` never succeed. It counts attempts and the most requests in flight at once."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARKER = re.compile(r"\[\[(\w+)(?: x(\d+)| (always))?\]\]")


class FaultServer:
    def __init__(self, answer: str = "The description settles it.\nAnswer: 4", hang_s: float = 2.0, delay_s: float = 0.0):
        self.answer, self.hang_s, self.delay_s = answer, hang_s, delay_s
        self.attempts: Counter = Counter()
        self.auth: set[str] = set()
        self.bodies: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server.auth.add(self.headers.get("Authorization", ""))
                    server.bodies.append(body)
                try:
                    server._answer(self, body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

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
        if self.delay_s:
            time.sleep(self.delay_s)
        m = MARKER.search(prompt)
        if m:
            kind, times, always = m.group(1), int(m.group(2) or 0), m.group(3)
            if kind == "400":
                return self._send(handler, 400, {"error": {"message": "bad request"}})
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
        self._send(handler, 200, self._completion(body, self.answer))

    def _completion(self, body, text):
        n = body.get("n", 1)
        return {
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"} for i in range(n)],
            "usage": {"prompt_tokens": 11, "completion_tokens": 5 * n, "total_tokens": 11 + 5 * n},
        }

    def _send(self, handler, status, payload, headers=None):
        raw = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(raw)
