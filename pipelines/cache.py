"""A content-addressed cache of teacher replies, shared by every worker through storage.

The key of a call is the sha256 of everything that decides its answer: the backend, model,
revision and the backend options that change outputs, the rendered messages (images are in
them as data URIs, so the image bytes are part of the key), and the sampling parameters
including the seed. One entry is one small JSON file at `<root>/<key[:2]>/<key>.json`,
written atomically (a temporary file renamed into place locally; a single PUT on object
stores), so a run killed mid-write leaves either the whole entry or none. Errors are never
cached: a failed call is retried on the next run.

`root` is a local path or any fsspec URL (`gs://`, `s3://`, `memory://`, ...).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import uuid

import fsspec

from pipelines.config import to_plain
from pipelines.record import TeacherOutput
from pipelines.recipe import TeacherConfig
from pipelines.teachers.base import ChatRequest, TeacherReply

# Settings that change how fast a teacher answers, never what it answers.
_NOT_IN_KEY = {"batch_size"}


def teacher_identity(config: TeacherConfig) -> dict:
    plain = to_plain(config)
    options = plain.pop(config.backend, None)  # only the chosen backend's options matter
    if config.backend == "openai":  # how we talk to the server does not change its answers
        options = {"base_url": options["base_url"], "extra_body": options["extra_body"]}
    if config.backend == "vllm":  # engine or server, memory share: same answers
        options = {k: v for k, v in options.items() if k not in ("mode", "gpu_memory_utilization", "tensor_parallel_size", "prefetch")}
    return {**{k: v for k, v in plain.items() if k not in _NOT_IN_KEY and k not in ("oracle", "transformers", "openai", "vllm")},
            "options": options}


def request_key(identity: dict, request: ChatRequest) -> str:
    material = {"teacher": identity, "messages": request.messages, "sampling": request.sampling.as_dict()}
    record = request.meta.get("record")
    if identity["backend"] == "oracle" and record is not None:
        # The oracle's mistakes are planned per record, not per prompt.
        material["record"] = record.id
    blob = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _encode(reply: TeacherReply) -> str:
    outputs = [dataclasses.asdict(o) for o in reply.outputs]
    return json.dumps({"outputs": outputs, "meta": reply.meta}, ensure_ascii=False)


def _decode(text: str) -> TeacherReply:
    data = json.loads(text)
    return TeacherReply(tuple(TeacherOutput(**o) for o in data["outputs"]), None, data["meta"])


class ReplyCache:
    def __init__(self, root: str):
        self.root = root.rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root)
        self._local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    def _path(self, key: str) -> str:
        return f"{self._base}/{key[:2]}/{key}.json"

    def get(self, key: str) -> TeacherReply | None:
        path = self._path(key)
        try:
            with self.fs.open(path, "r", encoding="utf-8") as f:
                return _decode(f.read())
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, KeyError, TypeError):
            return None  # unreadable entry: treat as a miss; the next put replaces it

    def has(self, key: str) -> bool:
        return self.fs.exists(self._path(key))

    def put(self, key: str, reply: TeacherReply) -> None:
        if reply.error or not reply.outputs:
            return
        path, data = self._path(key), _encode(reply)
        if self._local:
            directory = os.path.dirname(path)
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{key[:8]}-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data)
            os.replace(tmp, path)  # atomic on POSIX: readers see all of it or nothing
        else:
            self.fs.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
            with self.fs.open(tmp, "w", encoding="utf-8") as f:
                f.write(data)
            self.fs.mv(tmp, path)
