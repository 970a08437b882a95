"""The `vllm` teacher: the vLLM engine inside the worker (chat requests with image parts).

Engine options come from the recipe (`teacher.vllm`), sampling (seed included) from each
request. One engine thread owns the engine: callers on any thread hand it their requests,
it adds them to the running engine as they arrive, so the requests of every caller are
scheduled together (continuous batching), and it hands each caller its replies when its
last request finishes. If a caller's requests cannot be added, they are retried one by one
so that only the bad one fails. `prefetch` starts requests without waiting; a later
`generate` of equal requests collects them (the pipeline's Prefetch step sends each record's
requests as soon as they exist). Finish reasons and token counts come from vLLM's outputs.

`mode: server` starts vLLM's OpenAI-compatible server on loopback instead (see
vllm_server.py) and talks to it through the openai backend.
"""

from __future__ import annotations

import queue
import threading
from typing import Sequence

from pipelines.config.recipe import TeacherConfig
from pipelines.core.record import TeacherOutput
from pipelines.teachers.base import ChatRequest, TeacherReply, split_thinking


def engine_kwargs(config: TeacherConfig) -> dict:
    opts = config.vllm
    kwargs = dict(
        model=config.model,
        revision=None if config.revision == "main" else config.revision,
        dtype=opts.dtype,
        tensor_parallel_size=opts.tensor_parallel_size,
        gpu_memory_utilization=opts.gpu_memory_utilization,
        limit_mm_per_prompt=dict(opts.limit_mm_per_prompt),
        trust_remote_code=opts.trust_remote_code,
        enforce_eager=opts.enforce_eager,
        seed=opts.seed,
    )
    if opts.max_model_len:
        kwargs["max_model_len"] = opts.max_model_len
    if opts.mm_processor_kwargs:
        kwargs["mm_processor_kwargs"] = dict(opts.mm_processor_kwargs)
    if opts.enable_prefix_caching is not None:
        kwargs["enable_prefix_caching"] = opts.enable_prefix_caching
    return kwargs


class _Job:
    """One caller's requests in the engine: filled in by the engine thread as they finish."""

    def __init__(self, requests: Sequence[ChatRequest]):
        self.requests = requests
        self.results: list = [None] * len(requests)
        self.left = len(requests)
        self.error: BaseException | None = None
        self.done = threading.Event()

    def finish(self, index: int, result) -> None:
        self.results[index] = result
        self.left -= 1
        if not self.left:
            self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


_STOP = object()


