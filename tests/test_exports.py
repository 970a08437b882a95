"""Exports read by real clients: two steps of TRL's SFTTrainer on the TRL export with a tiny
Idefics3 built at test time, and the LLaVA export read back and matched to the dataset; both
carry the publish's train and test splits."""

import json

import datasets
import pytest
import torch

from pipelines.commands.run import run
from pipelines.config.recipe import read_recipe
from pipelines.publishing.exports import export
from tests.published import published_rows


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exports")
    return run(read_recipe("quickstart", ["sources.0.synthetic.num_records=16", "sources.0.synthetic.image_size=96",
                                          "output.test_fraction=0.25", f"output.dir={tmp / 'out'}", "cache.dir=null"])).out_dir


def _llava_entries(dest) -> list[dict]:
    """The conversations of a LLaVA export, both splits."""
    return [e for name in ("llava.json", "llava_test.json") for e in json.loads((dest / name).read_text())]


def test_trl_export_trains_sfttrainer_on_the_completion_only(published, tmp_path, tiny_idefics3):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    dest = export(published, "trl", tmp_path / "trl")
    both = datasets.load_dataset(str(dest))
    splits = datasets.load_dataset(str(published), "extraction")
    assert set(both) == set(splits) == {"train", "test"} and all(both[s]["id"] == splits[s]["id"] for s in both)
    ds, kept = both["train"], splits["train"]
    assert ds.column_names == ["id", "prompt", "completion", "images"]
    assert ds[0]["completion"][0]["content"][0]["text"] == kept[0]["extraction"]
    assert ds[0]["prompt"][0]["content"][1]["text"] == kept[0]["prompt"]

    processor = AutoProcessor.from_pretrained(tiny_idefics3)
    model = AutoModelForImageTextToText.from_pretrained(tiny_idefics3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = SFTConfig(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=2, learning_rate=1e-3,
                     max_length=None, report_to=[], logging_steps=1, save_strategy="no", use_cpu=True, seed=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=processor)
    batch = next(iter(trainer.get_train_dataloader()))
    ids, labels = batch["input_ids"], batch["labels"]
    image_token = model.config.image_token_id
    assert (ids == image_token).sum(dim=1).tolist() == [processor.image_seq_len] * 2  # every image token is there ...
    assert not ((labels != -100) & (ids == image_token)).any()  # ... and none is trained on
    tok = processor.tokenizer
    for i in range(2):  # the loss is on the extraction (and the end of the turn) only: never the prompt
        trained = tok.decode(ids[i][labels[i] != -100])
        assert trained.startswith(ds[i]["completion"][0]["content"][0]["text"][:40]) and ds[i]["prompt"][0]["content"][1]["text"] not in trained
        last_image = (ids[i] == image_token).nonzero().max()
        assert (labels[i][: last_image + 1] == -100).all() and (labels[i] != -100).sum() < (batch["attention_mask"][i] == 1).sum()
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(x)) for x in losses)
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())


