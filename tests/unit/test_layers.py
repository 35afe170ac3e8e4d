"""The shape of plugins/: imports follow the pipeline's layers, and no function branches beyond reading.

module_utils/ is one package per stage or shared concern (docs/design.md, "Map of the code"):

    common -> pki -> istio -> plan ----------------> reconcile -> runners -> modules
    common -> kube (the one transport) -> gather, reconcile
    common -> pki -> istio -> metadata (publish / fetch / verify)
    common -> pki -> istio -> plan -> render (GitOps delivery: the plan as files)

A package may import only the packages listed for it in ALLOWED (itself included); the pure ones
(PURE) import nothing that does I/O. Filters import only pure packages."""

import ast
from pathlib import Path

import mccabe

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
UTILS = PLUGINS / "module_utils"
PREFIX = "ansible_collections.meshfed.istio.plugins.module_utils"
PURE = {"common", "pki", "istio", "plan"}
ALLOWED = {
    "common": {"common"},
    "pki": {"common", "pki"},
    "istio": {"common", "pki", "istio"},
    "plan": {"common", "pki", "istio", "plan"},
    "kube": {"common", "kube"},
    "gather": {"common", "pki", "istio", "kube", "gather"},
    "metadata": {"common", "pki", "istio", "metadata"},
    "reconcile": {"common", "pki", "istio", "plan", "kube", "reconcile"},
    "render": {"common", "pki", "istio", "plan", "render"},  # GitOps delivery: plan -> files (no transport)
    "runners": set(),  # the top of module_utils: everything below it
}
ALLOWED["runners"] = set(ALLOWED)
# Modules (and names imported from common.deps) that do I/O: network, processes, the kubernetes client.
IO_MODULES = ("urllib3", "kubernetes", "socket", "ssl", "http", "urllib", "subprocess", "concurrent",
              "threading", "ansible.module_utils.urls")
IO_NAMES = {"urllib3", "kubernetes_library", "api_exceptions"}
MAX_COMPLEXITY = 12  # McCabe cyclomatic complexity of one function


def _imports(path):
    """(module imported, names imported from it) of every import statement in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, tuple(alias.name for alias in node.names)


def _package(module):
    """The module_utils package of an imported module name (``runners`` for the top-level file)."""
    rest = module[len(PREFIX) + 1:].split(".")
    return rest[0]


def _collection_imports(path):
    for module, names in _imports(path):
        if module == PREFIX:  # from ...module_utils import <package>
            for name in names:
                yield name, module
        elif module.startswith(PREFIX + "."):
            yield _package(module), module


def test_every_module_utils_file_sits_in_a_known_package():
    packages = set(p.relative_to(UTILS).parts[0].replace(".py", "") for p in UTILS.rglob("*.py")
                   if p.name != "__init__.py" and "__pycache__" not in p.parts)
    assert packages == set(ALLOWED)


def test_imports_run_one_way():
    wrong = []
    for path in sorted(UTILS.rglob("*.py")):
        package = path.relative_to(UTILS).parts[0].replace(".py", "")
        for target, module in _collection_imports(path):
            if target not in ALLOWED[package]:
                wrong.append("%s imports %s" % (path.relative_to(PLUGINS), module))
    assert wrong == []


def test_pure_packages_and_filters_do_no_io():
    files = [p for p in UTILS.rglob("*.py") if p.relative_to(UTILS).parts[0] in PURE]
    files += list((PLUGINS / "filter").glob("*.py"))
    assert len(files) > 10
    wrong = []
    for path in sorted(files):
        for module, names in _imports(path):
            if module.split(".")[0] in IO_MODULES or module in IO_MODULES or IO_NAMES & set(names):
                wrong.append("%s imports %s %s" % (path.relative_to(PLUGINS), module, ", ".join(names)))
        for target, module in _collection_imports(path):
            if path.parent.name == "filter" and target not in PURE:
                wrong.append("%s imports %s" % (path.relative_to(PLUGINS), module))
    assert wrong == []


def test_no_function_in_plugins_branches_beyond_the_complexity_limit():
    seen, over = 0, {}
    for path in sorted(PLUGINS.rglob("*.py")):
        tree = compile(path.read_text(), str(path), "exec", ast.PyCF_ONLY_AST)
        visitor = mccabe.PathGraphingAstVisitor()
        visitor.preorder(tree, visitor)
        for graph in visitor.graphs.values():
            seen += 1
            if graph.complexity() > MAX_COMPLEXITY:
                over["%s %s" % (path.relative_to(PLUGINS), graph.entity)] = graph.complexity()
    assert seen > 100  # the walk found the code
    assert over == {}


def test_the_gates_catch_what_they_forbid(tmp_path):
    """The checks above are not vacuous: an upward import and a branchy function are found."""
    upward = tmp_path / "x.py"
    upward.write_text("from %s.reconcile.reconciler import Reconciler\nimport urllib3\n" % PREFIX)
    assert [target for target, module in _collection_imports(upward)] == ["reconcile"]
    assert [module for module, names in _imports(upward)][-1] == "urllib3"
    branchy = "def f(x):\n" + "".join("    if x == %d:\n        return %d\n" % (i, i) for i in range(MAX_COMPLEXITY + 1))
    visitor = mccabe.PathGraphingAstVisitor()
    visitor.preorder(compile(branchy, "f", "exec", ast.PyCF_ONLY_AST), visitor)
    assert max(g.complexity() for g in visitor.graphs.values()) > MAX_COMPLEXITY
