"""The package's layout rules: no import circle, small modules, records at the bottom, docstrings."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sentrycam_widget"
MAX_LINES = 500


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``) for every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _imports(name: str, path: Path, is_package: bool, modules: dict) -> set[str]:
    """Modules of the package that ``name`` imports at run time, at any depth of its code
    (lazy imports in functions count; ``if TYPE_CHECKING:`` blocks do not)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = name.split(".") if is_package else name.split(".")[:-1]
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, *where, modules) for name, where in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_circle():
    graph = _graph()
    assert "sentrycam_widget.records" in graph and graph["sentrycam_widget.cli"]
    assert _cycles(graph) == []


def test_the_cycle_finder_sees_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("name", sorted(_modules()))
def test_module_is_small_and_says_what_it_owns(name):
    path, _ = _modules()[name]
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"{path} has more than {MAX_LINES} lines"
    docstring = ast.get_docstring(ast.parse(text))
    assert docstring and docstring.splitlines()[0].strip(), f"{path} has no first-line docstring"


def test_records_sit_at_the_bottom():
    """records.py imports nothing of the projection package or the torch machinery: importing it
    in a fresh interpreter loads neither torch nor any projection/capture/store module."""
    reached, todo = set(), ["sentrycam_widget.records"]
    graph = _graph()
    while todo:
        for nxt in graph[todo.pop()] - reached:
            reached.add(nxt)
            todo.append(nxt)
    assert reached <= {"sentrycam_widget", "sentrycam_widget.errors", "sentrycam_widget.checks"}
    code = (
        "import json, sys; import sentrycam_widget.records; "
        "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or "
        "m.startswith(('sentrycam_widget.projection', 'sentrycam_widget.capture', "
        "'sentrycam_widget.store')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_package_imports_nothing_from_benchmarks_and_nothing_touches_sys_path():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level:
                assert not (node.module or "").startswith("benchmarks"), path
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("benchmarks") for a in node.names), path
    sources = [*PACKAGE.rglob("*.py"), *(REPO / "benchmarks").glob("*.py")]
    sources += (REPO / "notebooks").glob("*.ipynb")
    for path in sources:
        assert "sys.path" not in path.read_text(), f"{path} changes sys.path"


def test_public_api_is_explicit_and_every_name_resolves():
    """``__all__``, the lazy table and the ``TYPE_CHECKING`` imports name the same objects."""
    from importlib.metadata import version

    import sentrycam_widget as package

    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    typed = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
        if isinstance(sub, ast.ImportFrom)
        for alias in sub.names
    }
    assert typed == set(package._PUBLIC) == set(package.__all__) - {"__version__"}
    for name in package.__all__:
        assert getattr(package, name) is not None
    assert package.__version__ == version("sentrycam-widget")


def _numpydoc_gaps(name: str, obj: object) -> list[str]:
    """What a public callable's docstring lacks: a Parameters section when it takes arguments,
    a Returns (or Yields) section when it returns something."""
    import inspect

    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj):
        doc += obj.__init__.__doc__ or ""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    params = [p for p in signature.parameters.values() if p.name not in ("self", "cls")]
    gaps = []
    if params and "Parameters\n" not in doc:
        gaps.append(f"{name}: Parameters")
    returns = signature.return_annotation
    gives = not inspect.isclass(obj) and returns not in (None, "None", inspect.Signature.empty)
    if gives and "Returns\n" not in doc and "Yields\n" not in doc:
        gaps.append(f"{name}: Returns")
    return gaps


def test_every_public_callable_has_numpydoc_sections():
    import inspect

    import sentrycam_widget as package

    gaps = []
    for name in package.__all__:
        obj = getattr(package, name)
        if name == "__version__" or (inspect.isclass(obj) and issubclass(obj, Exception)):
            continue
        gaps += _numpydoc_gaps(name, obj)
        if inspect.isclass(obj):
            for member_name, member in vars(obj).items():
                if member_name.startswith("_") or isinstance(member, property):
                    continue
                member = getattr(obj, member_name)
                if inspect.isfunction(member) or inspect.ismethod(member):
                    gaps += _numpydoc_gaps(f"{name}.{member_name}", member)
    assert gaps == []