def test_trl_export_of_the_reasoning_config_trains_a_causal_lm_on_the_trace(published, tmp_path, tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    dest = export(published, "trl", tmp_path / "trl-reasoning", config="reasoning")
    ds = datasets.concatenate_datasets([datasets.load_dataset(str(dest), split=s) for s in ("train", "test")])
    rows = published_rows(str(published), "reasoning")
    assert ds["id"] == rows["id"] and ds.column_names == ["id", "prompt", "completion"]
    assert ds[0]["prompt"] == [{"role": "user", "content": rows[0]["prompt"]}]
    assert ds[0]["completion"] == [{"role": "assistant", "content": rows[0]["reasoning"]}]
    assert json.loads((dest / "export.json").read_text()) == {"format": "trl", "config": "reasoning"}

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    args = SFTConfig(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=2, learning_rate=1e-3,
                     max_length=None, report_to=[], logging_steps=1, save_strategy="no", use_cpu=True, seed=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    for i in range(2):
        trained = tok.decode(batch["input_ids"][i][batch["labels"][i] != -100])
        assert "Answer:" in trained and "You cannot see the image" not in trained  # the trace, not the prompt
    trainer.train()
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in trainer.state.log_history if "loss" in h)


def test_llava_export_of_the_reasoning_config_is_text_only(published, tmp_path):
    dest = export(published, "llava", tmp_path / "llava-reasoning", config="reasoning")
    entries = _llava_entries(dest)
    rows = {r["id"]: r for r in published_rows(str(published), "reasoning")}
    assert sorted(e["id"] for e in entries) == sorted(rows) and not (dest / "images").exists()
    for e in entries:
        assert "image" not in e
        assert e["conversations"] == [{"from": "human", "value": rows[e["id"]]["prompt"]},
                                      {"from": "gpt", "value": rows[e["id"]]["reasoning"]}]
        assert "<image>" not in e["conversations"][0]["value"]


def test_llava_export_reads_back_and_matches_the_dataset(published, tmp_path):
    dest = export(published, "llava", tmp_path / "llava")
    entries = _llava_entries(dest)
    test_ids = set(datasets.load_dataset(str(published), "extraction", split="test")["id"])
    assert {e["id"] for e in json.loads((dest / "llava_test.json").read_text())} == test_ids
    kept = published_rows(str(published), "extraction").cast_column("image", datasets.Image(decode=False))
    by_id = {r["id"]: r for r in kept}
    assert sorted(e["id"] for e in entries) == sorted(by_id)
    for e in entries:
        row = by_id[e["id"]]
        assert (dest / e["image"]).read_bytes() == row["image"]["bytes"]
        human, gpt = e["conversations"]
        assert human == {"from": "human", "value": "<image>\n" + row["prompt"]}
        assert gpt == {"from": "gpt", "value": row["extraction"]}
    # and our own LLaVA reader takes it back: the export is a valid llava source
    from pipelines.config.source_config import LLaVASource, SourceConfig
    from pipelines.sources.files import read_llava

    raw = list(read_llava(SourceConfig(kind="llava", name="back", llava=LLaVASource(json=str(dest / "llava.json"), image_root=str(dest)))))
    assert len(raw) == len(entries) - len(test_ids)


def test_exporting_twice_replaces_and_a_bad_format_is_refused(published, tmp_path):
    export(published, "llava", tmp_path / "x")
    export(published, "llava", tmp_path / "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]
    with pytest.raises(ValueError, match="format"):
        export(published, "csv", tmp_path / "y")


def test_export_refuses_a_folder_that_is_not_an_export(published, tmp_path, monkeypatch, capsys):
    from pipelines.commands.cli import main
    from pipelines.publishing.exports import ExportRefused

    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.md").write_text("mine")
    with pytest.raises(ExportRefused, match="not an export of this tool"):
        export(published, "trl", project)
    assert main(["export", str(published), "--format", "llava", "--to", str(project)]) == 2
    assert "not an export of this tool" in capsys.readouterr().err
    assert [p.name for p in project.iterdir()] == ["notes.md"]
    file = tmp_path / "file"
    file.write_text("mine")
    with pytest.raises(ExportRefused, match="is a file"):
        export(published, "trl", file)
    monkeypatch.chdir(project)
    with pytest.raises(ExportRefused, match="working folder"):
        export(published, "trl", ".")
    empty = tmp_path / "empty"
    empty.mkdir()
    export(published, "trl", empty)
    export(published, "llava", empty)  # an earlier export, of any format, may be replaced
    assert (empty / "llava.json").is_file() and not (empty / "data").exists()


def test_ids_from_a_downloaded_dataset_never_name_a_path(published, tmp_path):
    """A publish someone else made, whose ids hold `../`, absolute paths, NUL, 300 characters,
    backslashes and look-alike Unicode: every export of every config writes only inside its
    folder, and the LLaVA entries still point at their own images."""
    import shutil

    import pyarrow.parquet as pq

    hostile = ["../../../escaped", "/tmp/et-absolute-escape", "a\x00b", "x" * 300, "..\\..\\win", "\u2025\u2215etc\u2215passwd",
               "\u202egnp.exe", ".hidden", "..", "CON", "ok-id"]
    copy = tmp_path / "downloaded"
    shutil.copytree(published, copy)
    for config in ("extraction", "reasoning"):
        at = 0  # ids unique over the config's shards (train and test)
        for shard in sorted((copy / config).glob("*.parquet")):
            table = pq.read_table(shard)
            ids = [hostile[i % len(hostile)] + ("" if i < len(hostile) else f"-{i}") for i in range(at, at + table.num_rows)]
            at += table.num_rows
            pq.write_table(table.set_column(table.column_names.index("id"), "id", [ids]), shard)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    before = {p for p in tmp_path.rglob("*")}
    for fmt in ("llava", "trl"):
        for config in ("extraction", "reasoning"):
            dest = export(copy, fmt, deep / f"{fmt}-{config}", config=config)
            written = {p for p in tmp_path.rglob("*")} - before
            assert all(p == dest or dest in p.parents or p in dest.parents for p in written), sorted(map(str, written))
            before |= written
    assert not any(p.name == "escaped" for p in tmp_path.rglob("*")) and not __import__("os").path.exists("/tmp/et-absolute-escape.png")
    entries = _llava_entries(deep / "llava-extraction")
    kept = {r["id"]: r for r in published_rows(str(copy), "extraction").cast_column("image", datasets.Image(decode=False))}
    assert len({e["image"] for e in entries}) == len(entries) == len(kept)
    for e in entries:
        assert e["image"].startswith("images/") and "/" not in e["image"][len("images/"):]
        assert (deep / "llava-extraction" / e["image"]).read_bytes() == kept[e["id"]]["image"]["bytes"]


def test_planted_staging_folders_and_links_beside_an_export_are_left_alone(published, tmp_path):
    """`.NAME.partial` and `.NAME.old` beside the destination, as links to a user's folder or
    folders of files: the export uses fresh, proven folders of its own and touches none."""
    user = tmp_path / "user"
    user.mkdir()
    (user / "README.md").write_text("my readme")
    for name in (".dest.partial", ".dest.old", ".dest.partial-1234abcd"):
        (tmp_path / name).symlink_to(user)
    (tmp_path / ".dest.old-5678abcd").mkdir()
    (tmp_path / ".dest.old-5678abcd" / "export.json").write_text("{}")
    for _ in range(2):
        export(published, "trl", tmp_path / "dest")
    assert (user / "README.md").read_text() == "my readme" and [p.name for p in user.iterdir()] == ["README.md"]
    assert (tmp_path / ".dest.old-5678abcd" / "export.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".dest.old", ".dest.old-5678abcd", ".dest.partial", ".dest.partial-1234abcd", "dest", "user"])


@pytest.mark.parametrize("config, model", [("extraction", "tiny_idefics3"), ("reasoning", "tiny_llama")])
def test_a_trl_export_card_is_real_and_its_snippet_trains_as_written(published, tmp_path, monkeypatch, request, config, model):
    """The card, parsed by huggingface_hub: the publish's license and language, the Hub id it
    came from, the features; its training snippet run as written, but for MODEL (a tiny model
    here, no Hub)."""
    import re

    from huggingface_hub import DatasetCard

    dest = export(published, "trl", tmp_path / "trl", config=config, source_dataset="me/quick-data")
    card = DatasetCard.load(dest / "README.md")
    origin = DatasetCard.load(published / "README.md").data
    assert card.data.license == origin.license and card.data.language == origin.language
    assert card.data.source_datasets == ["extended|me/quick-data"] and "https://huggingface.co/datasets/me/quick-data" in card.text
    assert [f["name"] for f in card.data.dataset_info["features"]] == ["id", "prompt", "completion", *(["images"] if config == "extraction" else [])]
    snippet = re.search(r"```python\n(.*?)```", card.text, re.S).group(1)
    assert 'MODEL = "HuggingFaceTB/' in snippet
    local = re.sub(r'MODEL = "[^"]+"', f"MODEL = {str(request.getfixturevalue(model))!r}", snippet)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(local, "card-snippet", "exec"), namespace)  # noqa: S102 - the card's own code, as a user runs it
    trainer = namespace["trainer"]
    assert trainer.state.global_step > 0 and (tmp_path / "out" / "sft").is_dir()
    assert len(trainer.eval_dataset) == len(datasets.load_dataset(str(dest), split="test")) > 0
    assert any("eval_loss" in h for h in trainer.state.log_history)  # the test split was evaluated
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in trainer.state.log_history if "loss" in h)


def test_a_llava_export_card_names_its_source_and_license(published, tmp_path):
    from huggingface_hub import DatasetCard

    dest = export(published, "llava", tmp_path / "llava")
    card = DatasetCard.load(dest / "README.md")
    assert card.data.license == DatasetCard.load(published / "README.md").data.license and "llava-export" in card.data.tags
    assert str(published) in card.text and "llava.json" in card.text
    with pytest.raises(ValueError, match="a Hub dataset id"):
        export(published, "llava", tmp_path / "again", source_dataset="../not an id")
