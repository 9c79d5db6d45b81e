"""The process-twin framing (twins/PROTOCOL.md): round trips, byte layout, bad frames."""
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from parity.framing import (
    DTYPES,
    SHM_ALIGN,
    SHM_FLAG,
    FrameError,
    buffer_reader,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
    place,
)
from tests.profiles import examples

ARRAYS = st.sampled_from(list(DTYPES.values())).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)))
OPS = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20)


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)


@settings(max_examples=examples(200))
@given(OPS, st.lists(ARRAYS, max_size=6))
def test_request_round_trip(op, arrays):
    data = encode_request(op, arrays)
    read = buffer_reader(data)
    got_op, got = decode_request(read)
    assert got_op == op
    _same(arrays, got)
    with pytest.raises(FrameError):  # nothing left over
        read(1)


@settings(max_examples=examples(200))
@given(st.lists(ARRAYS, max_size=6))
def test_reply_round_trip(arrays):
    reply = decode_reply(buffer_reader(encode_reply(arrays)))
    assert reply.status == 0
    _same(arrays, reply.arrays)


@given(st.text(max_size=50))
def test_error_reply_round_trip(message):
    reply = decode_reply(buffer_reader(encode_reply(error=message)))
    assert (reply.status, reply.arrays, reply.message) == (1, [], message)


def test_byte_layout_is_the_documented_one():
    a = np.array([[1, 2, 3]], dtype=np.uint32)
    assert encode_request("hi", [a]) == (
        b"PTWQ" + b"\x02\x00" + b"hi" + b"\x01\x00\x00\x00" + b"\x02\x02"
        + struct.pack("<QQ", 1, 3) + struct.pack("<3I", 1, 2, 3))
    assert encode_reply(error="no") == b"PTWR\x01\x02\x00\x00\x00no"
    big = np.array([1, -2], dtype=">i8")  # big-endian input goes out little-endian
    _same([big.astype("<i8")], decode_reply(buffer_reader(encode_reply([big]))).arrays)


@pytest.mark.parametrize("bad", [np.zeros(2, np.int32), np.zeros(2, np.float64),
                                 np.zeros(2, bool)])
def test_other_dtypes_are_refused(bad):
    with pytest.raises(TypeError, match="not one of"):
        encode_request("x", [bad])


@settings(max_examples=examples(100))
@given(st.lists(ARRAYS, min_size=1, max_size=3), st.data())
def test_every_truncation_is_a_short_frame(arrays, data):
    full = encode_reply(arrays)
    cut = data.draw(st.integers(0, len(full) - 1))
    with pytest.raises(FrameError, match="short frame"):
        decode_reply(buffer_reader(full[:cut]))


@pytest.mark.parametrize("frame, what", [
    (b"XXXX", "bad reply magic"),
    (b"PTWR\x07", "unknown reply status 7"),
    (b"PTWR\x00\x01\x00\x00\x00\x09\x01" + bytes(8), "unknown dtype code 9"),
    (b"PTWR\x00\x01\x00\x00\x00\x01\x09", "9 dimensions"),
    (b"PTWR\x00\x01\x00\x00\x00\x01\x01" + struct.pack("<Q", 1 << 40), "over the limit"),
    (b"PTWR\x00" + struct.pack("<I", 1000), "1000 arrays"),
])
def test_malformed_replies(frame, what):
    with pytest.raises(FrameError, match=what):
        decode_reply(buffer_reader(frame), max_bytes=1 << 30)


# -- the shared-memory form (PROTOCOL.md, "Shared memory") ---------------------------------

def _segment_for(arrays, placed, size):
    segment = np.zeros(size, np.uint8)
    for k, off in placed.items():
        raw = np.ascontiguousarray(arrays[k]).reshape(-1).view(np.uint8)
        segment[off:off + raw.size] = raw
    return segment


@settings(max_examples=examples(200))
@given(OPS, st.lists(ARRAYS, max_size=6), st.integers(0, 64), st.integers(0, 200))
def test_shared_memory_round_trip(op, arrays, min_array, slack):
    placed, needed = place(arrays, min_array)
    assert sorted(placed) == [k for k, a in enumerate(arrays) if a.nbytes >= min_array]
    spans = sorted((off, off + arrays[k].nbytes) for k, off in placed.items())
    for off, end in spans:
        assert off % SHM_ALIGN == 0 and end <= needed
    assert all(a_end <= b_off for (_, a_end), (b_off, _) in zip(spans, spans[1:]))
    data = encode_request(op, arrays, placed)
    # a placed array sends its offset (8 bytes) instead of its data
    assert len(data) == len(encode_request(op, arrays)) + sum(
        8 - arrays[k].nbytes for k in placed)
    read = buffer_reader(data)
    got_op, got = decode_request(read, segment=_segment_for(arrays, placed, needed + slack))
    assert got_op == op
    _same(arrays, got)
    with pytest.raises(FrameError):
        read(1)


@settings(max_examples=examples(200))
@given(st.sampled_from(list(DTYPES.values())), st.integers(1, 50), st.integers(0, 4096),
       st.integers(0, 4096))
def test_shared_memory_offsets_out_of_range_or_unaligned_are_refused(dt, n, offset, size):
    a = np.zeros(n, dt)
    data = encode_request("header_hash", [a], {0: offset})
    segment = np.zeros(size, np.uint8)
    fits = offset % SHM_ALIGN == 0 and offset + a.nbytes <= size
    if fits:
        _same([a], decode_request(buffer_reader(data), segment=segment)[1])
    else:
        with pytest.raises(FrameError, match="shared-memory"):
            decode_request(buffer_reader(data), segment=segment)
    with pytest.raises(FrameError, match="no segment is attached"):
        decode_request(buffer_reader(data))


def test_shared_memory_array_layout():
    a = np.arange(6, dtype="<u4").reshape(2, 3)
    data = encode_request("x", [a], {0: 128})
    assert data == (b"PTWQ\x01\x00x" + struct.pack("<I", 1)
                    + struct.pack("<BBQQQ", 2 | SHM_FLAG, 2, 2, 3, 128))
