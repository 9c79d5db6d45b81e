"""Mismatch records in the HTML report: both values as aligned hex with the differing
bytes and bits marked, the block's decoded header, the merkle path, the replay command;
and the records beyond the first N counted by function and field."""
from __future__ import annotations

import html
import json
import struct
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from kernels.constants import HEADER_FIELDS

if TYPE_CHECKING:
    from parity.runview import CorpusBlocks

MAX_BIT_ROWS = 4  # differing bytes shown bit by bit per record
MAX_SUMMARY_ROWS = 200


def e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: Collection[int] = (),
           cls: str = "") -> str:
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


# ---- values: aligned hex with differing bytes and bits -----------------------------------

def value_bytes(r: dict, side: str) -> bytes | None:
    """A record's value as bytes: hex strings as they are, a status as its 4 little-endian
    bytes (how its ``first_byte`` counts); None for anything else."""
    v = r.get(side)
    if isinstance(v, str):
        try:
            return bytes.fromhex(v)
        except ValueError:
            return None
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 32:
        return v.to_bytes(4, "little")
    return None


def hex_diff(a: bytes, b: bytes, width: int = 16) -> str:
    """Both values in rows of ``width`` bytes, legacy above refactored, differing bytes
    marked (``class="b d"``, ``data-byte``); then each differing byte bit by bit, bit 7
    first, differing bits marked (``class="bit d"``, ``data-bit``, 0 = least significant)."""
    n = max(len(a), len(b))
    out = ['<div class="hexdiff">']
    for off in range(0, max(n, 1), width):
        for who, mine, other in (("legacy", a, b), ("refactored", b, a)):
            cells = []
            for i in range(off, min(off + width, n)):
                g = " g" if i % 4 == 3 else ""
                if i >= len(mine):
                    cells.append(f'<span class="b gap{g}" data-byte="{i}">··</span>')
                    continue
                d = " d" if i >= len(other) or mine[i] != other[i] else ""
                cells.append(f'<span class="b{d}{g}" data-byte="{i}">{mine[i]:02x}</span>')
            out.append(f'<div class="hx {who}"><span class="off">{off:04x}</span>'
                       f'<span class="who">{who}</span>{"".join(cells)}</div>')
    differing = [i for i in range(min(len(a), len(b))) if a[i] != b[i]]
    for i in differing[:MAX_BIT_ROWS]:
        x = a[i] ^ b[i]
        rows = []
        for who, v in (("legacy", a[i]), ("refactored", b[i])):
            bits = "".join(f'<span class="bit{" d" if x >> k & 1 else ""}" data-bit="{k}">'
                           f'{v >> k & 1}</span>' for k in range(7, -1, -1))
            rows.append(f'{who} <span class="bitrow {who}">{bits}</span>')
        which = ", ".join(str(k) for k in range(8) if x >> k & 1)
        out.append(f'<div class="bits" data-byte="{i}">byte {i} (bits 7..0): {"".join(rows)}'
                   f'differing bit(s) {which}</div>')
    if len(differing) > MAX_BIT_ROWS:
        out.append(f'<div class="bits">… and {len(differing) - MAX_BIT_ROWS} more differing '
                   "bytes</div>")
    out.append("</div>")
    return "".join(out)


# ---- one record --------------------------------------------------------------------------

def header_fields(raw: bytes) -> str:
    """The 276-byte header decoded (SPEC layout); floats show value and bit pattern."""
    rows = []
    for name, off, size, kind in HEADER_FIELDS:
        chunk = raw[off:off + size]
        if kind == "b32":
            value = f'<span class="mono">{chunk.hex()}</span>'
        elif kind == "f64":
            f = struct.unpack("<d", chunk)[0]
            value = f'{e(repr(f))} <span class="mono">(bits 0x{chunk[::-1].hex()})</span>'
        else:
            value = e(struct.unpack({"u32": "<I", "u64": "<Q", "i64": "<q"}[kind], chunk)[0])
        rows.append((f"{name} <small>@{off}</small>", value))
    return ('<table class="fields">' + "".join(f"<tr><td>{k}</td><td>{v}</td></tr>"
                                              for k, v in rows) + "</table>")


