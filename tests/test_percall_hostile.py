"""Per-call experiments against hostile implementations and values (SPEC section 5)."""
import numpy as np
import pytest

from parity import experiment
from parity.compare import values_equal
from parity.modes import Mode
from parity.percall import Controller
from parity.state import ModeState


def ctl(mode, **kw):
    return Controller(ModeState(None, initial=mode), seed=7, **kw)


def mismatches(c, fn="f"):
    return c.metrics.registry.get_sample_value("dual_run_mismatches_total", {"function": fn})


def total(values):
    return int(sum(values))


def mutate_then_sum(values):
    values.append(1000)
    return int(sum(values[:-1]))


def test_refactored_mutating_its_argument_is_a_mismatch_and_invisible(tmp_path):
    for mode in (Mode.SHADOW, Mode.REFACTORED_PRIMARY):
        c = ctl(mode)
        f = experiment("f", legacy=total, refactored=mutate_then_sum, controller=c)
        for i in range(200):
            arg = [1, 2, i]
            assert f(arg) == 3 + i
            assert arg == [1, 2, i]  # the caller's value never changes
        assert mismatches(c) == 200  # mode 2 demoted at the first, then compared on
        assert "mutated its argument 0" in c.mismatches[0]["why"]
        assert c.mode == Mode.SHADOW  # mode 2 demoted on the first


def test_arrays_and_bytearrays_are_private_per_side():
    def legacy_fn(a, b):
        return a.sum() + len(b)

    def refactored_fn(a, b):
        a[:] = 0
        b.clear()
        return legacy_fn(np.arange(4), bytearray(3))
    c = ctl(Mode.SHADOW)
    f = experiment("f", legacy=legacy_fn, refactored=refactored_fn, controller=c)
    a, b = np.arange(4), bytearray(3)
    assert f(a, b) == 9
    assert a.tolist() == [0, 1, 2, 3] and b == bytearray(3)
    assert mismatches(c) == 1


@pytest.mark.parametrize("exc", [SystemExit(3), GeneratorExit("gen")])
def test_base_exceptions_are_outcomes(exc):
    def boom(x):
        raise exc
    for mode in (Mode.SHADOW, Mode.REFACTORED_PRIMARY):
        c = ctl(mode)
        f = experiment("f", legacy=lambda x: x, refactored=boom, controller=c)
        assert f(5) == 5  # legacy served; the exception never reaches the caller
        assert mismatches(c) == 1


def test_keyboard_interrupt_propagates():
    def interrupted(x):
        raise KeyboardInterrupt
    f = experiment("f", legacy=lambda x: x, refactored=interrupted, controller=ctl(Mode.SHADOW))
    with pytest.raises(KeyboardInterrupt):
        f(1)


def test_identical_exceptions_served_in_mode2_without_demotion():
    def boom(x):
        raise ValueError("negative height")
    c = ctl(Mode.REFACTORED_PRIMARY)
    f = experiment("f", legacy=boom, refactored=boom, controller=c)
    with pytest.raises(ValueError, match="negative height"):
        f(1)
    assert mismatches(c) == 0 and c.mode == Mode.REFACTORED_PRIMARY


@pytest.mark.parametrize("a, b", [
    (b"", bytearray()), ([1, 2], (1, 2)), (np.uint32(5), 5), (5, 5.0), (1, True),
    (0.0, -0.0), (np.float64(0.0), np.float64(-0.0)), (np.zeros(2, np.uint8), b"\0\0"),
    (np.zeros(2), np.zeros((2, 1))), (np.uint32(5), np.int64(5)), ({"a": 1}, {"a": 1.0}),
])
def test_comparator_types_and_bits(a, b):
    assert not values_equal(a, b) and not values_equal(b, a)


@pytest.mark.parametrize("a", [
    b"x", float("nan"), np.float64("nan"), [b"a", (1.5, None)], {"k": np.arange(3)},
    np.array([np.nan, -0.0]), np.uint32(5), "text", None,
])
def test_comparator_equal_to_a_copy(a):
    import copy
    assert values_equal(a, copy.deepcopy(a))


def test_mode2_serves_legacy_type_on_type_mismatch():
    c = ctl(Mode.REFACTORED_PRIMARY)
    f = experiment("f", legacy=lambda: b"", refactored=lambda: bytearray(), controller=c)
    assert type(f()) is bytes and c.mode == Mode.SHADOW
