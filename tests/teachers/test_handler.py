"""The Beam glue of every teacher: the bytes metric of a batch and the Prefetch step (the
real engine behind them is tested in test_vllm_teacher.py and test_pipeline_vllm.py)."""

from pipelines.config.recipe import SyntheticSource, TeacherConfig
from pipelines.core.record import TeacherOutput
from pipelines.sources.synthetic import make_record
from pipelines.teachers import handler as handler_module
from pipelines.teachers.base import ChatRequest, Sampling, TeacherReply, data_uri, user_message
from pipelines.teachers.cache import ReplyCache, request_key, teacher_identity
from pipelines.teachers.handler import KeyedTeacherHandler, Prefetch, TeacherModelHandler

RECORD = make_record(0, SyntheticSource(image_size=64))
CONFIG = TeacherConfig(backend="vllm", model="some/model")


def _requests(*texts, image=False):
    return [ChatRequest(user_message(t, RECORD.images if image else ()), Sampling(seed=k)) for k, t in enumerate(texts)]


def test_the_bytes_of_a_batch_are_its_prompts_not_its_records():
    handler = KeyedTeacherHandler(TeacherModelHandler(CONFIG))
    batch = [(RECORD, _requests("Describe.", image=True)), (RECORD, _requests("one", "three"))]
    assert handler.get_num_bytes(batch) == len("Describe.") + len(data_uri(RECORD.images[0])) + len("one") + len("three")


class _Engine:
    def __init__(self):
        self.started = []

    def prefetch(self, requests):
        self.started.extend(r.messages[0]["content"] for r in requests)


def _prefetch(monkeypatch, ahead, cache_dir=None):
    engine = _Engine()
    monkeypatch.setattr(handler_module, "load_teacher", lambda config: engine)
    step = Prefetch(CONFIG, cache_dir, ahead)
    step.setup()
    step.start_bundle()
    return step, engine


def test_records_pass_on_once_enough_requests_are_in_the_engine_behind_them(monkeypatch):
    step, engine = _prefetch(monkeypatch, ahead=3)
    elements = [(f"r{k}", _requests(*[f"r{k}.{i}" for i in range(k % 3)])) for k in range(6)]  # 0, 1, 2, 0, 1, 2 requests
    passed = [[e[0] for e in step.process(element)] for element in elements]
    # every request starts as soon as its element arrives; an element goes on once 3 requests
    # that arrived after it are in the engine
    assert engine.started == ["r1.0", "r2.0", "r2.1", "r4.0", "r5.0", "r5.1"]
    assert passed == [[], [], ["r0"], [], ["r1"], ["r2", "r3"]]
    assert [w.value[0] for w in step.finish_bundle()] == ["r4", "r5"]  # the rest at the end of the bundle, in order
    step.start_bundle()
    assert list(step.finish_bundle()) == []


def test_requests_the_cache_holds_are_not_sent(monkeypatch, tmp_path):
    cached, fresh = _requests("cached", "fresh")
    ReplyCache(str(tmp_path)).put(request_key(teacher_identity(CONFIG), cached), TeacherReply((TeacherOutput("x", "stop", 1, 1),)))
    step, engine = _prefetch(monkeypatch, ahead=0, cache_dir=str(tmp_path))
    assert [e[0] for e in step.process(("a", [cached]))] == ["a"]
    assert [e[0] for e in step.process(("b", [cached, fresh]))] == ["b"]
    assert engine.started == ["fresh"]


def test_nothing_to_send_loads_no_teacher(monkeypatch):
    def refuse(config):
        raise AssertionError("the teacher was loaded")

    monkeypatch.setattr(handler_module, "load_teacher", refuse)
    step = Prefetch(CONFIG, None, 2)
    step.setup()
    step.start_bundle()
    assert list(step.process(("ended", []))) == [] and [w.value[0] for w in step.finish_bundle()] == ["ended"]
