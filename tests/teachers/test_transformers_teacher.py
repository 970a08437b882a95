"""The transformers backend against real models (tiny, built offline at test time)."""

import pytest

from pipelines.config.recipe import SyntheticSource, TeacherConfig
from pipelines.sources.synthetic import make_record
from pipelines.teachers.base import ChatRequest, Sampling, user_message
from pipelines.teachers.transformers_teacher import TransformersTeacher

pytestmark = pytest.mark.slow
RECORD = make_record(0, SyntheticSource(image_size=128))


def _teacher(path):
    return TransformersTeacher(TeacherConfig(backend="transformers", model=str(path)))


def test_generates_from_an_image_with_a_tiny_idefics3(tiny_idefics3):
    teacher = _teacher(tiny_idefics3)
    assert teacher.vision
    sampling = Sampling(max_tokens=10, n=2, temperature=1.0, seed=0)
    replies = teacher.generate([
        ChatRequest(user_message("Describe the image.", RECORD.images), sampling),
        ChatRequest(user_message("Describe the image in detail, please.", RECORD.images), sampling),
    ])
    for reply in replies:
        assert reply.error is None and len(reply.outputs) == 2
        for out in reply.outputs:
            assert out.completion_tokens <= 10
            assert out.finish_reason in ("stop", "length")
            # a finish by length means all 10 tokens were generated
            assert out.finish_reason == "stop" or out.completion_tokens == 10
    # the image tokens are part of the prompt: with an image it is longer than without
    text_only = teacher.generate([ChatRequest(user_message("Describe the image."), Sampling(max_tokens=2))])[0]
    assert replies[0].outputs[0].prompt_tokens > text_only.outputs[0].prompt_tokens


def test_greedy_generation_is_deterministic_and_seeded_sampling_repeats(tiny_idefics3):
    teacher = _teacher(tiny_idefics3)
    req = ChatRequest(user_message("What is shown?", RECORD.images), Sampling(max_tokens=8))
    assert teacher.generate([req])[0] == teacher.generate([req])[0]
    sampled = ChatRequest(user_message("What is shown?", RECORD.images), Sampling(max_tokens=8, temperature=1.0, seed=7))
    assert teacher.generate([sampled])[0] == teacher.generate([sampled])[0]


def test_a_bad_request_fails_alone(tiny_idefics3):
    teacher = _teacher(tiny_idefics3)
    broken = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}},
                                           {"type": "text", "text": "Describe."}]}]
    good = ChatRequest(user_message("Describe.", RECORD.images), Sampling(max_tokens=4))
    replies = teacher.generate([good, ChatRequest(broken, Sampling(max_tokens=4)), good])
    assert replies[0].error is None and replies[2].error is None
    assert replies[1].error and "Image" in replies[1].error


def test_a_text_only_causal_lm_serves_text_stages_and_refuses_images(tiny_llama):
    teacher = _teacher(tiny_llama)
    assert not teacher.vision
    replies = teacher.generate([
        ChatRequest(user_message("Reason step by step."), Sampling(max_tokens=6)),
        ChatRequest(user_message("Describe.", RECORD.images), Sampling(max_tokens=6)),
    ])
    assert replies[0].error is None and replies[0].outputs[0].completion_tokens <= 6
    assert "text-only" in replies[1].error