def merkle_path(div: dict, tx_count: int | None) -> str:
    """The diverging node and its ancestors up to the root: (level, index), leaves = 0."""
    level, index = int(div["level"]), int(div["index"])
    top = None
    if tx_count:
        sizes = [tx_count]
        while sizes[-1] > 1:
            sizes.append((sizes[-1] + 1) // 2)
        top = len(sizes) - 1
    steps = [(level, index)]
    while (top is not None and steps[-1][0] < top) or (top is None and steps[-1][1] > 0):
        lv, ix = steps[-1]
        steps.append((lv + 1, ix // 2))
    text = " → ".join(f"({lv}, {ix})" for lv, ix in steps)
    return f'<span class="mono">{text}</span> ' + ("(root)" if top is not None else "→ … root")


def _rules(r: dict) -> str:
    if not r.get("differing_rules"):
        return ""
    lo = ", ".join(r.get("legacy_only") or []) or "-"
    ro = ", ".join(r.get("refactored_only") or []) or "-"
    return (f'<p>differing rules: <b>{e(", ".join(r["differing_rules"]))}</b>; set by legacy '
            f'only: <span class="lo">{e(lo)}</span>; by refactored only: '
            f'<span class="ro">{e(ro)}</span></p>')


def render_record(k: int, r: dict, blocks: CorpusBlocks | None) -> str:
    fn, block = r.get("function", "?"), r.get("block", "?")
    title = f"#{k + 1} {fn} · block {block}"
    if "height" in r:
        title += f" · height {r['height']}"
    title += f" · {r.get('file', '?')} row {r.get('row', '?')}"
    parts = [f'<section class="rec" id="rec-{k}" data-function="{e(fn)}" data-block="{e(block)}">'
             f"<h3>{e(title)}</h3>"]
    if "kind" in r:
        parts.append(f"<p>shard failure (<b>{e(r['kind'])}</b>) over {e(r.get('blocks'))} blocks"
                     f"{': ' + e(r['detail']) if r.get('detail') else ''}</p>")
        for side in ("legacy", "refactored"):
            if r.get(side) is not None:
                parts.append(f'<p>{side}: <code>{e(json.dumps(r[side]))}</code></p>')
    else:
        a, b = value_bytes(r, "legacy"), value_bytes(r, "refactored")
        if a is not None and b is not None:
            parts.append(hex_diff(a, b))
        else:
            parts.append(f"<p>legacy <code>{e(json.dumps(r.get('legacy')))}</code>, refactored "
                         f"<code>{e(json.dumps(r.get('refactored')))}</code></p>")
        if r.get("first_byte") is not None:
            bits = r.get("differing_bits")
            parts.append(f"<p>first differing byte <b>{r['first_byte']}</b>, bit "
                         f"<b>{r.get('first_bit')}</b> (0 = least significant); "
                         f"{'-' if bits is None else bits} differing bit(s)"
                         + (f"; lengths {e(r['length'])}" if r.get("length") else "") + "</p>")
        parts.append(_rules(r))
        if r.get("divergence"):
            count = blocks.tx_count(int(block)) if blocks is not None else None
            parts.append(f"<p>merkle: first diverging node (level, index), leaves = level 0, "
                         f"up to the root: {merkle_path(r['divergence'], count)}</p>")
    if r.get("replay"):
        parts.append(f"<p>replay: <code>{e(r['replay'])}</code></p>")
    if r.get("reproducer"):
        parts.append(f"<p>reproducer: <code>{e(r['reproducer'])}</code></p>")
    raw = blocks.header(int(block)) if blocks is not None and isinstance(block, int) else None
    if raw is not None:
        parts.append(f"<details{' open' if k == 0 else ''}><summary>block {e(block)} header "
                     f"fields</summary>{header_fields(raw)}</details>")
    parts.append("</section>")
    return "".join(parts)


# ---- records beyond N --------------------------------------------------------------------

def record_fields(r: dict) -> list[str]:
    """What a record localizes its difference to, for the summary beyond N."""
    if "kind" in r:
        return [f"shard {r['kind']}"]
    if r.get("differing_rules"):
        return [f"rule {x}" for x in r["differing_rules"]]
    if r.get("divergence"):
        return [f"tree level {r['divergence'].get('level')}"]
    if r.get("first_byte") is not None:
        return [f"byte {r['first_byte']}"]
    return ["-"]


def summarize(records: Sequence[dict]) -> str:
    """Records counted by function and field, with the first and last block of each."""
    groups: dict[tuple[str, str], list[int]] = {}
    for r in records:
        for f in record_fields(r):
            g = groups.setdefault((str(r.get("function")), f), [0, r.get("block", 0), 0])
            g[0] += 1
            g[2] = r.get("block", 0)
    ranked = sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[1][0], kv[0][1]))
    rows = [(e(fn), e(f), f"{c:,}", f"{first:,}–{last:,}")
            for (fn, f), (c, first, last) in ranked[:MAX_SUMMARY_ROWS]]
    more = (f"<p>… and {len(ranked) - MAX_SUMMARY_ROWS} more groups</p>"
            if len(ranked) > MAX_SUMMARY_ROWS else "")
    return table(("function", "field", "records", "blocks"), rows, {2}) + more
