"""The import layers, walked from the source (every import, those inside functions too):

    pipelines.core  <  filters  <  pipelines (the rest), prompts  <  train_min

A module imports only from its own layer or those below it, so filters stand on the core
alone (the record, answer matching, option letters, image hashing) and never on the Beam
pipeline, and no cycle runs through the project's modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "filters", "prompts", "train_min")


def layer(module: str) -> int:
    if module == "pipelines.core" or module.startswith("pipelines.core."):
        return 0
    if module == "pipelines.support" or module.startswith("pipelines.support."):
        return 1
    if module.split(".")[0] == "filters":
        return 2
    if module.split(".")[0] in ("pipelines", "prompts"):
        return 3
    return 4


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, name: str, known: dict) -> dict[str, bool]:
    """The project modules `path` imports -> whether at the top level (not in a function)."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(n) for n in tree.body} | {id(c) for n in tree.body if isinstance(n, (ast.If, ast.Try)) for c in ast.walk(n)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: dict[str, bool] = {}
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
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out[t] = out.get(t, False) or id(node) in top
    return out


def graph() -> dict[str, dict[str, bool]]:
    known = modules()
    return {name: imports(path, name, known) for name, path in known.items()}


def test_no_module_imports_a_higher_layer():
    wrong = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
             for m, targets in graph().items() for t in targets if layer(t) > layer(m)]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    edges = {m: set(t) for m, t in graph().items()}
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
    assert "pipelines.core.options" in g["pipelines.core.answers"]
    assert layer("pipelines.core.record") < layer("pipelines.support.text") < layer("pipelines.run") < layer("train_min.train")


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
        "import train_min.train, train_min.evaluate, train_min.experiment, train_min.bundle, pipelines.truth\n"
        "from pipelines.sources import iter_records\n"
        "from pipelines.config import build\n"
        "from pipelines.source_config import IngestConfig, SourceConfig\n"
        "from pipelines.teachers import load_teacher\n"
        "from pipelines.recipe import TeacherConfig\n"
        "src = build(SourceConfig, {'kind': 'synthetic', 'synthetic': {'num_records': 2, 'split': 'heldout', 'image_size': 64}})\n"
        "assert [r.status for r in iter_records(src, IngestConfig())] == ['ok', 'ok']\n"
        "load_teacher(TeacherConfig(backend='oracle'))\n"
        "assert 'apache_beam' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
