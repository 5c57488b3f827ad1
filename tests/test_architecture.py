"""The layering contract, read from the source: imports flow one way and no cycle exists.

The import graph is built with `ast` (no tool to install): every `import` and `from ... import`
of jupyter_ext and widgets, including those inside functions (a late import is still a
dependency), except those under `if TYPE_CHECKING:`. Importing `a.b.c` also runs the
packages `a` and `a.b`, so those count as dependencies too. The layers, lowest first, are
LAYERS below: a module may import its own layer and lower ones only. README's ARCHITECTURE
section draws the same picture.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jupyter_ext", "widgets")

# Lowest first. A module belongs to the first layer with a matching prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("jupyter_ext.errors", "jupyter_ext.defaults", "jupyter_ext.display", "jupyter_ext.base")),
    ("data", ("jupyter_ext.catalog", "jupyter_ext.store")),
    ("techniques", ("jupyter_ext.techniques",)),
    ("recipes", ("jupyter_ext.recipes",)),
    ("engine", ("jupyter_ext.engine",)),
    ("measure", ("jupyter_ext.bench", "jupyter_ext.pricing", "jupyter_ext.charts")),
    ("planning", ("jupyter_ext.planning",)),
    ("operate", ("jupyter_ext.deploy", "jupyter_ext.autoscale")),
    ("verbs", ("jupyter_ext.verbs",)),
    ("faces", ("jupyter_ext.faces", "widgets", "jupyter_ext")),  # the package root loads the magic
]
FACES = {"cli": ("jupyter_ext.faces.cli",), "magic": ("jupyter_ext.faces.magic",), "widgets": ("widgets",)}
# The one face-to-face edge: `%optimize panel` opens the widget panel (widgets never import the magic).
ALLOWED_FACE_EDGES = {("magic", "widgets")}
UI_LIBRARIES = ("IPython", "ipywidgets", "traitlets", "ipykernel")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = p
    return mods


MODS = _modules()


def _known(name: str) -> str | None:
    while name and name not in MODS:
        name = name.rpartition(".")[0]
    return name or None


def _with_parents(name: str) -> list[str]:
    """`name` and the packages importing it runs - not the root package `jupyter_ext`, whose
    only imports are inside the extension hooks IPython calls (see the test below)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)
            if ".".join(parts[:i]) in MODS and ".".join(parts[:i]) != "jupyter_ext"]


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            skip.update(id(c) for c in ast.walk(n))
    return skip


def _imports(mod: str, path: Path) -> tuple[set[str], set[str]]:
    """(internal modules, top-level external packages) that `mod` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    internal: set[str] = set()
    external: set[str] = set()
    is_pkg = path.name == "__init__.py"
    for n in ast.walk(tree):
        if id(n) in skip or not isinstance(n, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        else:
            if n.level:
                base = mod if is_pkg else mod.rpartition(".")[0]
                for _ in range(n.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{n.module}" if n.module else base
            else:
                target = n.module or ""
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODS else target for a in n.names]
        for name in names:
            if name.split(".")[0] in PACKAGES:
                hit = _known(name)
                if hit:
                    # The packages above `mod` itself are already running when it is imported.
                    internal.update(p for p in _with_parents(hit) if p == hit or not mod.startswith(p + "."))
            else:
                external.add(name.split(".")[0])
    internal.discard(mod)
    return internal, external


GRAPH: dict[str, set[str]] = {}
EXTERNAL: dict[str, set[str]] = {}
for _m, _p in MODS.items():
    GRAPH[_m], EXTERNAL[_m] = _imports(_m, _p)


def _layer(mod: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(mod == p or mod.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{mod} is in no layer: add it to LAYERS in tests/test_architecture.py")


def _face(mod: str) -> str | None:
    for face, prefixes in FACES.items():
        if any(mod == p or mod.startswith(p) for p in prefixes):
            return face
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_the_graph_is_read():
    assert len(MODS) > 50
    assert "jupyter_ext.recipes" in GRAPH["jupyter_ext.engine.args"]
    assert "jupyter_ext.engine" in GRAPH["jupyter_ext.engine.args"] or "jupyter_ext.engine.args" in MODS


def test_the_root_package_imports_nothing_when_loaded():
    tree = ast.parse(MODS["jupyter_ext"].read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) and n.module != "__future__"]
    assert top == []


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_the_cycle_check_finds_a_cycle():
    graph = {k: set(v) for k, v in GRAPH.items()}
    graph["jupyter_ext.catalog"].add("jupyter_ext.planning.roofline")  # what catalog once did
    assert any("jupyter_ext.catalog" in c and "jupyter_ext.planning.roofline" in c for c in _cycles(graph))


@pytest.mark.parametrize("mod", sorted(MODS))
def test_imports_flow_down_the_layers(mod):
    up = sorted(t for t in GRAPH[mod] if _layer(t) > _layer(mod))
    assert not up, f"{mod} ({LAYERS[_layer(mod)][0]}) imports higher layers: {up}"


def test_the_core_imports_no_notebook_library():
    bad = {m: sorted(EXTERNAL[m] & set(UI_LIBRARIES)) for m in MODS
           if _layer(m) < len(LAYERS) - 1 and EXTERNAL[m] & set(UI_LIBRARIES)}
    assert bad == {}


def test_faces_do_not_import_each_other():
    edges = {(_face(m), _face(t)) for m in MODS for t in GRAPH[m]
             if _face(m) and _face(t) and _face(m) != _face(t)}
    assert edges <= ALLOWED_FACE_EDGES, edges - ALLOWED_FACE_EDGES


def test_modules_are_small_and_say_what_they_own():
    big = {m: n for m, p in MODS.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > 420}
    assert big == {}
    undocumented = [m for m, p in MODS.items() if p.stat().st_size and ast.get_docstring(ast.parse(p.read_text())) is None]
    assert undocumented == []
