"""`extract-think review OUT`: a local page for labelling a sample of a published dataset (or
of the folder `extract-think plan --out` keeps).

The server listens on 127.0.0.1 only, and every path starts with a random token (printed in
the URL): a request with another token, or for another host (DNS rebinding), is refused with
403. The page loads nothing from elsewhere (its Content-Security-Policy allows this origin
only) and sets every text with `textContent`, so the data never becomes markup. Labels are
appended to `OUT/reviews/<name>.jsonl` as they are given (`pipelines.commands.reviews`).
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipelines.commands.reviews import LabelError, append_label, label_entry, labels_path, latest, read_lines, rejecting_filter, sample_ids
from pipelines.publishing.report import iter_rows, thumbnail_png
from pipelines.support.text import sentences

STATIC = Path(__file__).parent / "templates"
FILES = {"": ("review.html", "text/html; charset=utf-8"), "review.js": ("review.js", "text/javascript; charset=utf-8"),
         "review.css": ("review.css", "text/css; charset=utf-8")}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
MAX_BODY = 1 << 16


def load_items(out: str | Path, size: int, seed: int = 0) -> tuple[list[dict], dict[str, bytes]]:
    """The sample's items as the page shows them, and each one's image (PNG)."""
    chosen = sample_ids(out, size, seed)
    wanted = {record: name for name, record in chosen}
    rows = {}
    columns = ["id", "image", "questions", "statements", "extraction", "focus", "scores", "counts"]
    for r in iter_rows(out, "extraction", columns + ["golds"], batch_size=64):
        if r["id"] in wanted:
            rows[r["id"]] = {**r, "status": None, "reason": None, "detail": None}
    for r in iter_rows(out, "rejected", columns + ["answers", "status", "reason", "detail"], batch_size=64):
        if r["id"] in wanted:
            rows[r["id"]] = r
    traces = {}
    for r in iter_rows(out, "reasoning", ["record_id", "question", "reasoning", "answer"]):
        if r["record_id"] in wanted:
            traces.setdefault(r["record_id"], []).append({"question": r["question"], "reasoning": r["reasoning"], "answer": r["answer"]})
    items, images = [], {}
    for stratum, record in chosen:
        r = rows[record]
        golds = [g["text"] if g.get("letter") is None else f"{g['letter']} ({g['text']})" for g in r.get("golds") or []] \
            or list(r.get("answers") or [])
        rejected_by = rejecting_filter(r)
        verdicts = [{"filter": f, "score": s, "kept": s is not None and (r["status"] is None or rejected_by != f),
                     "detail": r["detail"] if rejected_by == f else None} for f, s in (r.get("scores") or {}).items()]
        items.append({"id": record, "stratum": stratum, "status": r["status"] or "kept", "reason": r["reason"], "detail": r["detail"],
                      "questions": list(r.get("questions") or []), "golds": golds, "focus": r.get("focus"),
                      "statements": list(r.get("statements") or []), "sentences": sentences(r.get("extraction") or ""),
                      "traces": traces.get(record, []), "verdicts": verdicts})
        images[record] = thumbnail_png(r.get("image"), side=512) or b""
    return items, images


class Review:
    """The state one server serves: the items, their images, the labels file, the reviewer."""

    def __init__(self, out: str | Path, name: str, size: int, seed: int = 0):
        self.path = labels_path(out, name)
        self.name = name
        self.items, self.images = load_items(out, size, seed)
        self.ids = {item["id"]: item for item in self.items}
        self.token = secrets.token_urlsafe(18)

    def labels(self) -> dict:
        """This reviewer's latest label of each sampled record."""
        mine = [e for e in read_lines(self.path.parent.parent, self.name) if e["record"] in self.ids]
        return {record: entry for (_, record), entry in latest(mine).items()}

    def label(self, body: dict) -> dict:
        record = body.get("record")
        if record not in self.ids:
            raise LabelError("not a record of this review's sample")
        entry = label_entry(record, body.get("label"), self.name, body.get("unsupported"))
        item = self.ids[record]
        for unit, size in (("sentence", len(item["sentences"])), ("statement", len(item["statements"]))):
            if any(i >= size for i in entry["unsupported"].get(unit, [])):
                raise LabelError(f"{unit} index out of range")
        append_label(self.path, entry)
        return entry


