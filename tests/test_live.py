"""Live validation: equal to a batch run, idempotent, durable, and the replay metrics."""
import json
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pyarrow.parquet as pq
import pytest

from kernels import constants as C
from parity.corpus import open_corpus
from parity.corpus.generate import GenerateOptions, generate, read_truth
from parity.corpus.jsonl import block_to_json
from parity.feed import feed
from parity.live import Chain, LiveValidator, install
from parity.modes import Mode
from parity.percall import Controller
from parity.server import ParityServer
from parity.shadow import ShadowOptions, ShadowRun
from parity.state import ModeState
from tests.conftest import ROOT
from tests.servers import get_json

LOCAL = ("file", "row", "replay")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("live") / "c"
    generate(path, GenerateOptions(blocks=2_000, seed=11, fault_rate=0.08, shard_size=300,
                                   rows_per_file=1_000))
    assert int(np.bitwise_or.reduce(read_truth(path))) == C.ALL_RULES
    return path


class Live:
    """An in-process ``parity serve --chain CORPUS`` on 127.0.0.1."""

    def __init__(self, corpus, state, mode=Mode.SHADOW, legacy="kernels.legacy",
                 refactored="kernels.jit"):
        m = open_corpus(corpus).manifest
        self.controller = Controller(ModeState(state, initial=mode))
        self.server = ParityServer(self.controller, "127.0.0.1", 0)
        self.live = LiveValidator(self.controller, Chain(m.now, m.difficulty_target, m.anchor),
                                  legacy, refactored)
        install(self.server, self.live)
        self.server.start()
        host, port = self.server.address
        self.url = f"http://{host}:{port}"

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, body):
        req = urllib.request.Request(self.url + "/blocks", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def post_all(self, body_lines, n=40):
        """Post in batches small enough for the 1 MiB body limit; every answer, in order."""
        out = []
        for lo in range(0, len(body_lines), n):
            out += self.post(b"".join(body_lines[lo:lo + n]))["results"]
        return out

    def metric(self, name, **labels):
        return self.controller.metrics.registry.get_sample_value(name, labels)

    def records(self):
        out, since = [], 0
        while True:
            page = self.get(f"/mismatches?since={since}")
            if not page["mismatches"]:
                return out
            out += [{k: v for k, v in m["record"].items() if k not in LOCAL}
                    for m in page["mismatches"]]
            since = page["next"]

    def stop(self):
        self.server.stop()


def shadow(corpus, tmp_path, **kw):
    result = ShadowRun(ShadowOptions(str(corpus), quiet=True, run_dir=str(tmp_path / "run"),
                                     results=str(tmp_path / "shadow.parquet"), **kw)).execute()
    records = [{k: v for k, v in r.items() if k not in LOCAL} for r in result.records]
    return result, records


def lines(corpus, lo=0, hi=None):
    blocks = [s.block(i) for s in open_corpus(corpus).shards() for i in range(len(s))]
    return [(json.dumps(block_to_json(b)) + "\n").encode() for b in blocks[lo:hi]]


@pytest.mark.slow
@pytest.mark.parametrize("batch, mode, twin", [
    (100, Mode.SHADOW, None), (7, Mode.SHADOW, None), (1, Mode.SHADOW, "flip,negzero"),
    (100, Mode.REFACTORED_PRIMARY, "odd_copy"), (7, Mode.REFACTORED_PRIMARY, None),
])
def test_feed_equals_shadow(corpus, tmp_path, monkeypatch, batch, mode, twin):
    refactored = "kernels.jit"
    if twin:
        heights = [int(open_corpus(corpus).read_headers(g)[5, 4:12].view("<u8")[0])
                   for g in open_corpus(corpus).row_groups()]
        monkeypatch.setenv("BROKEN_TWIN", twin)
        monkeypatch.setenv("BROKEN_TWIN_HEIGHTS", ",".join(map(str, heights)))
        refactored = "tests.broken_twin"
    live = Live(corpus, tmp_path / "state.db", mode, refactored=refactored)
    try:
        fed = feed(str(corpus), live.url, batch=batch, results=str(tmp_path / "live.parquet"))
        batch_result, batch_records = shadow(corpus, tmp_path, mode=mode,
                                             refactored=refactored)
        assert pq.read_table(tmp_path / "live.parquet").equals(
            pq.read_table(tmp_path / "shadow.parquet"))
        order = lambda r: (r["block"], r["function"])  # noqa: E731  (batches group by function)
        assert sorted(live.records(), key=order) == sorted(batch_records, key=order)
        assert len(batch_records) > 0 or not twin
        assert (fed.disagreed > 0) == (batch_result.exit_code == 1) == bool(twin)
        replays = int(np.count_nonzero(read_truth(corpus) & C.COMMITMENT_REPLAY))
        assert live.metric("epoch_replay_detected_total") == batch_result.report[
            "replays_served"] == replays
        if mode == Mode.REFACTORED_PRIMARY and twin:
            assert live.controller.state.recorded == Mode.SHADOW  # demoted, durably
            assert "mismatch at block" in live.controller.state.history[-1]["reason"]
    finally:
        live.stop()


def test_retry_is_idempotent_and_conflicts_are_refused(corpus, tmp_path):
    live = Live(corpus, tmp_path / "state.db")
    try:
        body = lines(corpus, 0, 5)
        first = live.post(b"".join(body))["results"]
        again = live.post(b"".join(body))["results"]
        assert [r.pop("retry") for r in again] == [True] * 5
        assert again == first
        assert live.get("/chain")["blocks"] == 5  # counted once
        comparisons = live.metric("dual_run_comparisons_total", function="validate")
        # a retry overlapping new blocks: the known prefix answered, the rest validated
        both = live.post(b"".join(lines(corpus, 3, 8)))["results"]
        assert [r.get("retry", False) for r in both] == [True, True, False, False, False]
        assert live.metric("dual_run_comparisons_total", function="validate") == comparisons + 3
        other = json.loads(lines(corpus, 2, 3)[0])
        other["header"]["nonce"] ^= 1  # different bytes at a validated height
        with pytest.raises(urllib.error.HTTPError) as e:
            live.post((json.dumps(other) + "\n").encode())
        assert e.value.code == 409
        e.value.close()
        for bad in (b"", b"{nope\n", b"\xff\xfe", b'{"header": {}}\n'):
            with pytest.raises(urllib.error.HTTPError) as e:
                live.post(bad)
            assert e.value.code == 400
            e.value.close()
        assert live.get("/chain")["blocks"] == 8
    finally:
        live.stop()


def test_restart_restores_both_twins(corpus, tmp_path):
    """Blocks acknowledged before a restart still count as earlier commitments and the
    tip is still the parent after it."""
    all_lines = lines(corpus)
    live = Live(corpus, tmp_path / "state2.db")
    try:
        truth = read_truth(corpus)
        cut = int(np.flatnonzero(truth & C.COMMITMENT_REPLAY)[-1])  # a replayed block
        live.post_all(all_lines[:cut])
        live.stop()
        live = Live(corpus, tmp_path / "state2.db")  # restart: restore from the store
        got = live.post_all(all_lines[cut:])
        assert [r["status"] for r in got] == truth[cut:].tolist()
        assert live.metric("epoch_replay_cache_size") == live.get("/chain")["replay_cache"]
    finally:
        live.stop()


@pytest.mark.parametrize("mode", [Mode.SHADOW, Mode.REFACTORED_PRIMARY])
def test_replay_bypass_counted(corpus, tmp_path, monkeypatch, mode):
    """A planted legacy twin that never sets COMMITMENT_REPLAY: every replayed block served
    without the bit while the other twin set it counts as a bypass."""
    monkeypatch.setenv("BROKEN_TWIN", "noreplay")
    live = Live(corpus, tmp_path / "state.db", mode, legacy="tests.broken_twin")
    try:
        assert live.metric("epoch_replay_bypass_successful_total") == 0
        feed(str(corpus), live.url, batch=100)
        replays = int(np.count_nonzero(read_truth(corpus) & C.COMMITMENT_REPLAY))
        assert replays > 0
        assert live.metric("epoch_replay_bypass_successful_total") == replays
        assert live.metric("epoch_replay_detected_total") == 0  # none served with the bit
    finally:
        live.stop()


@pytest.mark.parametrize("mode", [Mode.LEGACY_ONLY, Mode.REFACTORED_ONLY])
def test_no_bypass_counted_where_nothing_is_compared(corpus, tmp_path, monkeypatch, mode):
    monkeypatch.setenv("BROKEN_TWIN", "noreplay")
    live = Live(corpus, tmp_path / "state.db", mode, legacy="tests.broken_twin",
                refactored="tests.broken_twin")
    try:
        feed(str(corpus), live.url, batch=100)
        assert live.metric("epoch_replay_bypass_successful_total") == 0
    finally:
        live.stop()


def test_live_metrics_at_zero_and_per_block(corpus, tmp_path):
    live = Live(corpus, tmp_path / "state.db")
    try:
        for name in ("epoch_replay_detected_total", "epoch_replay_bypass_successful_total",
                     "epoch_replay_cache_size", "cache_persist_duration_seconds_count"):
            assert live.metric(name) == 0, name
        assert live.metric("process_resident_memory_bytes") > 0
        live.post(b"".join(lines(corpus, 0, 40)))
        assert live.metric("cache_persist_duration_seconds_count") == 1
        count = sum(live.metric("block_validation_duration_seconds_count", tier=t) or 0
                    for t in C.TIER_NAMES)
        assert count == 40
        assert live.metric("epoch_replay_cache_size") == 40 - int(np.count_nonzero(
            read_truth(corpus)[:40] & C.COMMITMENT_REPLAY))
    finally:
        live.stop()


def test_chain_parameters_are_fixed_per_store(corpus, tmp_path):
    from parity.errors import ParityError
    state = tmp_path / "state.db"
    Live(corpus, state).stop()
    controller = Controller(ModeState(state))
    with pytest.raises(ParityError, match="other parameters"):
        LiveValidator(controller, Chain(1, bytes(32), None))


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("live-big") / "c20k"
    generate(path, GenerateOptions(blocks=20_000, seed=12, fault_rate=0.03, shard_size=2_000,
                                   rows_per_file=10_000))
    assert int(np.bitwise_or.reduce(read_truth(path))) == C.ALL_RULES
    return path


@pytest.mark.slow
def test_feed_equals_shadow_20k(big, tmp_path):
    live = Live(big, tmp_path / "state.db")
    try:
        feed(str(big), live.url, batch=100, results=str(tmp_path / "live.parquet"))
        shadow(big, tmp_path)
        assert pq.read_table(tmp_path / "live.parquet").equals(
            pq.read_table(tmp_path / "shadow.parquet"))
    finally:
        live.stop()


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, corpus, state, port):
        self.args = [sys.executable, "-m", "parity", "serve", "--chain", str(corpus),
                     "--port", str(port), "--state", str(state)]
        self.url = f"http://127.0.0.1:{port}"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/chain", timeout=2) as r:
                    return json.loads(r.read())
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stderr.read().decode()) from None
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc.stderr.close()


