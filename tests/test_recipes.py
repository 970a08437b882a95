from pathlib import Path

import pytest
import yaml

from pipelines.config import ConfigError
from pipelines.config.recipe import Recipe, bundled_recipes, dump_recipe, read_recipe

RECIPES = sorted(Path(__file__).resolve().parents[1].joinpath("recipes").glob("*.yaml"))


def test_there_are_recipes_and_quickstart_is_one():
    assert "quickstart" in [p.stem for p in RECIPES]
    assert bundled_recipes() == [p.stem for p in RECIPES]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_loads(path, tmp_path):
    recipe = read_recipe(path)
    assert isinstance(recipe, Recipe)
    # the resolved recipe written beside outputs loads back to the same recipe
    resolved = tmp_path / f"{path.stem}.resolved.yaml"
    resolved.write_text(dump_recipe(recipe))
    assert read_recipe(resolved) == recipe


@pytest.mark.parametrize(
    "override, message",
    [
        ("teacher.modle=x", "teacher.modle: unknown key (did you mean 'model'?)"),
        ("teacher.oracle.error_rate=high", "teacher.oracle.error_rate: expected a number, got 'high'"),
        ("teacher.oracle.error_rate=1.5", "error_rate: must lie in [0, 1]"),
        ("sources.0.synthetic.num_records=ten", "sources.0.synthetic.num_records: expected an integer"),
        ("sources.0.synthetic.families=[beakers, dragons]", "dragons"),
        ("teacher.backend=gpt", "teacher.backend: expected one of ['oracle', 'transformers', 'openai', 'vllm']"),
        ("filters.0.name=nonsense", "unknown filter 'nonsense'"),
        ("stages.think.sampling.n=true", "stages.think.sampling.n: expected an integer, got True"),
        ("runner.options=--flag", "runner.options: expected a list"),
        ("stages.think.sampling.temperature=0", "n=3 samples need a temperature above 0"),
        ("output.rows_per_shard=0", "output.rows_per_shard: must be >= 1, got 0"),  # looped forever writing empty files
        ("teacher.batch_size=-2", "teacher.batch_size: must be >= 1, got -2"),
        ("teacher.openai.max_concurrency=8", "teacher.openai: openai settings, but teacher.backend is 'oracle'"),
        ("teacher.vllm.dtype=bfloat16", "(remove them, or set backend: vllm)"),
        ("stages.think.teacher.vllm.seed=1", "stages.think.teacher.vllm: vllm settings, but stages.think.teacher.backend is 'oracle'"),
        ("sources.0.hf.path=lmms-lab/MMStar", "sources.0.hf: hf settings, but sources.0.kind is 'synthetic'"),
        ("sources.0.llava.json=a.json", "they apply only when kind is 'llava'"),
        ("stages.think.sampling.max_tokens=0", "stages.think.sampling.max_tokens: must be >= 1"),
        ("ingest.checks.max_choices=12", "ingest.checks.max_choices: must lie in [2, 8], got 12"),
        ("ingest.images.max_file_bytes=0", "ingest.images.max_file_bytes: must be >= 1"),
        ("output.max_failed_share=2", "output.max_failed_share: must lie in [0, 1], got 2"),
        ("output=", "no value after '='"),  # silently reset the whole block to its defaults
    ],
)
def test_bad_values_fail_naming_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        read_recipe("quickstart", [override])
    assert message in str(e.value)


def test_a_backend_block_is_checked_when_its_backend_is_used():
    with pytest.raises(ConfigError, match="teacher.openai.max_concurrency: must be >= 1"):
        read_recipe("quickstart", ["teacher.backend=openai", "teacher.openai.max_concurrency=0"])
    # switching the backend drops the file's oracle block; a block set beside the switch is still refused
    assert read_recipe("quickstart", ["teacher.backend=vllm", "teacher.model=m"]).teacher.backend == "vllm"
    with pytest.raises(ConfigError, match="teacher.openai: openai settings, but teacher.backend is 'vllm'"):
        read_recipe("quickstart", ["teacher.backend=vllm", "teacher.model=m", "teacher.openai.base_url=http://x/v1"])


def test_the_resolved_recipe_holds_only_what_is_in_use():
    text = dump_recipe(read_recipe("quickstart"))
    plain = yaml.safe_load(text)
    assert set(plain["sources"][0]) >= {"kind", "synthetic"} and not {"hf", "llava", "imagefolder"} & set(plain["sources"][0])
    assert "oracle" in plain["teacher"] and not {"vllm", "openai", "transformers"} & set(plain["teacher"])
    assert plain["stages"]["verify"] == {"enabled": False} and "teacher" not in plain["stages"]["think"]
    assert len(text.splitlines()) < 170
    swapped = dump_recipe(read_recipe("quickstart", ["teacher.backend=vllm", "teacher.model=m", "stages.think.teacher.backend=oracle"]))
    plain = yaml.safe_load(swapped)
    assert "vllm" in plain["teacher"] and "oracle" not in plain["teacher"] and "oracle" in plain["stages"]["think"]["teacher"]


