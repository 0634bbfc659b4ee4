"""Compact blobs: a chunk of raw results, and the 24 hourly rollups of one day.

Format 3 (written since issue 28) lays each column out as byte planes (every value's
lowest byte, then every value's next byte, ...) and deflates the lot without a zlib
header: the high planes of response times are nearly constant and the low ones are
what varies, so deflate's Huffman stage codes each close to its real entropy. Times go
in as their jitter around the previous result's interval (nearly always 0-1 s), weights
as changes (nearly always none). A check every 15 s with a jittery response time costs
about 530 bytes an hour (format 2, still read, cost about 750) and its hourly rollups about
80 bytes a day (format 2: 210); bench/bench_history.py measures the whole store.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Iterable

from probe.engine.history.model import Chunk, Rollup

_VERSION = 3
_OLD = 2  # the previous release's blobs: read, never written
_HEAD = struct.Struct("<BIHI")  # version, count, first time (100 ms), first weight (ms)
_ROLLUP = struct.Struct("<B5I2I")  # format 2: hour of the day, counts and times, p50, p95
_LITTLE = sys.byteorder == "little"
_HOURS = 24


def _zigzag(value: int) -> int:
    return value << 1 if value >= 0 else (-value << 1) - 1


def _unzigzag(value: int) -> int:
    return value >> 1 if not value & 1 else -((value + 1) >> 1)


def _planes(values: Iterable[int]) -> list[bytes]:
    """Unsigned values as byte planes, lowest first, the first after a byte giving how
    many: each is deflated as a block of its own (see `_deflate`)."""
    column = array("Q", values)
    top = max(column, default=0)
    width = (top.bit_length() + 7) // 8  # 0 for a column of zeros: nothing but the 0
    if not _LITTLE:
        column.byteswap()
    raw = column.tobytes()
    return [bytes([width])] + [raw[plane::8] for plane in range(width)]


def _unplanes(body: bytes, offset: int, count: int) -> tuple[array[int], int]:
    if offset >= len(body):
        raise ValueError("truncated history blob")
    width = body[offset]
    offset += 1
    end = offset + width * count
    if width > 8 or end > len(body):
        raise ValueError("truncated history blob")
    raw = bytearray(8 * count)
    for plane in range(width):
        start = offset + plane * count
        raw[plane::8] = body[start : start + count]
    column = array("Q")
    column.frombytes(bytes(raw))
    if not _LITTLE:
        column.byteswap()
    return column, end


def _offset_planes(values: Iterable[int]) -> list[bytes]:
    """Values less their least (a varint first), as planes: p50s of 11.9-12.4 ms cost a
    byte each, not two."""
    column = list(values)
    least = min(column, default=0)
    return [_varint(least), *_planes(v - least for v in column)]


def _unoffset_planes(body: bytes, offset: int, count: int) -> tuple[list[int], int]:
    least, offset = _unvarint(body, offset)
    column, offset = _unplanes(body, offset, count)
    return [least + v for v in column], offset


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _unvarint(body: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(body) or shift > 63:
            raise ValueError("truncated history blob")
        byte = body[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, offset
        shift += 7


def _deflate(segments: Iterable[bytes]) -> bytes:
    """One raw deflate stream (no header, no checksum: the store has its own), with a
    block per segment: each block gets a Huffman code of its own, so a plane of nearly
    constant bytes is not coded with the table of a plane of nearly random ones."""
    # A 2 KiB window and a small hash table: blobs are a few KiB at most, and setting up
    # zlib's defaults (a 32 KiB window) cost more than compressing them. Any window
    # inflates with the default one.
    packer = zlib.compressobj(9, zlib.DEFLATED, -11, 4)
    out = [
        part
        for segment in segments
        for part in (packer.compress(segment), packer.flush(zlib.Z_BLOCK))
    ]
    out.append(packer.flush())
    return b"".join(out)


def _inflate(blob: bytes) -> bytes:
    try:
        return zlib.decompress(blob, -15)
    except zlib.error as exc:
        raise ValueError(f"damaged history blob: {exc}") from exc


def encode_chunk(chunk: Chunk) -> bytes:
    count = len(chunk)
    tenths = [t // 100 for t in chunk.ts_ms]
    weights = chunk.weight_ms
    first_t = tenths[0] if count else 0
    first_w = weights[0] if count else 0
    # A result comes about one interval after the one before: what is left is jitter.
    jitter = (
        _zigzag(tenths[i] - tenths[i - 1] - (weights[i - 1] + 50) // 100) for i in range(1, count)
    )
    changes = (_zigzag(weights[i] - weights[i - 1]) for i in range(1, count))
    body = [
        *_planes(changes),
        *_planes(jitter),
        array("B", chunk.status).tobytes(),
        *_planes(r // 10 for r in chunk.rt_us),
    ]
    return _HEAD.pack(_VERSION, count, first_t, first_w) + _deflate(body)


def decode_chunk(hour: int, blob: bytes) -> Chunk:
    if blob[:1] == bytes([_OLD]):
        return _decode_chunk_2(hour, blob)
    if blob[:1] != bytes([_VERSION]) or len(blob) < _HEAD.size:
        raise ValueError("unknown history chunk format")
    _, count, first_t, first_w = _HEAD.unpack_from(blob)
    body = _inflate(blob[_HEAD.size :])
    changes, offset = _unplanes(body, 0, count - 1 if count else 0)
    jitter, offset = _unplanes(body, offset, count - 1 if count else 0)
    status = body[offset : offset + count]
    if len(status) != count:
        raise ValueError("truncated history chunk")
    rt, offset = _unplanes(body, offset + count, count)
    chunk = Chunk(hour)
    if not count:
        return chunk
    weights = chunk.weight_ms
    tenths = [first_t]
    weights.append(first_w)
    for change, wobble in zip(changes, jitter, strict=True):
        previous = weights[-1]
        tenths.append(tenths[-1] + (previous + 50) // 100 + _unzigzag(wobble))
        weights.append(previous + _unzigzag(change))
    chunk.ts_ms = array("q", (t * 100 for t in tenths))
    chunk.status = array("q", array("B", status))
    chunk.rt_us = array("q", (r * 10 for r in rt))
    return chunk


def encode_day(hours: dict[int, Rollup]) -> bytes:
    """`hours` maps the hour of the day (0-23) to its rollup."""
    ordered = sorted((h, r) for h, r in hours.items() if 0 <= h < _HOURS)
    if len(ordered) != len(hours):
        raise ValueError("an hour of the day is 0-23")
    mask = sum(1 << h for h, _ in ordered)
    rollups = [r for _, r in ordered]
    body = [
        mask.to_bytes(3, "little"),
        # Runs and time known are the same every hour of a steady check, time down is
        # nearly always 0: only latency varies, and only by so much around its least.
        *_offset_planes(r.runs for r in rollups),
        *_offset_planes(r.warned for r in rollups),
        *_offset_planes(r.failed for r in rollups),
        # Time down less what the failures would cover at the hour's mean interval: 0
        # for a check with one interval, whatever failed.
        *_offset_planes(
            _zigzag(r.known_ms - r.up_ms - _down(r.known_ms, r.failed, r.runs)) for r in rollups
        ),
        *_offset_planes(r.known_ms for r in rollups),
        *_offset_planes(r.p50_us // 10 for r in rollups),
        *_offset_planes(r.p95_us // 10 for r in rollups),
    ]
    # One block: 24 values a plane are too few to pay for a Huffman table each.
    return bytes([_VERSION]) + _deflate([b"".join(body)])


def decode_day(blob: bytes) -> dict[int, Rollup]:
    if blob[:1] == bytes([_OLD]):
        return _decode_day_2(blob)
    if blob[:1] != bytes([_VERSION]):
        raise ValueError("unknown history day format")
    body = _inflate(blob[1:])
    if len(body) < 3:
        raise ValueError("truncated history day")
    mask = int.from_bytes(body[:3], "little")
    hours = [h for h in range(_HOURS) if mask >> h & 1]
    offset, columns = 3, []
    for _ in range(7):
        column, offset = _unoffset_planes(body, offset, len(hours))
        columns.append(column)
    runs, warned, failed, down, known, p50, p95 = columns
    out: dict[int, Rollup] = {}
    # Inline arithmetic (no helper calls): every source's days are decoded on each reload.
    for h, n, w, f, z, k, p, q in zip(
        hours, runs, warned, failed, down, known, p50, p95, strict=True
    ):
        up = k - ((z >> 1) ^ -(z & 1)) - (k * f // n if n else 0)  # see _unzigzag, _down
        out[h] = Rollup(n - w - f, w, f, up, k, p * 10, q * 10)
    return out


def _down(known_ms: int, failed: int, runs: int) -> int:
    """Time down if every run stood for the same time: exact for a check with one
    interval, and what time down is stored against."""
    return known_ms * failed // runs if runs else 0


# ---------------------------------------------------------------- format 2 (read only)


def _deltas_sum(values: array[int]) -> array[int]:
    out, total = array("q"), 0
    for value in values:
        total += value
        out.append(total)
    return out


def _decode_chunk_2(hour: int, blob: bytes) -> Chunk:
    """Columns one after the other, zlib-compressed: times as deltas in 100 ms, statuses
    as bytes, response times (10 µs) as a low 16-bit and a high 32-bit column, weights
    as deltas."""
    if len(blob) < 5:
        raise ValueError("truncated history chunk")
    (count,) = struct.unpack_from("<I", blob, 1)
    try:
        body = zlib.decompress(blob[5:])
    except zlib.error as exc:
        raise ValueError(f"damaged history blob: {exc}") from exc
    columns: list[array[int]] = []
    offset = 0
    for code in ("i", "B", "H", "I", "i"):
        column = array(code)
        size = column.itemsize * count
        column.frombytes(body[offset : offset + size])
        if len(column) != count:
            raise ValueError("truncated history chunk")
        columns.append(column)
        offset += size
    ts, status, low, high, weights = columns
    chunk = Chunk(hour)
    chunk.ts_ms = array("q", (t * 100 for t in _deltas_sum(ts)))
    chunk.status = array("q", status)
    chunk.rt_us = array("q", ((h << 16 | lo) * 10 for lo, h in zip(low, high, strict=True)))
    chunk.weight_ms = _deltas_sum(weights)
    return chunk


def _decode_day_2(blob: bytes) -> dict[int, Rollup]:
    try:
        body = zlib.decompress(blob[1:])
    except zlib.error as exc:
        raise ValueError(f"damaged history blob: {exc}") from exc
    if len(body) % _ROLLUP.size:
        raise ValueError("truncated history day")
    out: dict[int, Rollup] = {}
    for fields in _ROLLUP.iter_unpack(body):
        hour, passed, warned, failed, up, known, p50, p95 = fields
        out[hour] = Rollup(passed, warned, failed, up, known, p50 * 10, p95 * 10)
    return out
