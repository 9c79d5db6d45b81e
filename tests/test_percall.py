"""Per-call experiments: served values, what ran, what was counted, rollback and promotion."""
import json
import time

import numpy as np
import pytest

import kernels.jit as jit
import kernels.legacy as legacy
from parity import experiment
from parity.compare import values_equal
from parity.errors import ParityError
from parity.modes import Mode, parse_mode
from parity.percall import TIMING_SAMPLE, Controller
from parity.state import ModeState

HEADER = bytes(range(256)) + bytes(20)


class Spy:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *a):
        self.calls += 1
        return self.fn(*a)


def make(tmp_path, mode, legacy_fn=legacy.hash_header, refactored_fn=jit.hash_header, **kw):
    c = Controller(ModeState(tmp_path / "mode.json", initial=mode), seed=1, **kw)
    l, r = Spy(legacy_fn), Spy(refactored_fn)
    return c, l, r, experiment("header_hash", legacy=l, refactored=r, controller=c)


def counter(c, name, **labels):
    return c.metrics.registry.get_sample_value(name, labels)


@pytest.mark.parametrize("mode", list(Mode))
def test_modes_when_twins_agree(tmp_path, mode):
    c, l, r, f = make(tmp_path, mode)
    for _ in range(5):
        assert f(HEADER) == legacy.hash_header(HEADER)
    assert l.calls == (5 if mode.runs_legacy else 0)
    assert r.calls == (5 if mode.runs_refactored else 0)
    assert counter(c, "dual_run_comparisons_total", function="header_hash") == \
        (5 if mode.compares else 0)
    served = "legacy" if mode in (Mode.LEGACY_ONLY, Mode.SHADOW) else "refactored"
    assert counter(c, "codec_mode_requests_total", mode=mode.label, served=served) == 5
    assert c.mode == mode


def _bad(h):
    out = bytearray(jit.hash_header(h))
    out[0] ^= 1
    return bytes(out)


@pytest.mark.parametrize("mode", list(Mode))
def test_modes_when_refactored_differs(tmp_path, mode):
    c, l, r, f = make(tmp_path, mode, refactored_fn=_bad)
    got = f(HEADER)
    truth = legacy.hash_header(HEADER)
    assert got == (_bad(HEADER) if mode == Mode.REFACTORED_ONLY else truth)
    mism = counter(c, "dual_run_mismatches_total", function="header_hash")
    assert mism == (1 if mode.compares else 0)
    if mode == Mode.REFACTORED_PRIMARY:  # demoted at once, and recorded durably
        assert c.mode == Mode.SHADOW
        saved = ModeState(tmp_path / "mode.json")  # a restart reads the store
        assert saved.mode == 1 and saved.history[-1]["reason"] == "header_hash mismatch"
        assert counter(c, "codec_mode_active") == 1
    else:
        assert c.mode == mode


def test_exceptions_compared_by_type_and_message(tmp_path):
    def boom_a(x):
        raise ValueError("bad header")

    def boom_b(x):
        raise ValueError("bad header")

    def boom_c(x):
        raise KeyError("bad header")

    c, _, _, f = make(tmp_path, Mode.SHADOW, boom_a, boom_b)
    with pytest.raises(ValueError, match="bad header"):
        f(HEADER)
    assert counter(c, "dual_run_mismatches_total", function="header_hash") == 0
    c, _, _, f = make(tmp_path / "2", Mode.SHADOW, boom_a, boom_c)
    with pytest.raises(ValueError):
        f(HEADER)
    assert counter(c, "dual_run_mismatches_total", function="header_hash") == 1


def test_mode2_refactored_raises_serves_legacy_and_demotes(tmp_path):
    def boom(x):
        raise RuntimeError("jit crashed")
    c, l, r, f = make(tmp_path, Mode.REFACTORED_PRIMARY, refactored_fn=boom, sample=0.0)
    assert f(HEADER) == legacy.hash_header(HEADER)
    assert l.calls == 1 and c.mode == Mode.SHADOW
    assert "raised RuntimeError" in c.state.history[-1]["reason"]


def test_mode2_sampling(tmp_path):
    c, l, r, f = make(tmp_path, Mode.REFACTORED_PRIMARY, sample=0.25)
    for _ in range(400):
        f(HEADER)
    assert r.calls == 400 and 60 < l.calls < 140
    assert counter(c, "dual_run_comparisons_total", function="header_hash") == l.calls


def test_harness_errors_never_reach_the_caller(tmp_path):
    def broken_comparator(a, b):
        raise RuntimeError("comparator bug")
    c = Controller(ModeState(tmp_path / "m.json", initial=Mode.SHADOW))
    f = experiment("header_hash", legacy=legacy.hash_header, refactored=jit.hash_header,
                   controller=c, comparator=broken_comparator)
    assert f(HEADER) == legacy.hash_header(HEADER)
    assert c.harness_errors == 1

    def broken_publish(*a, **k):
        raise OSError("disk full")
    c.state.flush = broken_publish
    c._flushed = -1e9
    assert f(HEADER) == legacy.hash_header(HEADER)


