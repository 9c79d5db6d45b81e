"""Both twins expose exactly the same public names, with the same required parameters."""
import ast
import importlib
import inspect
import pathlib

import pytest

FAMILIES = ("header", "merkle", "reveal", "validate")


def _public(module) -> set[str]:
    """Names a user can reach: ``__all__`` plus any public function/class defined here."""
    defined = {name for name, obj in vars(module).items()
               if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
               and obj.__module__ == module.__name__}
    return set(module.__all__) | defined


@pytest.mark.parametrize("family", FAMILIES)
def test_family_names_match(family):
    legacy = importlib.import_module(f"kernels.legacy.{family}")
    jit = importlib.import_module(f"kernels.jit.{family}")
    assert _public(legacy) == _public(jit)
    assert set(legacy.__all__) == set(jit.__all__)


@pytest.mark.parametrize("family", FAMILIES)
def test_required_parameters_match(family):
    legacy = importlib.import_module(f"kernels.legacy.{family}")
    jit = importlib.import_module(f"kernels.jit.{family}")
    for name in legacy.__all__:
        a, b = getattr(legacy, name), getattr(jit, name)
        if not inspect.isfunction(a):
            continue
        required = [p.name for p in inspect.signature(a).parameters.values()
                    if p.default is inspect.Parameter.empty]
        assert required == [p.name for p in inspect.signature(b).parameters.values()
                            if p.default is inspect.Parameter.empty], name


def test_packages_export_the_same_names():
    import kernels.jit
    import kernels.legacy
    assert kernels.legacy.__all__ == kernels.jit.__all__
    for name in kernels.legacy.__all__:
        assert hasattr(kernels.legacy, name) and hasattr(kernels.jit, name)


SHARED = {"kernels", "kernels.constants", "kernels.config", "kernels.checks"}
ROOT = pathlib.Path(__file__).resolve().parent.parent / "kernels"


def _kernel_imports(path: pathlib.Path) -> set[str]:
    """Every ``kernels...`` module that ``path`` imports (``from kernels import x`` gives
    ``kernels.x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "kernels"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "kernels":
            if node.module == "kernels":
                found |= {f"kernels.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return found


def test_twins_share_only_constants_config_and_checks():
    """A twin imports only itself and the twin-neutral kernels.constants / kernels.config /
    kernels.checks, and those never import a twin."""
    for twin in ("legacy", "jit"):
        for path in (ROOT / twin).glob("*.py"):
            foreign = {m for m in _kernel_imports(path)
                       if m not in SHARED and not m.startswith(f"kernels.{twin}")}
            assert not foreign, (path, foreign)
    for name in ("constants", "config", "checks"):
        imported = _kernel_imports(ROOT / f"{name}.py")
        assert imported <= SHARED, (name, imported)
    assert "numba" not in (ROOT / "checks.py").read_text()  # the legacy twin needs no numba
