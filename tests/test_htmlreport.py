"""The self-contained HTML report: hex diffs, output safety, ``parity report RUN_DIR``,
a large run rendered fast, and the page of a run with planted bugs opened in headless
Chromium (no console errors, the flipped bit highlighted, a screenshot written)."""
import os
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import kernels.legacy as legacy
from parity.cli import main
from parity.corpus import open_corpus
from parity.errors import ParityError
from parity.htmlrecords import hex_diff, merkle_path
from parity.htmlreport import html_output, render_page
from parity.modes import Mode
from parity.outputs import write_marker
from parity.runview import SUMMARY_FILE, load_run
from parity.summary import RunSummary
from tests import broken_twin

ROOT = Path(__file__).resolve().parent.parent
FAULTS = ROOT / "corpora" / "sample-faults"
FLIPPED = [3, 201, 640]  # block positions whose header hash the broken twin flips


class Dom(HTMLParser):
    """Per mismatch record (``section.rec``): the marked bytes of each hex row and the
    marked bits; plus every script, external reference and console-relevant tag."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[tuple[str, str], dict] = {}
        self.current: dict | None = None
        self.row: str | None = None
        self.external: list[str] = []
        self.scripts = 0
        self.generator = None
        self._text: list | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href", "xlink:href"):
            v = a.get(key) or ""
            if v and not v.startswith(("#", "data:")):
                self.external.append(v)
        if tag == "meta" and a.get("name") == "generator":
            self.generator = a.get("content")
        if tag == "section" and "rec" in cls:
            self.current = {"rows": {}, "bits": [], "text": {}}
            self.records[(a["data-function"], a["data-block"])] = self.current
        if self.current is None:
            return
        if tag == "div" and "hx" in cls:
            self.row = "legacy" if "legacy" in cls else "refactored"
        if tag == "span" and "b" in cls and self.row:
            if "d" in cls:
                self.current["rows"].setdefault(self.row, []).append(int(a["data-byte"]))
                self._text = [self.row, int(a["data-byte"])]
        if tag == "span" and "bit" in cls and "d" in cls:
            self.current["bits"].append(int(a["data-bit"]))

    def handle_data(self, data):
        if self._text is not None and self.current is not None:
            self.current["text"][tuple(self._text)] = data
            self._text = None

    def handle_endtag(self, tag):
        if tag == "section":
            self.current = None
        if tag == "div":
            self.row = None


def parse(text: str) -> Dom:
    d = Dom()
    d.feed(text)
    return d


# ---- pieces ------------------------------------------------------------------------------

def test_hex_diff_marks_bytes_and_bits():
    a = bytes(range(32))
    b = bytearray(a)
    b[7] ^= 0x10
    b[30] ^= 0x81
    d = parse(f'<section class="rec" data-function="f" data-block="1">{hex_diff(a, bytes(b))}'
              "</section>").records[("f", "1")]
    assert d["rows"] == {"legacy": [7, 30], "refactored": [7, 30]}
    assert sorted(d["bits"]) == [0, 0, 4, 4, 7, 7]  # each side's row of the differing bits
    assert d["text"][("legacy", 7)] == "07" and d["text"][("refactored", 7)] == "17"


def test_hex_diff_of_unequal_lengths():
    d = parse(f'<section class="rec" data-function="f" data-block="1">'
              f'{hex_diff(b"abc", b"ab")}</section>').records[("f", "1")]
    assert d["rows"] == {"legacy": [2]}


def test_merkle_path_to_the_root():
    assert "(0, 5) → (1, 2) → (2, 1) → (3, 0)" in merkle_path({"level": 0, "index": 5}, 7)
    assert "(root)" in merkle_path({"level": 0, "index": 5}, 7)
    assert "→ … root" in merkle_path({"level": 1, "index": 3}, None)


def test_html_output_refuses_foreign_files(tmp_path):
    foreign = tmp_path / "notes.html"
    foreign.write_text("<html><head><title>mine</title></head></html>")
    for force in (False, True):
        with pytest.raises(ParityError, match="not written by parity"):
            html_output(foreign).check(force)
    ours = tmp_path / "ours.html"
    ours.write_text('<!DOCTYPE html><html><head><meta name="generator" content="parity-report">')
    with pytest.raises(ParityError, match="--force"):
        html_output(ours).check(False)
    assert html_output(ours).check(True) is True


def test_report_refuses_what_is_not_a_run_dir(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("x")
    marked = tmp_path / "marked"
    marked.mkdir()
    write_marker(marked, "run")
    corpus_marked = tmp_path / "corpus"
    corpus_marked.mkdir()
    write_marker(corpus_marked, "corpus")
    for d in ("plain", "missing", "marked", "corpus"):
        assert main(["report", str(tmp_path / d), "--html", str(tmp_path / "r.html")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("parity: error:") and err.count("\n") == 1, err
    assert not (tmp_path / "r.html").exists()


def synthetic(blocks: int, shards: int, n_records: int) -> tuple[RunSummary, list[dict], dict]:
    """A summary of a run over ``blocks`` blocks in ``shards`` shards and its records."""
    rng = np.random.default_rng(7)
    fns = ("header_hash", "merkle_root", "validate", "commitment")
    s = RunSummary("/data/corpus-1m", blocks, fns, {"legacy": "kernels.legacy",
                                                    "refactored": "kernels.jit"}, Mode.SHADOW)
    for fn in fns:
        st = s.stats[fn]
        st.comparisons, st.mismatches = blocks, n_records // 4
        st.pairs = [[float(x), float(y)] for x, y in
                    zip(rng.uniform(0.5, 1.0, shards), rng.uniform(0.02, 0.06, shards))]
        st.legacy_seconds = sum(p[0] for p in st.pairs)
        st.refactored_seconds = sum(p[1] for p in st.pairs)
    s.blocks_done, s.served_valid, s.served_invalid = blocks, blocks - 5000, 5000
    s.rule_counts = [int(x) for x in rng.integers(0, 900, len(s.rule_counts))]
    records = []
    for k, block in enumerate(sorted(rng.choice(blocks, n_records, replace=False).tolist())):
        fn = fns[k % 4]
        a = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
        b = bytearray(a)
        b[k % 32] ^= 1 << (k % 8)
        r = {"function": fn, "block": block, "height": block + 1, "file": "blocks-00000.parquet",
             "row": block, "legacy": a.hex(), "refactored": bytes(b).hex(),
             "first_byte": k % 32, "first_bit": k % 8, "differing_bits": 1,
             "replay": f"parity replay /data/corpus-1m --block {block} --functions {fn}"}
        if fn == "validate":
            r.update(legacy=0, refactored=1 << (k % 20), differing_rules=["TX_ROOT_MISMATCH"],
                     legacy_only=[], refactored_only=["TX_ROOT_MISMATCH"])
        if fn == "merkle_root":
            r["divergence"] = {"level": k % 3, "index": k % 7}
        records.append(r)
    from parity.report import build_report
    return s, records, build_report(s, records, wall=60.0, log_path="/data/run/mismatches.jsonl")


def test_large_run_renders_fast_and_small():
    """A 1,000,000-block run (100 shards) with 10,000 mismatch records (synthetic)."""
    summary, records, report = synthetic(1_000_000, 100, 10_000)
    t0 = time.perf_counter()
    page = render_page(report, summary, records)
    seconds = time.perf_counter() - t0
    size = len(page.encode())
    print(f"1M blocks, 10k records: {seconds:.2f} s, {size / 2**20:.2f} MiB")
    assert seconds < 10 and size < 3 * 2**20
    dom = parse(page)
    assert len(dom.records) == 50 and dom.scripts == 0 and not dom.external
    assert "The other 9,950 record(s), by function and field" in page
    assert "0.99750000" in page  # match rate with 8 decimals


# ---- real runs ---------------------------------------------------------------------------

def planted(monkeypatch, flavours: str = "flip,negzero") -> list[int]:
    blocks = [b for s in open_corpus(FAULTS).shards() for b in (s.block(i) for i in range(len(s)))]
    heights = [legacy.decode_header(blocks[i].header)["height"] for i in FLIPPED]
    monkeypatch.setenv("BROKEN_TWIN", flavours)
    monkeypatch.setenv("BROKEN_TWIN_HEIGHTS", ",".join(map(str, heights)))
    return [legacy.hash_header(blocks[i].header) for i in FLIPPED]


@pytest.mark.slow
def test_report_from_run_dir_after_a_cut_and_resume(tmp_path, monkeypatch, capsys):
    from parity.shadow import ShadowOptions, ShadowRun
    planted(monkeypatch)
    opts = ShadowOptions(corpus=str(FAULTS), run_dir=str(tmp_path / "run"), quiet=True,
                         functions=("header_hash", "validate"))

    class Cut(Exception):
        pass

    def cut(run):
        if run.blocks_done >= 400:
            raise Cut
    with pytest.raises(Cut):
        ShadowRun(opts, refactored=broken_twin).execute(on_shard=cut)
    assert not (tmp_path / "run" / SUMMARY_FILE).exists()
    partial = load_run(tmp_path / "run")
    assert not partial.complete and partial.summary.blocks_done == 400
    assert main(["report", str(tmp_path / "run"), "--html", str(tmp_path / "p.html")]) == 0
    assert "incomplete run: 400 of 800 blocks" in (tmp_path / "p.html").read_text()
    opts.resume = True
    ShadowRun(opts, refactored=broken_twin).execute()
    done = load_run(tmp_path / "run")
    assert done.complete and done.summary.blocks_done == 800
    assert [r["block"] for r in done.records if r["function"] == "header_hash"] == FLIPPED
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "run"), "--html", str(out)]) == 0
    assert main(["report", str(tmp_path / "run"), "--html", str(out)]) == 2  # no --force
    assert main(["report", str(tmp_path / "run"), "--html", str(out), "--force"]) == 0
    page = out.read_text()
    assert "incomplete" not in page and set(parse(page).records) >= {
        ("header_hash", str(b)) for b in FLIPPED}
    # a later --force run takes the directory back, summary.json included
    opts.resume, opts.force = False, True
    ShadowRun(opts, refactored=broken_twin).execute()


@pytest.mark.slow
def test_dask_run_leaves_a_summary(tmp_path, monkeypatch):
    from parity.distributed import DaskShadow
    from parity.shadow import ShadowOptions
    opts = ShadowOptions(corpus=str(FAULTS), run_dir=str(tmp_path / "run"), quiet=True,
                         functions=("header_hash", "validate"))
    result = DaskShadow(opts, workers=1).execute()
    run = load_run(tmp_path / "run")
    assert run.complete and run.saved["engine"]["name"] == "dask"
    assert run.report()["functions"]["validate"]["comparisons"] == \
        result.report["functions"]["validate"]["comparisons"] == 800
    assert main(["report", str(tmp_path / "run"), "--html", str(tmp_path / "r.html")]) == 0


# ---- in a real browser -------------------------------------------------------------------

def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:  # never a skip: CI must run this
        pytest.fail("chromium is not installed: `make setup` installs Debian's chromium")
    return path


def browse(page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    """Headless Chromium on a local file: no network, a throwaway profile; console
    messages go to stderr (``--enable-logging=stderr``)."""
    argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp / 'profile'}",
            "--enable-logging=stderr", "--v=0", *extra, page.resolve().as_uri()]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180)


def console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_console_errors_are_seen(tmp_path):
    """The check below is not vacuous: a script error and a blocked load are caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head><meta http-equiv='Content-Security-Policy' "
                   "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
                   "<img src='http://192.0.2.1/x.png'><script>throw new Error('planted')"
                   "</script></body></html>")
    errors = console(browse(bad, tmp_path, "--dump-dom").stderr)
    assert any("Uncaught Error: planted" in e for e in errors), errors
    assert any("Content Security Policy" in e for e in errors), errors


