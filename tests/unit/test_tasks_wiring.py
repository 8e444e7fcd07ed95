"""tasks.py is argument parsing and wiring only: at most MAX_LINES lines, no statement that decides, loops, handles
or raises (the work and its refusals are in ac_release.commands), every task behind the one error boundary
(cli.command), and the help of every argument written in cli.py, once.

The checks read the code with `ast`; `logic_in` is tried on a task with logic of its own to show that it fails."""

from __future__ import annotations

import ast

import invoke

import tasks
from ac_release.commands import cli
from tests.helpers import REPO

MAX_LINES = 200
# Statements that make a function more than wiring: a branch, a loop, error handling, a raise, a context.
LOGIC = (ast.If, ast.For, ast.While, ast.Try, ast.TryStar, ast.Raise, ast.With, ast.Match, ast.AsyncFor, ast.AsyncWith)


def logic_in(source: str) -> list[str]:
    """One line per statement of `source` beyond wiring: its kind and line number."""
    found = sorted((n for n in ast.walk(ast.parse(source)) if isinstance(n, LOGIC)), key=lambda n: n.lineno)
    return [f"line {node.lineno}: {type(node).__name__.lower()}" for node in found]


def literal_help_in(source: str) -> list[str]:
    """The `help=` arguments written as literals: the help of the tasks' arguments is cli.py's."""
    return [
        f"line {node.lineno}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.keyword) and node.arg == "help" and not isinstance(node.value, ast.Attribute)
    ]


def _tasks(collection: invoke.Collection):
    yield from collection.tasks.values()
    for child in collection.collections.values():
        yield from _tasks(child)


def test_tasks_py_is_short():
    lines = len((REPO / "tasks.py").read_text().splitlines())
    assert lines <= MAX_LINES, f"tasks.py has {lines} lines: move the work into ac_release/commands/"


def test_tasks_py_holds_no_logic():
    assert logic_in((REPO / "tasks.py").read_text()) == []


def test_the_check_finds_logic():
    source = """
@cli.command(help={"line": "a line"})
def lock(c, line):
    try:
        settings = load_settings()
    except OSError:
        raise Exit("error")
    for path in regenerate(settings, line):
        if path:
            print(path)
"""
    assert logic_in(source) == ["line 4: try", "line 7: raise", "line 8: for", "line 9: if"]
    assert literal_help_in(source) == ["line 2"]


def test_the_help_of_the_arguments_is_cli_pys():
    assert literal_help_in((REPO / "tasks.py").read_text()) == []


def test_every_task_reports_its_errors_through_the_one_boundary():
    wrapper = cli.reports_errors(lambda: None).__code__
    bare = [task.name for task in _tasks(tasks.namespace) if task.body.__code__ is not wrapper]
    assert bare == []


def test_the_shared_help_is_written_once():
    """The version's and the target's help, once in the whole tool (nine copies of them were in tasks.py)."""
    sources = [REPO / "tasks.py", *sorted((REPO / "ac_release").rglob("*.py"))]
    for text in (cli.VERSION, cli.TARGET):
        copies = [path.name for path in sources if path.read_text().count(f'"{text}"')]
        assert copies == ["cli.py"], text


def test_nothing_in_the_package_imports_tasks():
    importers = []
    for path in sorted((REPO / "ac_release").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(name == "tasks" or name.startswith("tasks.") for name in names):
                importers.append(str(path.relative_to(REPO)))
    assert importers == []
