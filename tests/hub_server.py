"""A loopback stand-in for the Hugging Face Hub: the endpoints `huggingface_hub` uses to
create a dataset repo and commit a folder to it through the LFS protocol (the client's path
when Xet is off, HF_HUB_DISABLE_XET=1):

    POST /api/repos/create
    POST /api/validate-yaml                               the card's YAML header
    POST /api/datasets/{repo}/preupload/{revision}        which files go by LFS
    POST /datasets/{repo}.git/info/lfs/objects/batch      where to put them
    PUT  /lfs/{oid}                                       the bytes (sha256 checked)
    POST /api/datasets/{repo}/commit/{revision}           NDJSON: header, file, lfsFile, deletedFile lines
    GET  /api/datasets/{repo}/tree/{revision}             the committed files (list_repo_files)
    HEAD, GET /datasets/{repo}/resolve/{revision}/{path}  a committed file (hf_hub_download)

It keeps the committed files per repo, every request's method, path and Authorization
header, and fails the first `faults[path-kind]` requests of a kind with 500 or 429.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LFS_SUFFIXES = (".parquet", ".png", ".jpg", ".arrow")


class HubServer:
    def __init__(self, token: str, faults: dict[str, list[int]] | None = None):
        self.token = token
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.repos: dict[str, dict] = {}  # repo id -> {"private": bool, "files": {path: bytes}, "commits": [...]}
        self.lfs: dict[str, bytes] = {}
        self.validated: list[dict] = []  # dataset card headers the client sent for validation
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(self, status: int, payload=None, headers=None):
                data = json.dumps(payload if payload is not None else {}).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fault(self, kind: str) -> bool:
                with hub.lock:
                    queue = hub.faults.get(kind) or []
                    status = queue.pop(0) if queue else None
                if status:
                    self._send(status, {"error": f"injected {status}"})
                    return True
                return False

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {hub.token}":
                    self._send(401, {"error": "Invalid credentials in Authorization header"})
                    return False
                return True

            def _handle(self, method: str):
                body = self._body()
                with hub.lock:
                    hub.requests.append((method, self.path, self.headers.get("Authorization")))
                path = self.path.split("?")[0]
                if method == "PUT" and path.startswith("/lfs/"):
                    if self._fault("lfs"):
                        return
                    oid = path.rsplit("/", 1)[1]
                    if hashlib.sha256(body).hexdigest() != oid:
                        return self._send(400, {"error": "sha256 mismatch"})
                    hub.lfs[oid] = body
                    return self._send(200)
                if not self._authorised():
                    return
                if path == "/api/validate-yaml":  # the client checks a README's metadata before committing it
                    return self._validate_yaml(json.loads(body))
                if path == "/api/repos/create":
                    if self._fault("create"):
                        return
                    req = json.loads(body)
                    repo = f"{req.get('organization')}/{req['name']}" if req.get("organization") else req["name"]
                    if req.get("type") != "dataset":
                        return self._send(400, {"error": "only dataset repos here"})
                    with hub.lock:
                        if repo in hub.repos:
                            return self._send(409, {"error": "You already created this dataset repo", "url": f"{hub.url}/datasets/{repo}"})
                        private = bool(req.get("private")) or req.get("visibility") == "private"
                        hub.repos[repo] = {"private": private, "files": {}, "commits": []}
                    return self._send(200, {"url": f"{hub.url}/datasets/{repo}", "name": repo})
                m = re.fullmatch(r"/api/datasets/(.+?)/(preupload|commit)/(.+)", path)
                if m:
                    repo, action, _revision = m.groups()
                    if repo not in hub.repos:
                        return self._send(404, {"error": "Repository not found"})
                    if self._fault(action):
                        return
                    if action == "preupload":
                        files = json.loads(body)["files"]
                        return self._send(200, {"files": [{"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
                                                           "shouldIgnore": False} for f in files]})
                    return self._commit(repo, body)
                m = re.fullmatch(r"/api/datasets/(.+?)/tree/([^/]+)", path)
                if method == "GET" and m:  # list_repo_files: the files of the last commit
                    repo = m.group(1)
                    if repo not in hub.repos:
                        return self._send(404, {"error": "Repository not found"})
                    files = hub.repos[repo]["files"]
                    return self._send(200, [{"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                                            for p, b in sorted(files.items())])
                m = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
                if method in ("GET", "HEAD") and m:  # hf_hub_download: a committed file's bytes
                    repo, _revision, file = m.group(1), m.group(2), urllib.parse.unquote(m.group(3))
                    data = hub.repos.get(repo, {}).get("files", {}).get(file)
                    if data is None:
                        return self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                    commits = hub.repos[repo]["commits"]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
                    self.send_header("X-Repo-Commit", commits[-1]["oid"] if commits else "0" * 40)
                    self.end_headers()
                    if method == "GET":
                        self.wfile.write(data)
                    return
                m = re.fullmatch(r"/datasets/(.+?)\.git/info/lfs/objects/batch", path)
                if m:
                    if self._fault("batch"):
                        return
                    objects = json.loads(body)["objects"]
                    return self._send(200, {"transfer": "basic", "objects": [
                        {"oid": o["oid"], "size": o["size"], **({} if o["oid"] in hub.lfs else {"actions": {"upload": {"href": f"{hub.url}/lfs/{o['oid']}"}}})}
                        for o in objects]})
                return self._send(404, {"error": f"no route {method} {path}"})

            def _validate_yaml(self, req: dict):
                import yaml

                text = req.get("content", "")
                m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
                errors = []
                try:
                    meta = yaml.safe_load(m.group(1)) if m else {}
                except yaml.YAMLError as e:
                    meta, errors = {}, [f"invalid YAML: {e}"]
                for c in (meta or {}).get("configs", []):
                    if not isinstance(c, dict) or not c.get("config_name") or not c.get("data_files"):
                        errors.append(f"config without config_name or data_files: {c}")
                meta = meta or {}
                if meta.get("license") == "other" and not (meta.get("license_name") and meta.get("license_link")):
                    errors.append("license: other needs license_name and license_link")  # the Hub's documented card metadata
                if meta.get("license_name") and not re.fullmatch(r"[a-z0-9.-]+", str(meta["license_name"])):
                    errors.append("license_name must be lowercase letters, digits, '-' and '.'")
                if errors:
                    return self._send(400, {"error": "; ".join(errors), "errors": [{"message": e} for e in errors]})
                hub.validated.append(meta)
                return self._send(200, {"warnings": []})

            def _commit(self, repo: str, body: bytes):
                files = dict(hub.repos[repo]["files"])
                header = None
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item["key"] == "header":
                        header = item["value"]
                    elif item["key"] == "file":
                        files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] == "lfsFile":
                        oid = item["value"]["oid"]
                        if oid not in hub.lfs:
                            return self._send(400, {"error": f"LFS object {oid} was never uploaded"})
                        files[item["value"]["path"]] = hub.lfs[oid]
                    elif item["key"] == "deletedFile":
                        files.pop(item["value"]["path"], None)
                oid = hashlib.sha1(json.dumps(sorted((p, hashlib.sha256(b).hexdigest()) for p, b in files.items())).encode()).hexdigest()
                with hub.lock:
                    hub.repos[repo]["files"] = files
                    hub.repos[repo]["commits"].append({"oid": oid, "summary": (header or {}).get("summary")})
                return self._send(200, {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None})

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

            def do_GET(self):
                self._handle("GET")

            def do_HEAD(self):
                self._handle("HEAD")

        return Handler
