"""The dataset card as `huggingface_hub` reads it: metadata a Hub user expects (languages,
creators, source datasets, typed features per config, a license per source), the citations,
and a usage line that loads this very folder."""

import datasets
import pytest
import yaml
from huggingface_hub import DatasetCard

from pipelines.commands.run import run
from pipelines.config.recipe import dump_recipe, read_recipe
from pipelines.publishing.card import MIXED_LICENSE, card_for_repo
from tests.published import published_rows


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Two sources under different licenses."""
    tmp = tmp_path_factory.mktemp("card")
    recipe = read_recipe("quickstart", [
        "sources.0.synthetic.num_records=8", "sources.0.synthetic.image_size=96", "sources.0.license=cc-by-4.0",
        "sources.0.name=scenes-a", f"output.dir={tmp / 'out'}", "cache.dir=null", "output.min_kept=0"])
    second = {"kind": "synthetic", "name": "scenes-b", "license": "cc0-1.0",
              "synthetic": {"num_records": 6, "image_size": 96, "seed": 7, "families": ["clock", "sign"]}}
    plain = yaml.safe_load(dump_recipe(recipe))
    plain["sources"].append(second)
    (tmp / "mixed.yaml").write_text(yaml.safe_dump(plain))
    recipe = read_recipe(tmp / "mixed.yaml")
    return recipe, run(recipe)


def test_the_card_loads_with_huggingface_hub_and_has_the_metadata(mixed):
    recipe, outcome = mixed
    text = (outcome.out_dir / "README.md").read_text()
    card = DatasetCard(text)
    data = card.data.to_dict()
    assert data["license"] == "other" and data["license_name"] == MIXED_LICENSE and data["license_link"] == "LICENSE.md"
    licenses = (outcome.out_dir / "LICENSE.md").read_text()
    assert "| `cc-by-4.0` | scenes-a |" in licenses and "| `cc0-1.0` | scenes-b |" in licenses
    assert data["language"] == ["en"] and data["annotations_creators"] == ["machine-generated"]
    assert data["source_datasets"] == ["original"]
    assert {c["config_name"] for c in data["dataset_info"]} == {c["config_name"] for c in data["configs"]}
    # the declared features are the ones `datasets` loads
    for info in data["dataset_info"]:
        declared = datasets.DatasetInfo._from_yaml_dict(info).features
        loaded = published_rows(str(outcome.out_dir), info["config_name"]).features
        assert declared == loaded, info["config_name"]
    scores = next(i for i in data["dataset_info"] if i["config_name"] == "extraction")["features"]
    assert any(f["name"] == "scores" and {s["name"] for s in f["struct"]} == {x.name for x in recipe.filters} for f in scores)
    assert "@inproceedings{endo2026downscaling" in text and "@software{extract_think" in text and "2511.17487" in text
    assert "<this repo or folder>" not in text


def test_the_usage_line_loads_the_folder_and_after_a_push_the_repo(mixed):
    _, outcome = mixed
    text = (outcome.out_dir / "README.md").read_text()
    line = next(x for x in text.splitlines() if x.startswith("ds = load_dataset("))
    namespace = {}
    exec("from datasets import load_dataset\n" + line, namespace)  # the card's own line, as a user pastes it
    assert len(namespace["ds"]) == outcome.funnel.kept
    pushed = card_for_repo(text, "me/scenes")
    assert 'ds = load_dataset("me/scenes", "extraction", split="train")' in pushed and str(outcome.out_dir) not in pushed
    assert yaml.safe_load(pushed.split("---")[1]) == yaml.safe_load(text.split("---")[1])  # the header is untouched


def test_one_license_stays_plain(tmp_path):
    outcome = run(read_recipe("quickstart", ["sources.0.synthetic.num_records=4", "sources.0.synthetic.image_size=96",
                                             f"output.dir={tmp_path / 'out'}", "cache.dir=null", "output.min_kept=0"]))
    data = DatasetCard((outcome.out_dir / "README.md").read_text()).data.to_dict()
    assert data["license"] == "cc0-1.0" and "license_name" not in data and not (outcome.out_dir / "LICENSE.md").exists()


HOSTILE = ('<img src=x onerror=alert(1)><script>alert(2)</script> [x](javascript:alert(3)) ![i](http://evil/t.png) '
           '<a href="javascript:alert(4)">y</a> ``` | cell | `` `code` **b**\n# heading\n> quote\n<iframe src=//evil>')


def _live_html(markdown_text: str) -> list[tuple[str, dict]]:
    """The tags a Markdown renderer that passes raw HTML through (CommonMark with html on, GFM
    tables) makes of a card, the YAML header taken off as the Hub does."""
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    body = markdown_text.split("\n---\n", 1)[1] if markdown_text.startswith("---\n") else markdown_text
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(body)
    tags = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append((tag, dict(attrs)))

    Collect().feed(html)
    return tags


def test_the_card_is_inert_whatever_the_data_and_the_recipe_hold(mixed):
    """Questions, replies, ids, the recipe's name, description and model name full of HTML and
    Markdown: rendered with a renderer that passes HTML, the card has no live tag, no script
    link and no image but its own charts."""
    import dataclasses

    from pipelines.publishing.card import license_file, render_card

    recipe, outcome = mixed
    evil = dataclasses.replace(recipe, name=HOSTILE, description=HOSTILE, teacher=dataclasses.replace(recipe.teacher, model=HOSTILE),
                               sources=[dataclasses.replace(s, name=f"s{i}{HOSTILE}") for i, s in enumerate(recipe.sources)])
    examples = [{"id": HOSTILE, "prompt": HOSTILE, "extraction": HOSTILE, "questions": [HOSTILE, HOSTILE]}]
    text = render_card(evil, outcome.funnel, {"funnel": "assets/funnel.png"}, examples, dataset_ref=HOSTILE)
    text += license_file(evil, outcome.funnel)
    tags = _live_html(text)
    allowed = {"p", "h1", "h2", "h3", "table", "thead", "tbody", "tr", "th", "td", "code", "pre", "a", "img", "em", "strong",
               "blockquote", "ul", "ol", "li", "hr", "br"}
    assert {t for t, _ in tags} <= allowed
    assert not any(name.startswith("on") for _, attrs in tags for name in attrs)
    assert [a["src"] for t, a in tags if t == "img"] == ["assets/funnel.png"]
    assert not any(t == "a" and "javascript" in a.get("href", "") for t, a in tags)
    assert "alert(1)" in text  # the text is still there, as text
    DatasetCard(text)  # and the card still parses
