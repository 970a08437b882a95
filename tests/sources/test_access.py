"""A dataset file cannot make the pipeline read, send or publish anything outside the folders
its recipe names: not by `..`, absolute paths, symbolic links, file:// or fsspec chains, not
by URLs (unless the source allows them), not from devices or FIFOs; and a detail never quotes
a file's bytes."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.parquet as pq
import pytest

from pipelines.sources.access import ImageAccess, resolve
from pipelines.sources.image_files import Problem
from tests.sources.helpers import conserved, encode, load, picture, run_recipe


class ImageServer:
    """Serves one PNG at any path and counts the requests."""

    def __init__(self, data: bytes):
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def image_server():
    s = ImageServer(encode(picture(9)))
    yield s
    s.close()


def _entry(marker, image):
    return {"id": marker, "image": image, "conversations": [{"from": "human", "value": "<image>\nWhat is shown?"},
                                                            {"from": "gpt", "value": "boxes"}]}


def _hostile(tmp_path, url):
    """A LLaVA set whose image folder is tmp/set/img, and files around it it must not reach."""
    root = tmp_path / "set" / "img"
    root.mkdir(parents=True)
    secret = tmp_path / "private"
    secret.mkdir()
    (secret / "x.png").write_bytes(encode(picture(1)))  # a real image, just not the dataset's
    (root / "ok.png").write_bytes(encode(picture(2)))
    os.symlink(secret / "x.png", root / "link.png")
    os.mkfifo(root / "pipe.png")
    (root / "padded.png").write_bytes(encode(picture(3, (64, 64))) + b"\0" * 3_000_000)
    (root / "big.png").write_bytes(encode(picture(4, (64, 64))) + b"\0" * 6_000_000)
    cases = {
        "ok": ("ok.png", None),
        "padded": ("padded.png", None),  # kept, but its 3 MB of trailing bytes are not
        "dotdot": ("../../private/x.png", "image_outside_root"),
        "absolute": (str(secret / "x.png"), "image_outside_root"),
        "symlink": ("link.png", "image_outside_root"),
        "file-url": (f"file://{secret / 'x.png'}", "image_outside_root"),
        "chain": (f"zip://x.png::file://{secret / 'a.zip'}", "image_remote_not_allowed"),
        "http": (f"{url}/x.png", "image_remote_not_allowed"),
        "passwd": ("/etc/passwd", "image_outside_root"),
        "environ": ("/proc/self/environ", "image_outside_root"),
        "zero": ("/dev/zero", "image_outside_root"),
        "fifo": ("pipe.png", "image_not_a_file"),
        "big": ("big.png", "image_file_too_large"),
    }
    lines = [json.dumps(_entry(marker, image)) for marker, (image, _) in cases.items()]
    (tmp_path / "set" / "data.jsonl").write_text("\n".join(lines) + "\n")
    source = {"kind": "llava", "name": "hostile", "llava": {"json": str(tmp_path / "set" / "data.jsonl"), "image_root": str(root)}}
    return source, cases


def test_references_outside_the_image_folder_are_rejected_and_nothing_of_them_published(tmp_path, image_server):
    source, cases = _hostile(tmp_path, image_server.url)
    outcome = run_recipe(tmp_path, [source], ingest={"images": {"max_file_bytes": 5_000_000}, "dedup": {"near": False}})
    assert conserved(outcome) and outcome.funnel.kept == 2
    rows = {r["origin"].split("(id ")[1].rstrip(")"): r for r in load(outcome, "rejected")}
    for marker, (_, reason) in cases.items():
        if reason:
            assert rows[marker]["reason"] == reason, (marker, rows[marker]["detail"])
    assert image_server.requests == 0  # no URL in a dataset file is fetched
    kept = {r["origin"].split("(id ")[1].rstrip(")"): r for r in load(outcome, "extraction")}
    assert set(kept) == {"ok", "padded"}
    padded = pq.read_table(next((outcome.out_dir / "extraction").glob("*.parquet")))
    assert max(len(im["bytes"]) for im in padded["image"].to_pylist()) < 100_000  # re-encoded without its padding
    published = b"".join(p.read_bytes() for p in outcome.out_dir.rglob("*") if p.is_file())
    for leaked in (b"root:x:0", os.environ.get("PATH", "PATH").encode(), (tmp_path / "private" / "x.png").read_bytes()[:64]):
        assert leaked not in published


def test_remote_images_only_with_allow_remote_and_a_listed_scheme(tmp_path, image_server):
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "data.jsonl").write_text(json.dumps(_entry("web", f"{image_server.url}/pic.png")) + "\n")
    base = {"kind": "llava", "name": "web", "llava": {"json": str(folder / "data.jsonl")}}
    only_https = run_recipe(tmp_path / "a", [{**base, "allow_remote": True, "remote_schemes": ["https"]}], filters=None)
    assert only_https.funnel.kept == 0 and image_server.requests == 0
    allowed = run_recipe(tmp_path / "b", [{**base, "allow_remote": True}])
    assert allowed.funnel.kept == 1 and image_server.requests > 0


@pytest.mark.parametrize("ref, root, expected", [
    ("a/b.png", "/data/img", "/data/img/a/b.png"),
    ("a/../b.png", "/data/img", "/data/img/b.png"),
    ("../img2/b.png", "/data/img", "image_outside_root"),
    ("/data/img/c.png", "/data/img", "/data/img/c.png"),
    ("/data/imgX/c.png", "/data/img", "image_outside_root"),  # a sibling sharing the prefix
    ("x.png", "", "image_outside_root"),
    ("sub/x.png", "s3://bucket/img", "s3://bucket/img/sub/x.png"),
    ("../other/x.png", "s3://bucket/img", "image_outside_root"),
    ("s3://bucket/img/y.png", "s3://bucket/img", "s3://bucket/img/y.png"),
    ("s3://bucket/private/y.png", "s3://bucket/img", "image_remote_not_allowed"),
    ("https://example.com/a.png", "/data/img", "image_remote_not_allowed"),
])
def test_resolution(ref, root, expected):
    try:
        where, _ = resolve(ref, ImageAccess(root), "image")
    except Problem as p:
        where = p.reason
    assert where == expected
