"""A content-addressed cache of teacher replies, shared by every worker through storage.

The key of a call is the sha256 of everything that decides its answer: the backend, model,
revision and the backend options that change outputs, the rendered messages (images are in
them as data URIs, so the image bytes are part of the key), and the sampling parameters
including the seed. One entry is one small JSON file at `<root>/<key[:2]>/<key>.json`,
written atomically (a temporary file renamed into place locally; a single PUT on object
stores), so a run killed mid-write leaves either the whole entry or none. Errors are never
cached: a failed call is retried on the next run.

A cache can never hurt a run: an entry that cannot be read or decoded, whose fields have
the wrong types, that holds no completion or fewer than the request asked for, or that was
stored under another key (each entry keeps its own) is a miss, and the fresh reply replaces
it. A cache that cannot be written (read-only, full) warns once; the run goes on without it.

`root` is a local path or any fsspec URL (`gs://`, `s3://`, `memory://`, ...).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid

import fsspec

from pipelines.config.recipe import TeacherConfig, reply_identity
from pipelines.core.jsontext import bounded_json
from pipelines.core.record import TeacherOutput
from pipelines.teachers.base import ChatRequest, TeacherReply

log = logging.getLogger(__name__)
MAX_ENTRY_BYTES = 64 << 20  # no real reply comes near; a larger file is not an entry
_WARNED: set[str] = set()  # caches found unwritable in this process (warned about once)

def teacher_identity(config: TeacherConfig) -> dict:
    """The teacher's part of a reply's cache key (`recipe.reply_identity`)."""
    return reply_identity(config)


def request_key(identity: dict, request: ChatRequest) -> str:
    material = {"teacher": identity, "messages": request.messages, "sampling": request.sampling.as_dict()}
    if request.schema is not None:
        material["schema"] = request.schema
    record = request.meta.get("record")
    if identity["backend"] == "oracle" and record is not None:
        # The oracle's mistakes are planned per record, not per prompt.
        material["record"] = record.id
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


_OUTPUT_TYPES = {f.name: f.type for f in dataclasses.fields(TeacherOutput)}
_TYPES = {"str": str, "int": int}


def _encode(key: str, reply: TeacherReply) -> str:
    outputs = [dataclasses.asdict(o) for o in reply.outputs]
    return json.dumps({"key": key, "outputs": outputs, "meta": reply.meta})  # ASCII: any text can be written


def _decode(key: str, raw: bytes, n: int) -> TeacherReply | None:
    """The reply stored in `raw`, or None when it is not a whole, well-typed entry of `key`
    with at least `n` completions, decoded by the same bounded parser as a teacher's reply
    (no nesting past MAX_JSON_DEPTH, no NaN, token counts in range, texts repaired)."""
    try:
        data = bounded_json(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("meta"), dict):
        return None
    outputs = data.get("outputs")
    if not isinstance(outputs, list) or len(outputs) < max(n, 1):
        return None
    for o in outputs:
        if not isinstance(o, dict) or set(o) != set(_OUTPUT_TYPES):
            return None
        if not all(isinstance(o[name], _TYPES[t]) and not isinstance(o[name], bool) for name, t in _OUTPUT_TYPES.items()):
            return None
    try:
        return TeacherReply(tuple(TeacherOutput(**o) for o in outputs), None, data["meta"])
    except ValueError:  # a count out of range
        return None


class ReplyCache:
    def __init__(self, root: str):
        self.root = root.rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root)
        self._local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        self.writable = True  # False after the first write that failed

    def _path(self, key: str) -> str:
        return f"{self._base}/{key[:2]}/{key}.json"

    def get(self, key: str, n: int = 1) -> TeacherReply | None:
        """The stored reply of `key` with at least `n` completions, or None (a miss)."""
        try:
            with self.fs.open(self._path(key), "rb") as f:
                raw = f.read(MAX_ENTRY_BYTES + 1)
        except (OSError, ValueError):  # absent, a folder, unreadable
            return None
        return _decode(key, raw, n) if len(raw) <= MAX_ENTRY_BYTES else None

    def has(self, key: str) -> bool:
        """Whether an entry exists (without reading it: `get` still decides whether it serves)."""
        return self.fs.isfile(self._path(key))

    def put(self, key: str, reply: TeacherReply) -> None:
        if reply.error or not reply.outputs or not self.writable:
            return
        path, data = self._path(key), _encode(key, reply)
        try:
            if self._local:
                self._put_local(key, path, data)
            else:
                self.fs.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
                with self.fs.open(tmp, "w", encoding="utf-8") as f:
                    f.write(data)
                self.fs.mv(tmp, path)
        except OSError as e:
            self.writable = False
            if self.root in _WARNED:
                return
            _WARNED.add(self.root)
            log.warning("the reply cache at %s cannot be written (%s: %s); the run goes on without storing replies",
                        self.root, type(e).__name__, e.strerror or e)

    def _put_local(self, key: str, path: str, data: str) -> None:
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        if os.path.isdir(path) and not os.path.islink(path):  # something else took the entry's name
            shutil.rmtree(path)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{key[:8]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data)
            os.replace(tmp, path)  # atomic on POSIX: readers see all of it or nothing
        except BaseException:
            os.unlink(tmp)
            raise
