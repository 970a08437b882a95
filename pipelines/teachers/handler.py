"""The Beam ModelHandler that puts any teacher behind RunInference.

One example is the list of chat requests of one record for one stage (one request for
statements, one per turn for think), so a record's requests stay together and the batch
goes to the backend as one flat list. Failures come back as replies with `error`; the
handler itself never fails a batch for one bad request.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from pipelines.recipe import TeacherConfig
from pipelines.teachers import load_teacher
from pipelines.teachers.base import ChatRequest, Teacher, TeacherReply

NAMESPACE = "extract_think.teacher"


class TeacherModelHandler(ModelHandler[list[ChatRequest], list[TeacherReply], Teacher]):
    def __init__(self, config: TeacherConfig):
        super().__init__(min_batch_size=1, max_batch_size=config.batch_size)
        self._config = config
        self._requests = Metrics.counter(NAMESPACE, "requests")
        self._errors = Metrics.counter(NAMESPACE, "errors")
        self._tokens_in = Metrics.counter(NAMESPACE, "prompt_tokens")
        self._tokens_out = Metrics.counter(NAMESPACE, "completion_tokens")
        self._latency = Metrics.distribution(NAMESPACE, "batch_latency_ms")

    def load_model(self) -> Teacher:
        return load_teacher(self._config)

    def run_inference(
        self, batch: Sequence[list[ChatRequest]], model: Teacher, inference_args: dict[str, Any] | None = None
    ) -> list[PredictionResult]:
        flat = [request for example in batch for request in example]
        start = time.perf_counter()
        replies = model.generate(flat) if flat else []
        if len(replies) != len(flat):
            raise RuntimeError(f"{model.backend} returned {len(replies)} replies for {len(flat)} requests")
        self._latency.update(int((time.perf_counter() - start) * 1000))
        self._requests.inc(len(flat))
        for reply in replies:
            if reply.error:
                self._errors.inc()
            for out in reply.outputs:
                self._tokens_in.inc(out.prompt_tokens)
                self._tokens_out.inc(out.completion_tokens)
        results, i = [], 0
        for example in batch:
            results.append(PredictionResult(example, replies[i : i + len(example)]))
            i += len(example)
        return results

    def get_metrics_namespace(self) -> str:
        return NAMESPACE
