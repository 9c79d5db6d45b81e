"""Both twins expose exactly the same public names, with the same required parameters."""
import importlib
import inspect

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


def test_twins_share_only_constants():
    """Nothing but kernels.constants / kernels.config is imported across twins."""
    import pathlib
    root = pathlib.Path(__file__).resolve().parent.parent / "kernels"
    for twin, other in (("legacy", "jit"), ("jit", "legacy")):
        for path in (root / twin).glob("*.py"):
            assert f"kernels.{other}" not in path.read_text(), path
