"""The SQLite mode state: concurrent changes, rollbacks decided against the mode in force,
durability errors, the promotion window across processes, the one-time JSON import."""
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from parity.cli import main
from parity.errors import ParityError, StateError
from parity.modes import Mode
from parity.percall import Controller
from parity.policy import PROMOTION_MIN_COMPARISONS
from parity.server import ParityServer
from parity.state import ModeState
from tests.conftest import ROOT

WORKER = r"""
import json, random, sys
from parity.errors import ParityError, StateError
from parity.modes import Mode
from parity.state import ModeState
path, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
s = ModeState(path)
s.record(20_000, 0)
s.flush()
done = []
for i in range(n):
    action = rng.choice(["promote", "demote", "set"])
    try:
        if action == "promote":
            e = s.promote(f"w{seed} promote {i}")
        elif action == "demote":
            e = s.demote(f"w{seed} rollback {i}")
        else:
            e = s.set_mode(Mode(rng.randrange(4)) if rng.random() < 0.5 else Mode.SHADOW,
                           f"w{seed} set {i}")
    except ParityError:
        e = None
    if e is not None:
        done.append(e["id"])
print(json.dumps(done))
"""


def post(address, payload):
    host, port = address
    req = urllib.request.Request(f"http://{host}:{port}/alertmanager",
                                 data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


ROLLBACK = {"alerts": [{"status": "firing", "labels": {"alertname": "ParityMismatch",
                                                      "severity": "P0", "action": "rollback"}}]}


@pytest.mark.slow
def test_concurrent_changes_none_lost(tmp_path):
    path = tmp_path / "state.db"
    ModeState(path, initial=Mode.SHADOW).close()
    server = ParityServer(Controller(ModeState(path)), "127.0.0.1", 0).start()
    webhook_changes = []
    stop = threading.Event()

    def rollbacks():
        while not stop.is_set():
            if post(server.address, ROLLBACK)["demoted"]:
                webhook_changes.append(1)
            time.sleep(0.01)
    t = threading.Thread(target=rollbacks)
    t.start()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(k), "200"],
                              stdout=subprocess.PIPE, cwd=ROOT) for k in range(8)]
    reported = []
    readable = 0
    while any(p.poll() is None for p in procs):  # readable all along, from another process
        readable += len(ModeState(path).history) >= 0
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        reported += json.loads(out)
    stop.set()
    t.join()
    server.stop()
    history = ModeState(path).history
    ids = [h["id"] for h in history]
    assert len(ids) == len(set(ids))
    assert sorted(reported) == sorted(h["id"] for h in history if h["process"] != server.
                                      controller.state.process)
    assert len(history) == len(reported) + len(webhook_changes)
    assert ModeState(path).mode.label == history[-1]["to"]
    for before, after in zip(history, history[1:]):  # an unbroken chain of changes
        assert before["to"] == after["from"]
    assert readable > 0 and len(reported) > 100


def test_rollback_right_after_another_process_promotes(tmp_path):
    path = tmp_path / "state.db"
    server_state = ModeState(path, initial=Mode.SHADOW)
    server = ParityServer(Controller(server_state), "127.0.0.1", 0).start()
    try:
        other = ModeState(path)
        other.record(PROMOTION_MIN_COMPARISONS, 0)
        other.promote("canary green")  # the server's cached mode is still shadow
        time.sleep(0.01)
        assert post(server.address, ROLLBACK)["demoted"] is True
        assert ModeState(path).mode == Mode.SHADOW
        assert [h["to"] for h in ModeState(path).history] == ["refactored_primary", "shadow"]
    finally:
        server.stop()