def test_random_order(tmp_path):
    order = []
    c = Controller(ModeState(tmp_path / "m.json", initial=Mode.SHADOW), seed=4)
    f = experiment("x", legacy=lambda: order.append("l") or 1,
                   refactored=lambda: order.append("r") or 1, controller=c)
    for _ in range(40):
        f()
    firsts = order[::2]
    assert 5 < firsts.count("l") < 35


def test_comparator_types_must_match():
    a = bytes(range(32))
    assert not values_equal(a, np.frombuffer(a, np.uint8))  # SPEC 5: same type first
    assert values_equal(np.frombuffer(a, np.uint8), np.frombuffer(a, np.uint8).copy())
    assert not values_equal(a, np.frombuffer(a, np.uint8)[::-1].copy())
    assert not values_equal(np.zeros(4, np.uint8), np.zeros(4, np.int8))
    assert values_equal(float("nan"), float("nan"))
    assert not values_equal(0.0, -0.0)
    assert not values_equal(1, True)
    assert values_equal([b"a", 2, (3.5,)], [b"a", 2, (3.5,)])


def test_promotion_rules(tmp_path):
    clock = [1000.0]
    s = ModeState(tmp_path / "m.json", initial=Mode.SHADOW, clock=lambda: clock[0])
    with pytest.raises(ParityError, match="fewer than 10,000"):
        s.promote()
    s.record(10_000, 2)
    with pytest.raises(ParityError, match="mismatch rate 0.0200%"):
        s.promote()
    clock[0] += 301  # the window slides past those
    s.record(20_000, 1)
    assert s.promote("canary ok")["to"] == "refactored_primary"
    with pytest.raises(ParityError, match="refused"):
        ModeState(tmp_path / "m.json", clock=lambda: clock[0] + 400).promote()
    # the history survives a restart
    again = ModeState(tmp_path / "m.json")
    assert again.mode == Mode.REFACTORED_PRIMARY and again.history[-1]["reason"] == "canary ok"
    assert again.demote("rollback")["to"] == "shadow"
    assert again.demote("rollback") is None  # idempotent


def test_parse_mode():
    assert parse_mode("2") == parse_mode("refactored_primary") == Mode.REFACTORED_PRIMARY
    with pytest.raises(ParityError, match="accepted: 0 or legacy_only, 1 or shadow"):
        parse_mode("turbo", "CODEC_MODE")


