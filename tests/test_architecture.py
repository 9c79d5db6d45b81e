"""Checks a reader can trust: no import cycles, small modules, the README's layout table
matches the tree, and the twins share only constants, config and the input checks."""
import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("parity", "kernels")
MAX_LINES = 420


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules ``name`` imports anywhere (functions included), except under
    ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node)
            for child in node.body for n in ast.walk(child)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, name, set(mods)) for name, path in mods.items()}


def test_no_import_cycles():
    g = graph()
    # a package importing its own submodules (its __init__) is not a cycle through them
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in g.items()}
    cycles = []
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack)
        stack.pop()
        state[m] = 2
    for m in sorted(edges):
        if m not in state:
            visit(m, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("path", sorted(p for pkg in PACKAGES + ("bench",)
                                        for p in (ROOT / pkg).rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_module_size(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_readme_layout_matches_tree():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([^`]+)` \|", section, re.M)
    assert listed
    for entry in listed:
        for name in entry.split(", "):
            assert (ROOT / name.rstrip("/")).exists(), f"README lists {name}, not in the tree"
    parity_modules = {p.name for p in (ROOT / "parity").glob("*.py")} - {"__init__.py",
                                                                          "__main__.py"}
    named = set(re.findall(r"`parity/([a-z_]+\.py)`", section))
    assert parity_modules <= named, f"README layout misses {sorted(parity_modules - named)}"


def test_twins_share_only_neutral_modules():
    g = graph()
    allowed = {"kernels", "kernels.constants", "kernels.config", "kernels.checks"}
    for side, other in (("kernels.legacy", "kernels.jit"), ("kernels.jit", "kernels.legacy")):
        for m, targets in g.items():
            if m == side or m.startswith(side + "."):
                bad = {t for t in targets if t.startswith(other) or
                       (t.startswith("kernels") and not t.startswith(side) and t not in allowed)}
                assert not bad, f"{m} imports {bad}"


def test_corpus_generator_is_independent_of_both_twins():
    g = graph()
    for m in ("parity.corpus.generate", "parity.corpus._chain"):
        if m in g:
            assert not {t for t in g[m] if t.startswith("kernels.jit")
                        or t.startswith("kernels.legacy")}, m