class VLLMTeacher:
    """Callers: Beam's worker threads, the proxies of processes sharing this engine
    (`share_model_across_processes`), and the Prefetch step; the engine thread is the only
    one that touches the engine (see the module docstring)."""

    backend = "vllm"

    def __init__(self, config: TeacherConfig):
        from vllm import LLM

        self.model, self.revision = config.model, config.revision
        self.chat_template_kwargs = dict(config.vllm.chat_template_kwargs) or None
        self.llm = LLM(**engine_kwargs(config))
        # LLM.enqueue_chat (vLLM 2026 on) adds requests to a running engine; without it each
        # caller's requests run as one LLM.chat call, one caller after the other
        self._enqueue = getattr(self.llm, "enqueue_chat", None)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._stopped = RuntimeError("the vLLM teacher was closed")
        self.peak_in_flight = 0  # most requests in the engine at once, from all callers
        self._ahead: dict = {}  # prefetched requests not yet collected: identity -> (job, index)
        self._ahead_lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="vllm-engine", daemon=True)
        self._thread.start()

    def _params(self, request: ChatRequest):
        from vllm import SamplingParams

        s = request.sampling
        extra = {}
        if request.schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            extra["structured_outputs"] = StructuredOutputsParams(json=request.schema)
        return SamplingParams(n=s.n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed, **extra)

    def prefetch(self, requests: Sequence[ChatRequest]) -> None:
        """Start `requests` now and return at once: a later `generate` of equal requests
        collects their replies instead of adding them again. The pipeline calls this as soon
        as a record's prompts exist, so the engine generates while the pipeline reads,
        draws and filters."""
        fresh = []
        with self._ahead_lock:
            for request in requests:
                key = _identity(request)
                if key not in self._ahead and self._thread.is_alive():
                    self._ahead[key] = None  # claimed (a repeat within this call is skipped); the job is set below
                    fresh.append((key, request))
            if not fresh:
                return
            job = _Job([r for _, r in fresh])
            for index, (key, _) in enumerate(fresh):
                self._ahead[key] = (job, index)
        self._inbox.put(job)

    def generate(self, requests: Sequence[ChatRequest]) -> list[TeacherReply]:
        with self._ahead_lock:  # requests prefetched earlier are already in the engine
            placed = [self._ahead.pop(_identity(r), None) for r in requests]
        new = [i for i, p in enumerate(placed) if p is None]
        if new:
            job = self._submit([requests[i] for i in new])
            for k, i in enumerate(new):
                placed[i] = (job, k)
        replies: list[TeacherReply | None] = []
        for job, index in placed:
            self._wait(job)
            replies.append(None if job.error is not None else _reply(job.results[index]))
        for i, reply in enumerate(replies):
            if reply is None:  # its job failed: one bad request must not fail its neighbours, retry alone
                try:
                    job = self._submit([requests[i]])
                    self._wait(job)
                    if job.error is not None:
                        raise job.error
                    replies[i] = _reply(job.results[0])
                except Exception as e:
                    replies[i] = TeacherReply(error=f"{type(e).__name__}: {str(e)[:300]}")
        return replies  # type: ignore[return-value]

    def _submit(self, requests: Sequence[ChatRequest]) -> _Job:
        job = _Job(requests)
        if not self._thread.is_alive():
            job.fail(self._stopped)
        else:
            self._inbox.put(job)
        return job

    def _wait(self, job: _Job) -> None:
        while not job.done.wait(5):
            if not self._thread.is_alive():  # the engine thread ended with this job unanswered
                job.fail(self._stopped)

    def _serve(self) -> None:
        """The engine thread: the only one that touches the engine after start-up. However it
        ends, no caller is left waiting."""
        owners: dict[str, tuple[_Job, int]] = {}  # request number -> the job and its place in it
        try:
            self._loop(owners)
        except BaseException as e:  # a bug here must not leave callers hanging
            self._stopped = RuntimeError(f"the vLLM engine thread stopped: {type(e).__name__}: {e}")
        finally:
            for job in {j for j, _ in owners.values()}:
                job.fail(self._stopped)
            while True:
                try:
                    job = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if job is not _STOP:
                    job.fail(self._stopped)

    def _loop(self, owners: dict) -> None:
        engine = self.llm.llm_engine
        while True:
            arrived = [] if owners else [self._inbox.get()]  # idle: wait for work
            while True:
                try:
                    arrived.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            for k, job in enumerate(arrived):
                if job is _STOP:
                    for later in arrived[k + 1:]:
                        if later is not _STOP:
                            later.fail(self._stopped)
                    return
                messages, params = [r.messages for r in job.requests], [self._params(r) for r in job.requests]
                try:
                    if self._enqueue is None:  # an older vLLM: the job alone, start to end
                        for index, result in enumerate(self.llm.chat(messages, params, use_tqdm=False,
                                                                     chat_template_kwargs=self.chat_template_kwargs)):
                            job.finish(index, result)
                        continue
                    # renders and adds one request after the other; all or none are added
                    ids = self._enqueue(messages, params, use_tqdm=False, chat_template_kwargs=self.chat_template_kwargs)
                except Exception as e:
                    job.fail(e)
                    continue
                for index, request_id in enumerate(ids):
                    owners[_number(request_id)] = (job, index)
                self.peak_in_flight = max(self.peak_in_flight, len(owners))
            if not owners:
                continue
            try:
                finished = [out for out in engine.step() if out.finished]
            except Exception as e:  # the engine itself failed: every caller in it learns why
                for job in {j for j, _ in owners.values()}:
                    job.fail(e)
                owners.clear()
                continue
            for out in finished:
                job, index = owners.pop(_number(out.request_id))
                job.finish(index, out)

    def close(self) -> None:
        if self.llm is not None:
            self._inbox.put(_STOP)
            self._thread.join()
            self.llm.llm_engine.engine_core.shutdown()
            self.llm = None
            with self._ahead_lock:
                self._ahead.clear()


def _identity(request: ChatRequest) -> tuple:
    """What makes two requests the same call: the messages, the sampling and the schema (meta aside)."""
    return (_frozen(request.messages), request.sampling, _frozen(request.schema))


def _frozen(value):
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _number(request_id: str) -> str:
    """`LLM` numbers its requests 0, 1, 2...; the engine may append a random suffix to the id
    it returns ("7-1a2b3c4d") while outputs carry the number alone."""
    return request_id.split("-", 1)[0]


def _reply(result) -> TeacherReply:
    prompt_tokens = len(result.prompt_token_ids or ())
    outputs = []
    for out in result.outputs:
        thinking, text = split_thinking(out.text)
        outputs.append(TeacherOutput(text, out.finish_reason or "stop", prompt_tokens, len(out.token_ids), thinking))
    return TeacherReply(tuple(outputs))