def test_overrides_take_types_from_yaml_and_reach_nested_keys():
    r = read_recipe("quickstart", ["sources.0.synthetic.num_records=7", "teacher.oracle.error_rate=0",
                                   "filters.6.params.min_ratio=0.9", "stages.think.sampling.n=5"])
    assert r.sources[0].synthetic.num_records == 7
    assert r.teacher.oracle.error_rate == 0.0
    assert r.filters[6].name == "sufficiency" and r.filters[6].params == {"min_ratio": 0.9}
    assert r.stages.think.sampling.n == 5


def test_override_needs_key_value_and_a_valid_index():
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        read_recipe("quickstart", ["teacher.model"])
    with pytest.raises(ConfigError, match="neither an index of the 8-item list nor a name in it"):
        read_recipe("quickstart", ["filters.9.name=x"])


def test_missing_recipe_and_required_name(tmp_path):
    with pytest.raises(ConfigError, match="no recipe file"):
        read_recipe(tmp_path / "absent.yaml")
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump({"description": "no name"}))
    with pytest.raises(ConfigError, match="name: required key is missing"):
        read_recipe(p)
    p.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        read_recipe(p)


def test_per_stage_teacher_overrides_the_recipe_teacher():
    r = read_recipe("quickstart", ["stages.think.teacher.backend=transformers", "stages.think.teacher.model=/m"])
    assert r.stage_teacher("think").backend == "transformers"
    assert r.stage_teacher("extraction").backend == "oracle"


def test_a_partly_given_stage_keeps_its_default_template():
    r = read_recipe("quickstart", ["stages.statements.sampling.max_tokens=8"])
    assert r.stages.statements.template == "statements/v1"
    assert r.stages.statements.sampling.max_tokens == 8


def test_the_paper_recipe_validates_here_and_refuses_to_run_without_its_data(tmp_path, monkeypatch, capsys):
    from pipelines.commands.cli import main

    r = read_recipe("paper-coin")
    assert [s.name for s in r.sources] == ["ocr_vqa", "vqav2", "gqa", "textvqa", "vizwiz", "scienceqa"]
    assert {s.kind for s in r.sources} == {"llava"} and r.sources[-1].license == "cc-by-nc-sa-4.0"
    assert (r.teacher.backend, r.teacher.model) == ("vllm", "Qwen/Qwen3-VL-8B-Instruct")
    assert r.ingest.images.max_pixels > 512 * 512  # no squashing to 512x512
    assert main(["validate", "paper-coin"]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["run", "paper-coin", "--no-progress"]) == 2
    assert "data/llava/ocr_vqa.json does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out" / "paper-coin").exists()  # nothing published


def test_a_yaml_alias_bomb_is_refused_quickly_and_small(tmp_path):
    """A few hundred bytes of nested aliases stand for 9**9 values; validating one used to run
    past 1.7 GB."""
    import resource
    import time

    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    path = tmp_path / "bomb.yaml"
    path.write_text("name: bomb\nteacher:\n  backend: openai\n  openai:\n    base_url: http://127.0.0.1:1/v1\n    extra_body:\n"
                    + "".join(f"      {line}\n" for line in levels))
    assert len(path.read_bytes()) < 1000
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    with pytest.raises(ConfigError, match="expands to more than 100000 values"):
        read_recipe(path)
    assert time.perf_counter() - start < 5 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB
    with pytest.raises(ConfigError, match="expands to more than"):
        read_recipe("quickstart", ["teacher.openai.extra_body={" + ", ".join(levels) + "}"])  # the same bomb as an override


