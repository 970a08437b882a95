"""Every template runs sandboxed and bounded: prompt templates a recipe names, mapping
templates, and the tool's own card and reports (pipelines/core/templates.py). A template is
code from whoever wrote the recipe: it may not run anything, read anything, hang or fill the
memory; when it tries, the recipe is refused before the run or one record fails."""

import time

import pytest

from pipelines.commands.run import run
from pipelines.config import ConfigError
from pipelines.config.recipe import read_recipe
from pipelines.core.templates import BoundedEnvironment, TemplateFailure
from tests.published import published_rows

ENV = BoundedEnvironment(max_chars=100_000, max_seconds=0.5)
Q = "What colour is the bus?"


def _render(source: str, **variables) -> str:
    return ENV.render_bounded(ENV.compile_text(source, "test"), {"q": Q, **variables})


@pytest.mark.parametrize("source, why", [
    ("{{ cycler.__init__.__globals__.os.popen('touch {marker}') }}", "SecurityError"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "SecurityError"),
    ("{% include '/etc/passwd' %}", "no loader"),
    ("{{ lipsum(100000) }}", "undefined"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "longer than 0.5 s"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recurses"),
    ("{{ q * 100000000 }}", "repetition"),
    ("{{ ([q] * 10000000) | length }}", "repetition"),
    ("{{ q | center(1000000000) }}", "beyond the limit"),
    ("{{ q.ljust(1000000000) }}", "beyond the limit"),
    ("{% set ns = namespace(x=q) %}{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x }}", "concatenation"),
    ("{{ range(100000) | map('string') | join(q * 100) }}", "join would be"),
    ("{{ (q * 100).join(range(100000) | map('string')) }}", "join would be"),
    ("{{ '%1000000000s' % q }}", "width"),
    ("{{ '{:1000000000}'.format(q) }}", "width"),
    ("{{ 10 ** 100000000 }}", "power"),
    ("{{ ('a\\n' * 10000) | indent(100000) }}", "indent would be"),
    ("{{ (q * 1000) | replace('o', q * 1000) }}", "replace would be"),
    ("{% for i in range(100000) %}{{ q }}{% endfor %}", "the output would be"),
])
def test_a_hostile_template_fails_within_its_limits_and_runs_nothing(source, why, tmp_path):
    marker = tmp_path / "ran"
    start = time.perf_counter()
    with pytest.raises(TemplateFailure, match=why):
        _render(source.replace("{marker}", str(marker)))
    assert time.perf_counter() - start < 3 and not marker.exists()


def test_an_ordinary_template_renders_as_jinja_does():
    out = _render("Q: {{ q | upper }}{% for c in choices %}\n{{ loop.index }}. {{ c }}{% endfor %}{{ ' x' * 3 }}", choices=["a", "b"])
    assert out == "Q: WHAT COLOUR IS THE BUS?\n1. a\n2. b x x x"


def _template(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


QUICK = ["sources.0.synthetic.num_records=12", "sources.0.synthetic.image_size=64", "cache.dir=null"]


def test_a_recipe_whose_template_runs_code_or_hangs_is_refused_before_the_run(tmp_path):
    marker = tmp_path / "ran"
    evil = _template(tmp_path, "evil.jinja", "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }}"
                     "{% for s in statements %}{{ s }}{% endfor %}")
    with pytest.raises(ConfigError, match="stages.extraction.template: .*SecurityError"):
        run(read_recipe("quickstart", [*QUICK, f"stages.extraction.template={evil}", f"output.dir={tmp_path / 'out'}"]))
    assert not marker.exists() and not (tmp_path / "out").exists()
    hang = _template(tmp_path, "hang.jinja", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
                     "{{ focus }}")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="stages.student_prompt: .*longer than"):
        run(read_recipe("quickstart", [*QUICK, f"stages.student_prompt={hang}", f"output.dir={tmp_path / 'out'}"]))
    assert time.perf_counter() - start < 10


def test_a_template_that_breaks_a_limit_on_some_records_fails_those_records_only(tmp_path):
    """Fine on the sample record, a bomb on the questions that mention the left beaker: those
    records fail with the reason, the others are kept, the run publishes."""
    bomb = _template(tmp_path, "bomb.jinja", "{{ extraction }}\nQuestion: {{ question }}"
                     "{% if 'left beaker' in question %}{{ question * 100000000 }}{% endif %}"
                     "{% for c in choices %}\n{{ c }}{% endfor %}")
    outcome = run(read_recipe("quickstart", [*QUICK, "sources.0.synthetic.families=[beakers]", f"stages.think.template={bomb}",
                                             f"output.dir={tmp_path / 'out'}", "output.max_failed_share=1"]))
    f = outcome.funnel
    assert f.records_in == 12 == f.kept + f.rejected + f.failed and 0 < f.failed_by_reason["think_template_error"] < 12
    rejected = published_rows(str(outcome.out_dir), "rejected")
    details = [r["detail"] for r in rejected if r["reason"] == "think_template_error"]
    assert details and all("repetition would be" in d for d in details)


def test_a_mapping_template_is_sandboxed_too(tmp_path):
    from tests.sources.test_hub_schemas import readme_sources, records

    marker = tmp_path / "ran"
    source = readme_sources()["scienceqa"]
    evil = "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "') }}{{ question }}"
    templated = {**source, "hf": {**source["hf"], "columns": {"question_template": evil}}}
    got, _ = records(templated, tmp_path)
    assert got and all(r.status == "rejected" and r.reason == "template_failed" and "SecurityError" in r.detail for r in got)
    assert not marker.exists()
