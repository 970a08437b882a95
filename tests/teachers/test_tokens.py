"""Token estimates against the real processors, and Beam batches weighted by them."""

import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from PIL import Image

from pipelines.config.recipe import OpenAIOptions, SyntheticSource, TeacherConfig
from pipelines.sources.synthetic import make_record
from pipelines.teachers.base import Sampling
from pipelines.teachers.stage import Stage
from pipelines.teachers.tokens import ElementTokens, ImageTokens, image_tokens_for, request_tokens, token_batches
from tests.tiny_models import IDEFICS3_SPECIALS, tiny_tokenizer

SIZES = [(640, 480), (1000, 500), (3000, 2000), (50, 40), (1920, 1080), (333, 777)]


@pytest.mark.parametrize("width, height", SIZES)
def test_patch_estimate_equals_qwen_vl_resizing(width, height):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    processor = Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 1280}, patch_size=14, merge_size=2)
    t, h, w = processor(images=[Image.new("RGB", (width, height))])["image_grid_thw"][0].tolist()
    rule = ImageTokens("patches", patch_size=14, merge_size=2, min_pixels=56 * 56, max_pixels=28 * 28 * 1280)
    assert rule.count(width, height) == t * h * w // 4  # the processor's grid, merged 2x2


@pytest.mark.parametrize("width, height", [(64, 64), (200, 100), (130, 300), (96, 40)])
def test_tile_estimate_equals_the_idefics3_processors_image_tokens(width, height):
    from transformers import Idefics3ImageProcessorPil, Idefics3Processor

    tokenizer = tiny_tokenizer(IDEFICS3_SPECIALS)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<fake_token_around_image>", "<global-img>"]})
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(do_image_splitting=True, size={"longest_edge": 128}, max_image_size={"longest_edge": 64}),
        tokenizer=tokenizer, image_seq_len=4)
    ids = processor(text=["<image>"], images=[[Image.new("RGB", (width, height))]])["input_ids"][0]
    real = sum(1 for i in ids if i == tokenizer.convert_tokens_to_ids("<image>"))
    rule = ImageTokens("tiles", longest_edge=128, tile_edge=64, seq_len=4, split=True)
    assert rule.count(width, height) == real


def test_settings_are_read_from_a_saved_model(tiny_idefics3, tmp_path):
    rule = image_tokens_for(str(tiny_idefics3))
    assert (rule.kind, rule.seq_len, rule.split) == ("tiles", 4, False)
    assert image_tokens_for(str(tmp_path), fallback=777) == ImageTokens("fixed", fixed=777)  # nothing saved there
    qwen = image_tokens_for(str(tmp_path), overrides={"patch_size": 16, "merge_size": 2, "max_pixels": 512 * 512})
    assert qwen.kind == "patches" and qwen.max_pixels == 512 * 512


def _extraction_requests(i, size):
    record = make_record(i, SyntheticSource(image_size=size, max_turns=1))
    stage = Stage("extraction", "extraction/v1", Sampling(max_tokens=100), TeacherConfig())
    return record, stage.requests(record.add(statements=("A statement.",)))


def test_a_request_counts_text_images_and_the_completion_budget():
    rule = ImageTokens("patches")
    record, [request] = _extraction_requests(0, 448)
    text = sum(len(p["text"]) for p in request.messages[-1]["content"] if p["type"] == "text")
    assert request_tokens(request, rule) == text // 4 + rule.count(448, 448) + 100
    assert rule.count(448, 448) == 256  # (448 / 28) ** 2 merged patches


def test_beam_batches_stay_under_the_token_budget(tmp_path):
    # a model folder with Qwen2-VL-style processor settings: image tokens grow with the image
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"patch_size": 14, "merge_size": 2, "min_pixels": 3136, "max_pixels": 1003520}))
    config = TeacherConfig(backend="openai", batch_size=100, max_batch_tokens=2000, model=str(tmp_path),
                           openai=OpenAIOptions(base_url="http://127.0.0.1:9/v1"))
    batching = token_batches(config)
    size = ElementTokens(image_tokens_for(str(tmp_path)))
    elements = [_extraction_requests(i, 64 if i % 2 else 448) for i in range(24)]
    weights = [size(e) for e in elements]
    assert max(weights) > 1.5 * min(weights)  # big images weigh more

    def check(got):
        batches = got[0]
        assert sum(len(b) for b in batches) == 24
        for b in batches:
            assert len(b) == 1 or sum(size(e) for e in b) <= 2000
        assert any(len(b) > 1 for b in batches) and any(len(b) < 12 for b in batches)

    with TestPipeline(runner="FnApiRunner") as p:
        batches = p | beam.Create(elements) | batching | beam.combiners.ToList()
        assert_that(batches, check)
    assert token_batches(TeacherConfig()) is None  # by record count unless asked


def test_a_recipe_with_a_token_budget_runs_end_to_end(tmp_path):
    from pipelines.commands.run import run

    outcome = run("quickstart", ["sources.0.synthetic.num_records=12", "sources.0.synthetic.image_size=64",
                                 "teacher.max_batch_tokens=3000", f"output.dir={tmp_path / 'o'}", "cache.dir=null"])
    assert outcome.funnel.records_in == 12 == outcome.funnel.kept + outcome.funnel.rejected + outcome.funnel.failed
