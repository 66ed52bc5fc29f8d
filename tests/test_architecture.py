"""The package's layers: imports run one way, bottom up, and no module imports a layer above it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ropebench"
# Bottom to top; a module may import its own layer and the layers before it.
LAYERS = [
    {"errors", "registry", "settings", "io", "content", "bounded", "outdir", "corpus", "stats",
     "__init__", "__main__"},
    {"rope"},
    {"model"},
    {"methods", "extenders", "backends"},
    {"tasks"},
    {"search", "training"},
    {"run"},
    {"reference"},
    {"reports"},
    {"cli"},
]
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}
ENTRY_POINTS = {"__main__"}  # `python -m ropebench` runs the CLI


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] == "ropebench"]


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_top_level_module_has_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").is_file()))}
    assert tops <= set(LEVEL), tops - set(LEVEL)


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = layer_of("ropebench." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        if here in ENTRY_POINTS:
            continue
        for line, module in imports_of(path):
            if LEVEL[layer_of(module)] > LEVEL[here]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not upward, "\n".join(upward)


def test_methods_never_see_tasks_training_or_the_harness():
    banned = ("ropebench.tasks", "ropebench.training", "ropebench.run", "ropebench.search")
    for path in sorted((PACKAGE / "methods").rglob("*.py")):
        for line, module in imports_of(path):
            assert not module.startswith(banned), f"{path}:{line} imports {module}"


def test_tasks_never_import_torch_models_directly():
    """Tasks talk to a Backend; model loading and patching stay below them."""
    for path in sorted((PACKAGE / "tasks").rglob("*.py")):
        for line, module in imports_of(path):
            assert not module.startswith(("ropebench.model", "ropebench.backends.hf")), (
                f"{path}:{line} imports {module}"
            )


def test_old_plugin_imports_keep_working():
    """The demo plugin in tests/plugin imports the old paths; the shims must re-export them."""
    import importlib

    old_base = importlib.import_module("ropebench.extenders.base")
    old_longrope = importlib.import_module("ropebench.extenders.longrope")
    old_rope = importlib.import_module("ropebench.extenders.rope")
    from ropebench.methods.base import Extender
    from ropebench.rope.scaling import RopeScaling, longrope_scaling
    from ropebench.rope.spec import RopeSpec

    assert old_base.Extender is Extender and old_base.RopeScaling is RopeScaling
    assert old_longrope.longrope_scaling is longrope_scaling
    assert old_rope.RopeSpec is RopeSpec and callable(old_rope.scale_of)


def test_each_addition_the_docs_list_touches_at_most_two_files_and_names_its_proof():
    """docs/architecture.md's "Where a change goes": every row says how many package files an
    addition touches (1 or 1-2) and names the test that adds one from outside the package."""
    import re

    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    table = doc.split("## Where a change goes", 1)[1].split("\n\n")[1]
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    assert {"a backend (vLLM, SGLang, ...)", "a task", "a report section kind",
            "a method with analytic factors"} <= {row[0].strip() for row in rows}
    for what, touched, shown in rows:
        if what.strip() == "data-parallel evaluation":  # a change to the loop, not a plugin
            continue
        assert re.match(r"\s*(1|1-2):", touched), what
        tests = re.findall(r"`(tests/test_\w+\.py)`", shown)
        assert tests and all((PACKAGE.parent / t).is_file() for t in tests), what
