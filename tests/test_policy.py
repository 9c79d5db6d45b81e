"""SPEC section 5 as a table, walked through parity.policy, and every engine asks it."""
import numpy as np
import pytest

from parity import policy
from parity.modes import Mode

L, R = "legacy", "refactored"
# mode, outcome -> (legacy runs, served, demoted, compared); outcomes:
#   match, mismatch, refactored raised, legacy raised (refactored fine), both raised alike
TABLE = {
    (0, "match"): (True, L, False, False),
    (0, "mismatch"): (True, L, False, False),
    (0, "refactored_raised"): (True, L, False, False),
    (0, "legacy_raised"): (True, L, False, False),
    (0, "both_raised"): (True, L, False, False),
    (1, "match"): (True, L, False, True),
    (1, "mismatch"): (True, L, False, True),
    (1, "refactored_raised"): (True, L, False, True),
    (1, "legacy_raised"): (True, L, False, True),
    (1, "both_raised"): (True, L, False, True),
    (2, "match"): (True, R, False, True),
    (2, "mismatch"): (True, L, True, True),
    (2, "refactored_raised"): (True, L, True, True),
    (2, "legacy_raised"): (True, L, True, True),
    (2, "both_raised"): (True, R, False, True),
    (3, "match"): (False, R, False, False),
    (3, "mismatch"): (False, R, False, False),
    (3, "refactored_raised"): (False, R, False, False),
    (3, "legacy_raised"): (False, R, False, False),
    (3, "both_raised"): (False, R, False, False),
}
MATCHED = {"match": True, "mismatch": False, "refactored_raised": False,
           "legacy_raised": False, "both_raised": True}
R_FAILED = {"refactored_raised", "both_raised"}


@pytest.mark.parametrize("mode, outcome", sorted(TABLE))
def test_every_mode_and_outcome(mode, outcome):
    mode = Mode(mode)
    legacy_runs, served, demoted, compared = TABLE[(mode.value, outcome)]
    p = policy.plan(mode, sampled=True)
    assert p.legacy == legacy_runs and p.refactored == (mode != Mode.LEGACY_ONLY)
    assert p.compares == compared
    d = policy.decide(mode, p.compares, MATCHED[outcome], outcome in R_FAILED)
    assert (d.served, d.demote) == (served, demoted)


def test_mode2_sample_and_fallback():
    p = policy.plan(Mode.REFACTORED_PRIMARY, sampled=False)
    assert not p.legacy and p.refactored and not p.compares
    assert policy.fallback(Mode.REFACTORED_PRIMARY, refactored_failed=True, legacy_ran=False)
    assert not policy.fallback(Mode.REFACTORED_PRIMARY, True, legacy_ran=True)
    assert not policy.fallback(Mode.REFACTORED_ONLY, True, False)
    assert not policy.fallback(Mode.SHADOW, True, True)
    # unsampled and fine: refactored served, nothing compared, no demotion
    assert policy.decide(Mode.REFACTORED_PRIMARY, False, True, False) == \
        policy.Decision(R, False)


@pytest.mark.parametrize("mode", list(Mode))
def test_rollback_applies(mode):
    assert policy.rollback_applies(mode) == (mode in (Mode.REFACTORED_PRIMARY,
                                                      Mode.REFACTORED_ONLY))


class Spy:
    def __init__(self, monkeypatch):
        self.calls = {"plan": 0, "decide": 0}
        for name in self.calls:
            real = getattr(policy, name)
            monkeypatch.setattr(policy, name, self._wrap(name, real))

    def _wrap(self, name, real):
        def spy(*a, **k):
            self.calls[name] += 1
            return real(*a, **k)
        return spy


def test_per_call_asks_the_policy(monkeypatch):
    from parity import experiment
    from parity.percall import Controller
    from parity.state import ModeState
    spy = Spy(monkeypatch)
    f = experiment("f", legacy=lambda: 1, refactored=lambda: 1,
                   controller=Controller(ModeState(None, initial=Mode.REFACTORED_PRIMARY)))
    assert f() == 1
    assert spy.calls == {"plan": 1, "decide": 1}


def test_shard_step_asks_the_policy(monkeypatch, tmp_path):
    from parity.shadow import ShadowOptions, ShadowRun
    from tests.conftest import ROOT
    spy = Spy(monkeypatch)
    run = ShadowRun(ShadowOptions(str(ROOT / "corpora" / "sample-faults"), quiet=True,
                                  mode=Mode.REFACTORED_PRIMARY, functions=("header_hash",),
                                  run_dir=str(tmp_path / "run")))
    result = run.execute()
    shards = len(run.corpus.row_groups())
    assert result.exit_code == 0 and spy.calls["plan"] >= shards
    assert spy.calls["decide"] >= shards


def test_policy_decides_what_the_shard_step_serves(monkeypatch, tmp_path):
    """A policy that serves legacy for matching rows in mode 2 changes what the engine
    serves: the engine does not re-decide."""
    from parity.shadow import ShadowOptions, ShadowRun
    from tests.conftest import ROOT
    served = []
    real = policy.decide

    def legacy_always(mode, compared, matched, failed):
        d = real(mode, compared, matched, failed)
        served.append(d.served)
        return policy.Decision("legacy", d.demote)
    monkeypatch.setattr(policy, "decide", legacy_always)
    run = ShadowRun(ShadowOptions(str(ROOT / "corpora" / "sample-faults"), quiet=True,
                                  mode=Mode.REFACTORED_PRIMARY, functions=("header_hash",),
                                  run_dir=str(tmp_path / "run")))
    run.execute()
    assert R in served
    assert np.asarray(run.metrics.registry.get_sample_value(
        "codec_mode_requests_total", {"mode": "refactored_primary", "served": "refactored"})) == 0