def handler_for(review: Review):
    class Handler(BaseHTTPRequestHandler):
        server_version = "extract-think-review"

        def log_message(self, *args):  # quiet: the terminal shows the URL and the progress
            pass

        def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _route(self) -> str | None:
            """The path after the token, or None (403 sent) for another token or host."""
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            parts = self.path.split("?", 1)[0].split("/", 2)
            if host not in ("127.0.0.1", "localhost") or len(parts) < 2 or not secrets.compare_digest(parts[1], review.token):
                self._send(HTTPStatus.FORBIDDEN, b'{"error": "forbidden"}')
                return None
            return parts[2] if len(parts) > 2 else ""

        def do_GET(self):
            route = self._route()
            if route is None:
                return
            if route == "" and not self.path.split("?", 1)[0].endswith("/"):  # relative links need the slash
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", f"/{review.token}/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if route in FILES:
                name, kind = FILES[route]
                return self._send(HTTPStatus.OK, (STATIC / name).read_bytes(), kind)
            if route == "api/items":
                return self._send(HTTPStatus.OK, json.dumps({"reviewer": review.name, "items": review.items}).encode())
            if route == "api/labels":
                return self._send(HTTPStatus.OK, json.dumps(review.labels()).encode())
            if route.startswith("image/") and route[len("image/"):] in review.images:
                return self._send(HTTPStatus.OK, review.images[route[len("image/"):]], "image/png")
            self._send(HTTPStatus.NOT_FOUND, b'{"error": "not found"}')

        def do_POST(self):
            route = self._route()
            if route is None:
                return
            if route != "api/label":
                return self._send(HTTPStatus.NOT_FOUND, b'{"error": "not found"}')
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY or "application/json" not in (self.headers.get("Content-Type") or ""):
                return self._send(HTTPStatus.BAD_REQUEST, b'{"error": "a JSON body of at most 64 KiB"}')
            try:
                body = json.loads(self.rfile.read(length))
                entry = review.label(body if isinstance(body, dict) else {})
            except (ValueError, LabelError) as e:
                return self._send(HTTPStatus.BAD_REQUEST, json.dumps({"error": str(e)}).encode())
            self._send(HTTPStatus.OK, json.dumps(entry).encode())

    return Handler


def serve(review: Review, port: int = 0) -> ThreadingHTTPServer:
    """The server, listening on 127.0.0.1 (port 0: any free one), serving in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(review))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url(review: Review, server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{review.token}/"


def add_arguments(sub) -> None:
    r = sub.add_parser("review", help="label a sample of a published dataset in the browser (a local page)")
    r.add_argument("out", help="the output folder of `extract-think run` (or of `plan --out`)")
    r.add_argument("--name", default="review", help="the reviewer's name; labels go to OUT/reviews/NAME.jsonl (default: review)")
    r.add_argument("--sample", type=int, default=100, help="records to review: kept ones and rejected ones per filter and reason (default 100)")
    r.add_argument("--seed", type=int, default=0, help="which records the sample takes (default 0)")
    r.add_argument("--port", type=int, default=0, help="the local port (default: any free one)")


def command(args) -> int:
    if not (Path(args.out) / "funnel.json").is_file():
        print(f"extract-think: review: {args.out} is not a dataset of this tool (no funnel.json)", file=sys.stderr)
        return 2
    try:
        review = Review(args.out, args.name, args.sample, args.seed)
    except LabelError as e:
        print(f"extract-think: review: {e}", file=sys.stderr)
        return 2
    server = serve(review, args.port)
    print(f"Reviewing {len(review.items)} records of {args.out} as {args.name!r}; labels go to {review.path}")
    print(f"Open {url(review, server)}  (this machine only; Ctrl-C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    print(f"{len(review.labels())} of {len(review.items)} labelled")
    return 0
