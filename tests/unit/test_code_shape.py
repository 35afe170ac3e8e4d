"""Shape of plugins/: every function reads in one screen (issue 7)."""

import ast
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
MAX_LINES = 40


def _functions():
    for path in sorted(PLUGINS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield "%s:%s %s" % (path.relative_to(PLUGINS), node.lineno, node.name), node.end_lineno - node.lineno + 1


def test_no_function_in_plugins_is_longer_than_one_screen():
    functions = dict(_functions())
    assert len(functions) > 50  # the walk found the code
    assert {name: n for name, n in functions.items() if n > MAX_LINES} == {}
