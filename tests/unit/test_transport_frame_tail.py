"""``transport.frame_tail`` follows a WebSocket frame parser through any cut of the byte
stream: after every read it says exactly where the parser stands (at a boundary, inside
a header with its bytes so far, or how much of a frame is still owed). The transport's
text-frame fast path takes frames only at a boundary, so a wrong answer here would let
it read a frame out of another frame's payload (issue 18)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hitl_desktop.host.transport import frame_tail
from tests.support.budget import examples

_frame_specs = st.lists(
    st.tuples(st.integers(0, 70_000), st.booleans(), st.sampled_from(["min", "16", "64"]),
              st.integers(0, 255)),
    min_size=1, max_size=12)


def _build(specs: list[tuple[int, bool, str, int]]) -> tuple[bytes, list[tuple[int, int, int]]]:
    """The stream, and each frame's (start, header size, end)."""
    out = bytearray()
    frames = []
    for size, masked, wanted, first in specs:
        n = min(size, 65_535) if wanted == "16" else size
        form = wanted
        if form == "min" and n >= 126:
            form = "16" if n < 65_536 else "64"
        bit = 0x80 if masked else 0
        start = len(out)
        out.append(first)  # any first byte: opcode and flags do not change the length
        if form == "min":
            out.append(bit | n)
        elif form == "16":
            out.append(bit | 126)
            out += n.to_bytes(2, "big")
        else:
            out.append(bit | 127)
            out += n.to_bytes(8, "big")
        if masked:
            out += b"\x81\x82\x83\x84"  # a key that looks like frame starts
        head = len(out) - start
        out += bytes([0x81]) * n  # a payload that looks like text frame starts
        frames.append((start, head, len(out)))
    return bytes(out), frames


def _where(stream: bytes, frames: list[tuple[int, int, int]], p: int) -> tuple[int, bytes]:
    for start, head, end in frames:
        if start <= p < end:
            if p == start:
                return 0, b""
            if p < start + head:
                return 0, stream[start:p]
            return end - p, b""
    return 0, b""


@settings(max_examples=examples(400, quick=60), deadline=None)
@given(specs=_frame_specs, cuts=st.lists(st.integers(0, 1 << 20), max_size=30),
       small=st.lists(st.integers(1, 16), max_size=30))
def test_frame_tail_knows_where_the_parser_stands_after_any_read(
        specs: list[tuple[int, bool, str, int]], cuts: list[int], small: list[int]) -> None:
    stream, frames = _build(specs)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    # plus reads a few bytes long (headers split byte by byte)
    pos = 0
    for step in small:
        pos += step
        if pos <= len(stream):
            points.append(pos)
    points = sorted(set(points) | {len(stream)})
    left, head = 0, b""
    done = 0
    for p in points:
        left, head = frame_tail(left, head, stream[done:p])
        done = p
        assert (left, head) == _where(stream, frames, p), p
