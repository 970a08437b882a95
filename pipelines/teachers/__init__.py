"""Teacher backends behind one interface (see base.py), loaded once per process."""

from __future__ import annotations

import json
import threading

from pipelines.config.recipe import TeacherConfig, engine_identity
from pipelines.teachers.base import ChatRequest, Sampling, Teacher, TeacherReply

_LOADED: dict[str, Teacher] = {}
_LOCK = threading.Lock()


def teacher_key(config: TeacherConfig) -> str:
    """Which loaded teacher serves `config` (`recipe.engine_identity`: batching and sending
    settings aside, so a stage with another batch size does not load a second engine)."""
    return json.dumps(engine_identity(config), sort_keys=True)


def load_teacher(config: TeacherConfig) -> Teacher:
    """The teacher for `config`, built on first use and shared by every stage in this
    process that names the same teacher (four stages must not load four copies of a VLM)."""
    key = teacher_key(config)
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = _build(config)
        return _LOADED[key]


def _build(config: TeacherConfig) -> Teacher:
    if config.backend == "oracle":
        from pipelines.teachers.oracle import OracleTeacher

        return OracleTeacher(config)
    if config.backend == "transformers":
        from pipelines.teachers.transformers_teacher import TransformersTeacher

        return TransformersTeacher(config)
    if config.backend == "openai":
        from pipelines.teachers.openai_teacher import OpenAITeacher

        return OpenAITeacher(config)
    if config.backend == "vllm" and config.vllm.mode == "server":
        from pipelines.teachers.vllm_server import VLLMServerTeacher

        return VLLMServerTeacher(config)
    if config.backend == "vllm":
        from pipelines.teachers.vllm_teacher import VLLMTeacher

        return VLLMTeacher(config)
    raise ValueError(f"unknown teacher backend {config.backend!r}")


def unload_all() -> None:
    with _LOCK:
        for teacher in _LOADED.values():
            teacher.close()
        _LOADED.clear()


__all__ = ["ChatRequest", "Sampling", "Teacher", "TeacherReply", "load_teacher", "unload_all"]