@pytest.mark.slow
def test_report_in_chromium(tmp_path, monkeypatch, capsys):
    expected = planted(monkeypatch, "flip,odd_copy,negzero")
    out, run_dir = tmp_path / "report.html", tmp_path / "run"
    code = main(["shadow", str(FAULTS), "--refactored", str(ROOT / "tests" / "broken_twin.py"),
                 "--run-dir", str(run_dir), "--html", str(out), "--html-records", "20",
                 "--quiet"])
    assert code == 1 and "HTML report:" in capsys.readouterr().out
    rebuilt = tmp_path / "rebuilt.html"
    assert main(["report", str(run_dir), "--html", str(rebuilt), "--html-records", "20"]) == 0
    assert parse(rebuilt.read_text()).records.keys() == parse(out.read_text()).records.keys()

    done = browse(out, tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console(done.stderr) == []
    dom = parse(done.stdout)
    assert dom.generator == "parity-report" and dom.scripts == 0 and dom.external == []
    for block, hashed in zip(FLIPPED[:1], expected):  # the first is within the 20 shown
        rec = dom.records[("header_hash", str(block))]
        assert rec["rows"] == {"legacy": [7], "refactored": [7]}  # byte 7 and only byte 7
        assert sorted(rec["bits"]) == [4, 4]  # bit 4 (0 = least significant), in both rows
        assert rec["text"][("legacy", 7)] == f"{hashed[7]:02x}"
        assert rec["text"][("refactored", 7)] == f"{hashed[7] ^ 0x10:02x}"

    shot = tmp_path / "report.png"
    done = browse(out, tmp_path, f"--screenshot={shot}", "--window-size=1280,2200")
    assert done.returncode == 0 and console(done.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    keep = os.environ.get("PARITY_REPORT_SCREENSHOT")  # the README's picture, same path
    if keep:
        from PIL import Image
        Image.open(shot).convert("RGB").quantize(colors=64).save(keep, optimize=True)
