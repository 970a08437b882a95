"""The import layers, as README.md's layout table names them, walked from the source (every
import, those inside functions too): a module imports only from its own layer or those
below it, nothing in layers 0 to 4 imports Beam, and no cycle runs through the project's
modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "filters", "prompts", "train_min")
NO_BEAM_BELOW = 5  # layers under this one import no apache_beam


def table() -> dict[str, int]:
    """README.md's layout table: part (a dotted module prefix) -> layer."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout"):]
    parts = {}
    for number, cell in re.findall(r"^\| (\d+) \| ([^|]+) \|", section, re.M):
        for path in re.findall(r"`([^`]+)`", cell):
            parts[path.removesuffix("/").removesuffix("/__init__.py").replace("/", ".")] = int(number)
    return parts


PARTS = table()


def layer(module: str) -> int:
    """The layer of the longest part that holds `module`."""
    holders = [p for p in PARTS if module == p or module.startswith(p + ".")]
    assert holders, f"{module} is in no part of README.md's layout table"
    return PARTS[max(holders, key=len)]


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, name: str, known: dict) -> set[str]:
    """The project modules `path` imports (a name outside the project: its top package, e.g. apache_beam)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            outside = t.split(".")[0]
            while t and t not in known:
                t = t.rpartition(".")[0]
            if not t and outside not in PACKAGES:
                out.add(outside)
            elif t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, name, known) for name, path in known.items()}


def test_no_module_imports_a_higher_layer():
    known = modules()
    wrong = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
             for m, targets in graph().items() for t in targets if t in known and layer(t) > layer(m)]
    assert not wrong, "\n".join(wrong)


def test_the_lower_layers_import_no_beam():
    wrong = [m for m, targets in graph().items() if layer(m) < NO_BEAM_BELOW and "apache_beam" in targets]
    assert not wrong, wrong


def test_every_part_of_the_table_exists():
    assert len(PARTS) >= 10
    for part in PARTS:
        assert (ROOT / part.replace(".", "/")).is_dir() or (ROOT / f"{part.replace('.', '/')}.py").is_file(), part


def test_no_import_cycle():
    known = modules()
    edges = {m: {t for t in targets if t in known} for m, targets in graph().items()}
    cycles, index, low, stack, on = [], {}, {}, [], set()

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_walk_sees_imports():
    """The checker itself: a known import of each kind is found."""
    g = graph()
    assert "pipelines.core.record" in g["filters.correctness"]
    assert "pipelines.core.letters" in g["pipelines.core.answers"]
    assert layer("pipelines.core.record") < layer("pipelines.support.text") < layer("pipelines.commands.run") < layer("train_min.train")


def test_training_and_evaluation_import_without_beam():
    """A GPU machine has torch and transformers, not Beam: train_min, the evaluation and
    its held-out read (`iter_records`, the oracle focus teacher) must import without it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'apache_beam': raise ImportError('no Beam here')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import train_min.train, train_min.evaluate, train_min.experiment, train_min.experiment.bundle, pipelines.sources.scenes.truth\n"
        "from pipelines.sources import iter_records\n"
        "from pipelines.config import build\n"
        "from pipelines.config.source_config import IngestConfig, SourceConfig\n"
        "from pipelines.teachers import load_teacher\n"
        "from pipelines.config.recipe import TeacherConfig\n"
        "src = build(SourceConfig, {'kind': 'synthetic', 'synthetic': {'num_records': 2, 'split': 'heldout', 'image_size': 64}})\n"
        "assert [r.status for r in iter_records(src, IngestConfig())] == ['ok', 'ok']\n"
        "load_teacher(TeacherConfig(backend='oracle'))\n"
        "assert 'apache_beam' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