def _blocks(url: str) -> int:
    try:
        return int(get_json(url + "/chain")["blocks"])  # type: ignore[index]
    except OSError:
        return -1


@pytest.mark.slow
def test_sigkill_ten_times_while_feeding(big, tmp_path):
    from parity.feed import Client
    server = ServerProcess(big, tmp_path / "state.db", _free_port())
    server.start()
    done, failure = threading.Event(), []

    def run_feed():
        try:  # the feed retries while the server is away; run again after a failure
            for _ in range(5):
                try:
                    feed(str(big), server.url, batch=100, results=str(tmp_path / "live.parquet"),
                         force=True, client=Client(server.url, retry_seconds=90))
                    return
                except Exception as exc:
                    failure.append(exc)
        finally:
            done.set()
    t = threading.Thread(target=run_feed)
    t.start()
    rng = random.Random(3)
    acknowledged_at_kill = []
    acknowledged = 0
    try:
        for _ in range(10):
            # kill only after the feed got on (>= 300 more blocks, or it ended): the kills
            # then land across the corpus whatever the host's speed, so replays of
            # commitments acknowledged before a kill cross it
            deadline = time.monotonic() + 120
            while not done.is_set() and _blocks(server.url) < acknowledged + 300:
                assert time.monotonic() < deadline, "the feed made no progress"
                time.sleep(0.02)
            if done.wait(rng.uniform(0.0, 0.2)):
                break
            server.kill()
            acknowledged = server.start()["blocks"]
            acknowledged_at_kill.append(acknowledged)
    finally:
        t.join(timeout=300)
        alive = server.proc.poll() is None  # never left down: restarted after every kill
        if not alive:
            server.start()
        with urllib.request.urlopen(server.url + "/chain", timeout=10) as r:
            chain = json.loads(r.read())
        server.kill()
    assert len(acknowledged_at_kill) == 10, f"the feed ended before ten kills: {failure}"
    assert done.is_set() and len(failure) < 5 and alive
    assert chain["blocks"] == 20_000  # nothing acknowledged is missing from the store
    shadow(big, tmp_path)
    assert pq.read_table(tmp_path / "live.parquet").equals(
        pq.read_table(tmp_path / "shadow.parquet"))
    # a commitment acknowledged before a kill, replayed after it, was still detected
    status = pq.read_table(tmp_path / "live.parquet").column("status").to_numpy()
    commits = np.concatenate([open_corpus(big).read_headers(g)[:, 116:148]
                              for g in open_corpus(big).row_groups()])
    first = {}
    crossing = 0
    for i, c in enumerate(map(bytes, commits)):
        if c in first and any(first[c] < k <= i for k in acknowledged_at_kill):
            assert status[i] & C.COMMITMENT_REPLAY
            crossing += 1
        first.setdefault(c, i)
    assert crossing > 0