def test_aliases_of_a_sensible_size_still_work(tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text("name: shared\nstages:\n  focus:\n    sampling: &s {max_tokens: 32, seed: 3}\n  statements:\n    sampling: *s\n")
    r = read_recipe(path)
    assert r.stages.focus.sampling.max_tokens == r.stages.statements.sampling.max_tokens == 32


def test_a_deadline_of_zero_is_refused():
    with pytest.raises(ConfigError, match="teacher.openai.timeout_s: must be >= 0.001, got 0"):
        read_recipe("quickstart", ["teacher.backend=openai", "teacher.openai.base_url=http://127.0.0.1:9/v1", "teacher.openai.timeout_s=0"])


def test_a_recipe_that_leaves_blocks_out_gets_the_quickstarts_values(caplog):
    """Stages and filters left out, or given in part, take the quickstart's values: several
    extraction and think samples at 0.7 and extraction_agreement in the filters."""
    from pipelines.config import build, to_plain
    from pipelines.config.recipe import Recipe

    quick = to_plain(read_recipe("quickstart"))
    minimal = to_plain(build(Recipe, {"name": "mine"}))
    assert minimal["stages"] == quick["stages"] and minimal["filters"] == quick["filters"]
    partial = build(Recipe, {"name": "mine", "stages": {"extraction": {"template": "extraction/v1"}, "think": {"sampling": {"n": 5}}}})
    assert (partial.stages.extraction.sampling.n, partial.stages.extraction.sampling.temperature) == (3, 0.7)
    assert partial.stages.extraction.sampling.max_tokens == 768 and partial.stages.think.sampling.n == 5
    greedy = build(Recipe, {"name": "mine", "stages": {"extraction": {"sampling": {"temperature": 0}}}})
    assert greedy.stages.extraction.sampling.n == 1 and "extraction_agreement" not in [f.name for f in greedy.filters]
    assert "without extraction_agreement" in caplog.text  # said, not silent
    with pytest.raises(ConfigError, match=r"stages.statements: sampling: n=2 samples need a temperature above 0.*set sampling.temperature"):
        build(Recipe, {"name": "mine", "stages": {"statements": {"sampling": {"n": 2}}}})


def test_every_error_of_a_recipe_is_reported_at_once(capsys):
    from pipelines.commands.cli import main

    assert main(["run", "quickstart", "--set", "output.rows_per_shard=0", "--set", "teacher.oracle.error_rate=2",
                 "--set", "cache.dirr=x", "--set", "stages.focus.sampling.max_tokens=-1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("extract-think: recipe error: quickstart: ") for line in lines), lines
    for key in ("output.rows_per_shard", "error_rate", "cache.dirr", "stages.focus.sampling.max_tokens"):
        assert sum(key in line for line in lines) == 1, (key, lines)


def test_missing_files_and_folders_of_every_source_stop_the_run_before_it_starts(tmp_path, capsys):
    import json

    import yaml

    from pipelines.commands.cli import main

    (tmp_path / "d.json").write_text(json.dumps([]))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "v", "output": {"dir": str(tmp_path / "out")}, "sources": [
        {"kind": "llava", "name": "s", "llava": {"json": str(tmp_path / "d.json"), "image_root": str(tmp_path / "nope")}},
        {"kind": "llava", "name": "t", "llava": {"json": str(tmp_path / "missing.json")}},
        {"kind": "imagefolder", "name": "u", "imagefolder": {"dir": str(tmp_path / "nodir")}}],
        "teacher": {"backend": "openai", "model": "m", "openai": {"base_url": "http://127.0.0.1:9/v1"}}}))
    assert main(["run", str(recipe), "--no-progress"]) == 2
    err = capsys.readouterr().err
    for what in ("sources[s].llava.image_root", "sources[t].llava.json", "sources[u].imagefolder.dir"):
        assert f"recipe error: {what}: " in err, err
    assert not (tmp_path / "out").exists()


def test_list_items_are_addressed_by_name_in_overrides():
    """`filters.answer_correct.min_vqa_accuracy=0.3` sets that filter's param (the default
    list too); `sources.<name>.` a source; a misspelt name says the closest one."""
    r = read_recipe("quickstart", ["filters.answer_correct.min_vqa_accuracy=0.3", "filters.sufficiency.params.min_ratio=0.7",
                                   "sources.0.name=mine", "sources.mine.synthetic.num_records=5"])
    params = {f.name: f.params for f in r.filters}
    assert params["answer_correct"] == {"min_vqa_accuracy": 0.3} and params["sufficiency"] == {"min_ratio": 0.7}
    assert r.sources[0].synthetic.num_records == 5
    from pipelines.config import build_with_overrides
    from pipelines.config.recipe import Recipe

    default = build_with_overrides(Recipe, {"name": "x"}, ["filters.answer_correct.tolerance=0.1"])
    assert [f.name for f in default.filters] == [f.name for f in r.filters] and default.filters[5].params == {"tolerance": 0.1}
    with pytest.raises(ConfigError, match="did you mean 'answer_correct'"):
        read_recipe("quickstart", ["filters.answer_corect.tolerance=1"])


def test_a_missing_column_names_the_source_and_the_closest_column(tmp_path):
    import datasets

    from pipelines.config.source_config import IngestConfig
    from pipelines.sources import iter_records

    datasets.Dataset.from_dict({"question": ["Q?"], "answer": ["a"], "image": [None]}).to_parquet(str(tmp_path / "d.parquet"))
    r = read_recipe("quickstart", ["sources=[{kind: hf, name: mine, hf: {path: " + str(tmp_path / "d.parquet")
                                   + ", columns: {question: questoin}}}]"])
    with pytest.raises(ConfigError, match=r"sources\[mine\]\.hf\.columns: 'questoin' is not a column of .*\(closest: 'question'\)"):
        list(iter_records(r.sources[0], IngestConfig()))