def test_mode_cli(tmp_path, capsys):
    """parity mode show|promote|demote|set on a state file: refusals say why."""
    from parity.cli import main
    state = str(tmp_path / "mode.json")
    assert main(["mode", "show", "--state", state]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "shadow" and "fewer than 10,000" in shown["promotion"]
    assert main(["mode", "promote", "--state", state]) == 2
    assert "refused: the last 5 minutes hold 0 comparisons" in capsys.readouterr().err
    s = ModeState(state)
    s.record(12_000, 0)
    s.flush()
    assert main(["mode", "promote", "--state", state, "--reason", "canary green"]) == 0
    assert "promoted shadow -> refactored_primary" in capsys.readouterr().out
    assert main(["mode", "demote", "--state", state, "--reason", "manual rollback"]) == 0
    out = capsys.readouterr().out
    assert "demoted refactored_primary -> shadow" in out
    history = json.loads(out[out.index("{"):])["history"]
    assert [h["reason"] for h in history] == ["canary green", "manual rollback"]
    assert main(["mode", "set", "legacy_only", "--state", state]) == 0
    assert main(["mode", "set", "warp", "--state", state]) == 2
    assert "accepted: 0 or legacy_only" in capsys.readouterr().err


def test_serving_process_exports_batch_functions_at_zero(tmp_path):
    c = Controller(ModeState(tmp_path / "m.json", initial=Mode.REFACTORED_ONLY))
    for fn in ("header_hash", "merkle_root", "validate"):
        assert counter(c, "dual_run_comparisons_total", function=fn) == 0
        assert counter(c, "dual_run_mismatches_total", function=fn) == 0


def _served_by_legacy_within(f, seconds: float) -> bool:
    """Call ``f`` (refactored answers b"r", legacy b"l") until legacy serves, or give up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if f(b"x") == b"l":
            return True
        time.sleep(0.005)
    return False


@pytest.mark.parametrize("mode", [Mode.REFACTORED_ONLY, Mode.REFACTORED_PRIMARY])
def test_a_rollback_by_another_process_reaches_the_fast_path(tmp_path, mode):
    """Between two housekeepings a call skips the clock (the fast path); the ticker
    still makes the next call look at the state, so a rollback done elsewhere is served
    within the refresh period plus a tick, and every call is counted once."""
    c = Controller(ModeState(tmp_path / "state.db", initial=mode))
    f = experiment("f", legacy=lambda x: b"v", refactored=lambda x: b"v", controller=c)
    calls = 0
    for _ in range(3 * TIMING_SAMPLE):  # timed calls among them
        assert f(b"x") == b"v"
        calls += 1
    assert (f.experiment._one is not None) == (mode == Mode.REFACTORED_ONLY)  # the fast paths are on
    assert (f.experiment._two is not None) == (mode == Mode.REFACTORED_PRIMARY)
    ModeState(tmp_path / "state.db").demote("rolled back elsewhere")
    t0 = time.monotonic()
    while c.serving != Mode.SHADOW and time.monotonic() - t0 < 10.0:
        assert f(b"x") == b"v"  # only calls look at the state
        calls += 1
        time.sleep(0.002)
    assert c.serving == Mode.SHADOW
    assert time.monotonic() - t0 < c.state.refresh_every + 1.0  # a second and a tick
    assert f.experiment._two == Mode.SHADOW and f.experiment._one is None
    c.drain()
    served = {(m, s): counter(c, "codec_mode_requests_total", mode=m.label, served=s) or 0
              for m in Mode for s in ("legacy", "refactored")}
    assert sum(served.values()) == calls
    assert served[(mode, "refactored")] >= 3 * TIMING_SAMPLE


def test_the_fast_path_is_off_when_the_state_is_read_at_every_call(tmp_path):
    s = ModeState(tmp_path / "state.db", initial=Mode.REFACTORED_ONLY, refresh_every=0.0)
    f = experiment("f", legacy=lambda x: b"l", refactored=lambda x: b"r",
                   controller=Controller(s))
    assert f(b"x") == b"r" and f.experiment._one is None and f.experiment._two is None
    ModeState(tmp_path / "state.db").demote("rolled back elsewhere")
    assert f(b"x") == b"l"  # the very next call


def test_the_ticker_expires_the_fast_path(tmp_path):
    c = Controller(ModeState(tmp_path / "state.db", initial=Mode.LEGACY_ONLY))
    f = experiment("f", legacy=lambda x: b"l", refactored=lambda x: b"r", controller=c)
    f(b"x")
    assert f.experiment._one is not None
    c._due = 0.0  # housekeeping is due now: the ticker notices within a tick
    deadline = time.monotonic() + 5.0
    while f.experiment._one is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert f.experiment._one is None
    f(b"x")  # housekeeping, then the fast path again
    assert f.experiment._one is not None and c._due > time.monotonic()


def test_a_forked_child_still_picks_up_rollbacks(tmp_path):
    """The ticker thread does not survive fork: the child starts its own."""
    import multiprocessing
    c = Controller(ModeState(tmp_path / "state.db", initial=Mode.REFACTORED_ONLY))
    f = experiment("f", legacy=lambda x: b"l", refactored=lambda x: b"r", controller=c)
    assert f(b"x") == b"r"
    ctx = multiprocessing.get_context("fork")
    result = ctx.Queue()

    def child() -> None:
        assert f(b"x") == b"r"
        ModeState(tmp_path / "state.db").demote("rolled back from the child")
        result.put(_served_by_legacy_within(f, 10.0))
    p = ctx.Process(target=child)
    p.start()
    assert result.get(timeout=30) is True
    p.join(30)
    assert p.exitcode == 0


def test_the_ticker_survives_collections_changing_under_it(monkeypatch):
    """The weak sets and dictionaries the ticker walks change size when another thread
    adds a controller or an experiment; a walk that fails so is left to the next tick."""
    from parity import percall

    class Changing:
        def __iter__(self):
            raise RuntimeError("Set changed size during iteration")
    monkeypatch.setattr(percall, "_LIVE", Changing())
    percall._tick_once(time.monotonic())  # no exception: the ticker thread goes on


def test_experiment_hands_out_a_plain_function_over_its_experiment():
    """A plain function (an instance's Python __call__ costs as much again as the fast
    path); the object behind it stays reachable and callable."""
    import types

    from parity.percall import Experiment
    c = Controller(ModeState(None, initial=Mode.REFACTORED_ONLY))
    f = experiment("header_hash", legacy=lambda h: b"l", refactored=lambda h: b"r", controller=c)
    assert isinstance(f, types.FunctionType) and f.__name__ == "header_hash"
    assert isinstance(f.experiment, Experiment) and f.experiment.call is f
    assert f(b"x") == b"r" and f.experiment(b"x") == b"r"
    assert sum(1 for _ in range(3) if f(b"x") == b"r") == 3
