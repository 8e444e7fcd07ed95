"""The package's layers: each folder of ac_release imports only the folders below it (README, "Layout"), and a stage
never imports another stage. Every import counts, those inside functions too: a lazy import is still a dependency.

The check reads the code with `ast`; `violations` is tried on a tree with an upward import to show that it fails."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

# Bottom first. A module may import its own layer and any layer before it.
LAYERS = (
    "core",  # errors, files, terminal output
    "model",  # what is declared: versions, products, lines, flavours, settings, records
    "clients",  # the outside tools and servers: docker, skopeo, the index, git, subprocesses, retries
    "services",  # the embedded services of the local and staging targets
    "world",  # what is out there for one run: the release context, the index, the registries, line builds
    "building",  # base images, sdist, patches, stamping, Dockerfiles, image builds
    "supply_chain",  # signing, attestations, SBOMs, provenance, verification
    "stages",  # one module a stage
    "pipeline",  # runs the stages
    "commands",  # what tasks.py calls besides the pipeline
    "bench",  # the benchmarks
)
SHARED_IN_STAGES = {"steps"}  # the typed steps every stage returns: not a stage


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> set[str]:
    """Every ac_release module `path` imports, anywhere in it (relative imports resolved)."""
    here = _module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for (
                alias
            ) in node.names:  # `from pkg import module` imports the module, `from module import name` the module
                found.add(f"{base}.{alias.name}" if _is_module(root, f"{base}.{alias.name}") else base)
    return {name for name in found if name.split(".")[0] == root.name}


def _is_module(root: Path, name: str) -> bool:
    path = root.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def violations(root: Path) -> list[str]:
    """One line per import against the layering, and one per module outside every layer."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        if module == root.name:
            continue
        layer = layer_of(module)
        if layer is None:
            found.append(f"{module}: in no layer (one of {', '.join(LAYERS)})")
            continue
        for target in sorted(imports_of(path, root)):
            target_layer = layer_of(target)
            if target_layer is None:
                continue  # `from ac_release import x` of a module outside the layers is reported at x itself
            if LAYERS.index(target_layer) > LAYERS.index(layer):
                found.append(f"{module} imports {target}: {layer} is below {target_layer}")
            stage, other = module.split(".")[1:], target.split(".")[1:]
            if (
                layer == target_layer == "stages"
                and len(stage) == len(other) == 2
                and stage[1] != other[1]
                and other[1] not in SHARED_IN_STAGES
                and stage[1] not in SHARED_IN_STAGES
            ):
                found.append(f"{module} imports {target}: a stage never imports another stage")
    return found


def circles(root: Path) -> list[list[str]]:
    """Every import circle among the modules under `root` (those under `if TYPE_CHECKING:` too), each once."""
    graph = {}
    for path in root.rglob("*.py"):
        graph[_module_name(path, root)] = imports_of(path, root)
    found, done = [], set()

    def walk(module: str, trail: list[str]) -> None:
        if module in trail:
            circle = trail[trail.index(module) :]
            start = circle.index(min(circle))
            if (normal := circle[start:] + circle[:start]) not in found:
                found.append(normal)
            return
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            walk(target, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        walk(module, [])
    return found


def test_every_import_goes_down_the_layers():
    assert violations(REPO / "ac_release") == []


def test_no_import_circle():
    assert circles(REPO / "ac_release") == []


def test_an_import_circle_is_found(tmp_path):
    root = _tree(
        tmp_path,
        {
            "world/__init__.py": "",
            "world/context.py": "from ac_release.world.view import World\n",
            "world/view.py": "import typing\nif typing.TYPE_CHECKING:\n    from ac_release.world import context\n",
        },
    )
    assert circles(root) == [["ac_release.world.context", "ac_release.world.view"]]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "ac_release"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_upward_import_is_found(tmp_path):
    root = _tree(
        tmp_path,
        {
            "model/__init__.py": "",
            "model/version.py": "def parse():\n    from ac_release.world.context import ReleaseContext\n",
            "world/__init__.py": "",
            "world/context.py": "from ac_release.model import version\nfrom ..core.errors import ReleaseError\n",
            "core/__init__.py": "",
            "core/errors.py": "",
        },
    )
    assert violations(root) == [
        "ac_release.model.version imports ac_release.world.context: model is below world",
    ]


def test_a_relative_upward_import_and_a_stage_importing_a_stage_are_found(tmp_path):
    root = _tree(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/errors.py": "from ..stages import steps\n",
            "stages/__init__.py": "",
            "stages/steps.py": "",
            "stages/push.py": "from ac_release.stages import steps\nfrom ac_release.stages.test import NAME\n",
            "stages/test.py": "from . import steps\n",
            "loose.py": "",
        },
    )
    assert violations(root) == [
        "ac_release.core.errors imports ac_release.stages.steps: core is below stages",
        "ac_release.loose: in no layer (one of " + ", ".join(LAYERS) + ")",
        "ac_release.stages.push imports ac_release.stages.test: a stage never imports another stage",
    ]
