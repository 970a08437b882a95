"""The `vllm` teacher: the vLLM engine inside the worker (`LLM.chat` with image parts).

Engine options come from the recipe (`teacher.vllm`). All requests of a batch go to one
`LLM.chat` call with per-request sampling (seed included), so vLLM schedules them together.
If that call fails, the requests are retried one by one so that only the bad one fails.
Finish reasons and token counts come from vLLM's own outputs.

`mode: server` starts vLLM's OpenAI-compatible server on loopback instead (see
vllm_server.py) and talks to it through the openai backend.
"""

from __future__ import annotations

from typing import Sequence

from pipelines.record import TeacherOutput
from pipelines.recipe import TeacherConfig
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


class VLLMTeacher:
    backend = "vllm"

    def __init__(self, config: TeacherConfig):
        from vllm import LLM

        self.model, self.revision = config.model, config.revision
        self.chat_template_kwargs = dict(config.vllm.chat_template_kwargs) or None
        self.llm = LLM(**engine_kwargs(config))

    def _params(self, request: ChatRequest):
        from vllm import SamplingParams

        s = request.sampling
        return SamplingParams(n=s.n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed)

    def generate(self, requests: Sequence[ChatRequest]) -> list[TeacherReply]:
        try:
            return self._chat(requests)
        except Exception:  # one bad request must not fail its neighbours: retry alone
            replies = []
            for request in requests:
                try:
                    replies.extend(self._chat([request]))
                except Exception as e:
                    replies.append(TeacherReply(error=f"{type(e).__name__}: {str(e)[:300]}"))
            return replies

    def _chat(self, requests: Sequence[ChatRequest]) -> list[TeacherReply]:
        results = self.llm.chat([r.messages for r in requests], [self._params(r) for r in requests],
                                use_tqdm=False, chat_template_kwargs=self.chat_template_kwargs)
        replies = []
        for result in results:
            prompt_tokens = len(result.prompt_token_ids or ())
            outputs = []
            for out in result.outputs:
                thinking, text = split_thinking(out.text)
                outputs.append(TeacherOutput(text, out.finish_reason or "stop", prompt_tokens, len(out.token_ids), thinking))
            replies.append(TeacherReply(tuple(outputs)))
        return replies

    def close(self) -> None:
        if self.llm is not None:
            self.llm.llm_engine.engine_core.shutdown()
            self.llm = None