def test_read_only_state_directory(tmp_path, readonly):
    d = tmp_path / "state"
    d.mkdir()
    path = d / "state.db"
    ModeState(path, initial=Mode.REFACTORED_PRIMARY).close()
    with readonly(d):
        s = ModeState(path)
        c = Controller(s)
        assert s.recorded == Mode.REFACTORED_PRIMARY and s.degraded
        assert c.mode == Mode.SHADOW  # serves legacy while nothing can be recorded
        with pytest.raises(StateError, match="cannot demote"):
            s.demote("rollback")
        server = ParityServer(c, "127.0.0.1", 0).start()
        try:
            with pytest.raises(urllib.error.HTTPError) as e:  # Alertmanager will retry
                post(server.address, ROLLBACK)
            assert e.value.code == 503
            e.value.close()
        finally:
            server.stop()
        r = subprocess.run([sys.executable, "-m", "parity", "mode", "demote", "--state",
                            str(path)], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 1, r.stderr
        assert r.stderr.startswith("parity: error: ") and "Traceback" not in r.stderr
        assert "cannot demote" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert list(d.iterdir()) == [path]
        s._db.close()  # let the mount go; the next change reopens the store
        s._rw = False
    assert s.demote("rollback, retried")["to"] == "shadow"  # writable again: recorded
    assert s.degraded is None and ModeState(path).mode == Mode.SHADOW


def test_unopenable_state_serves_legacy_with_fallback(tmp_path):
    bad = tmp_path / "file"
    bad.write_text("x")
    with pytest.raises(StateError):
        ModeState(bad / "state.db")
    s = ModeState(bad / "state.db", initial=Mode.REFACTORED_ONLY, fallback=True)
    assert s.mode == Mode.SHADOW and s.degraded
    with pytest.raises(StateError):
        s.demote("rollback")


def test_corrupted_state_never_reaches_the_caller(tmp_path):
    import kernels.legacy as legacy
    from parity import experiment
    path = tmp_path / "state.db"
    s = ModeState(path, initial=Mode.REFACTORED_ONLY, refresh_every=0.0)
    c = Controller(s)
    f = experiment("h", legacy=legacy.hash_header, refactored=lambda h: b"wrong", controller=c)
    assert f(bytes(276)) == b"wrong"  # mode 3 serves refactored
    for name in ("state.db-wal", "state.db-shm", "state.db"):
        p = tmp_path / name
        if p.exists():
            p.write_bytes(b"garbage" * 1000)
    for _ in range(3):
        assert f(bytes(276)) == legacy.hash_header(bytes(276))  # legacy while untrusted


def test_future_rows_do_not_count(tmp_path):
    path = tmp_path / "state.db"
    clock = [1_000_000.0]
    s = ModeState(path, initial=Mode.SHADOW, clock=lambda: clock[0])
    future = ModeState(path, clock=lambda: clock[0] + 10_000)
    future.record(50_000, 0)
    future.flush()
    assert s.window() == (0, 0)
    with pytest.raises(ParityError, match="fewer than 10,000"):
        s.promote()


def test_window_sums_processes(tmp_path):
    path = tmp_path / "state.db"
    a, b = ModeState(path, initial=Mode.SHADOW), ModeState(path)
    a.record(6_000, 0)
    b.record(6_000, 1)
    a.flush()
    b.flush()
    assert a.window() == (12_000, 1)
    assert a.promote("two processes")["to"] == "refactored_primary"


def test_json_mode_file_imported_once(tmp_path):
    old = tmp_path / "mode.json"
    old.write_text(json.dumps({"mode": 2, "history": [
        {"time": 1.0, "from": "shadow", "to": "refactored_primary", "reason": "old canary"}]}))
    s = ModeState(tmp_path / "state.db")
    assert s.mode == Mode.REFACTORED_PRIMARY and s.history[0]["reason"] == "old canary"
    s.demote("rollback")
    old.write_text(json.dumps({"mode": 3, "history": []}))  # never read again
    again = ModeState(tmp_path / "state.db")
    assert again.mode == Mode.SHADOW and len(again.history) == 2


def test_bad_json_mode_file_is_a_clear_error(tmp_path):
    (tmp_path / "mode.json").write_text("[[[[")
    with pytest.raises(ParityError, match="mode.json: unreadable mode state to import"):
        ModeState(tmp_path / "state.db")


def test_not_a_database(tmp_path, capsys):
    p = tmp_path / "state.db"
    p.write_bytes(b"this is not sqlite" * 100)
    assert main(["mode", "show", "--state", str(p)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("parity: error: ") and "state.db" in err


def test_every_change_in_one_transaction(tmp_path):
    path = tmp_path / "state.db"
    s = ModeState(path, initial=Mode.REFACTORED_ONLY)
    lock = sqlite3.connect(path, timeout=0.1)
    lock.execute("BEGIN IMMEDIATE")  # another writer holds the database
    s._db.execute("PRAGMA busy_timeout = 100")
    with pytest.raises(StateError):
        s.demote("while locked")
    lock.execute("ROLLBACK")
    lock.close()
    assert ModeState(path).mode == Mode.REFACTORED_ONLY and ModeState(path).history == []


def test_short_script_comparisons_survive_exit(tmp_path):
    path = tmp_path / "state.db"
    script = ("import parity\n"
              "f = parity.experiment('f', legacy=lambda x: x, refactored=lambda x: x)\n"
              "for i in range(5):\n    f(i)\n")
    env = {**os.environ, "PARITY_STATE": str(path), "CODEC_MODE": "shadow"}
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, env=env)
    assert ModeState(path).window() == (5, 0)
