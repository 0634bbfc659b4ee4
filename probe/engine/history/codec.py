"""Compact blobs: a chunk of raw results, and the 24 hourly rollups of one day.

Columns are laid out one after the other and zlib-compressed: times as deltas in 100 ms
units, statuses as bytes, response times in 10 µs units split into a low and a high
16-bit column (the high one is nearly all zeros), weights as deltas. A check every 15 s
with a jittery response time costs about 700 bytes an hour; bench/bench_history.py
measures the whole store.
"""

from __future__ import annotations

import struct
import zlib
from array import array

from probe.engine.history.model import Chunk, Rollup

_VERSION = 2
_ROLLUP = struct.Struct("<B5I2I")  # hour of the day, counts and times, p50 and p95 (10 µs)


def _deltas(values: array[int]) -> array[int]:
    out, previous = array("i"), 0
    for value in values:
        out.append(value - previous)
        previous = value
    return out


def _sums(values: array[int]) -> array[int]:
    out, total = array("q"), 0
    for value in values:
        total += value
        out.append(total)
    return out


def encode_chunk(chunk: Chunk) -> bytes:
    tenths = array("q", (t // 100 for t in chunk.ts_ms))
    rt = [r // 10 for r in chunk.rt_us]
    body = b"".join(
        (
            _deltas(tenths).tobytes(),
            array("B", chunk.status).tobytes(),
            array("H", (r & 0xFFFF for r in rt)).tobytes(),
            array("I", (r >> 16 for r in rt)).tobytes(),
            _deltas(chunk.weight_ms).tobytes(),
        )
    )
    return bytes([_VERSION]) + struct.pack("<I", len(chunk)) + zlib.compress(body, 6)


def decode_chunk(hour: int, blob: bytes) -> Chunk:
    if not blob or blob[0] != _VERSION:
        raise ValueError("unknown history chunk format")
    (count,) = struct.unpack_from("<I", blob, 1)
    body = zlib.decompress(blob[5:])
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
    chunk.ts_ms = array("q", (t * 100 for t in _sums(ts)))
    chunk.status = array("q", status)
    chunk.rt_us = array("q", ((h << 16 | lo) * 10 for lo, h in zip(low, high, strict=True)))
    chunk.weight_ms = _sums(weights)
    return chunk


def encode_day(hours: dict[int, Rollup]) -> bytes:
    """`hours` maps the hour of the day (0-23) to its rollup."""
    body = b"".join(
        _ROLLUP.pack(h, *r.as_tuple()[:5], r.p50_us // 10, r.p95_us // 10)
        for h, r in sorted(hours.items())
    )
    return bytes([_VERSION]) + zlib.compress(body, 6)


def decode_day(blob: bytes) -> dict[int, Rollup]:
    if not blob or blob[0] != _VERSION:
        raise ValueError("unknown history day format")
    out: dict[int, Rollup] = {}
    for fields in _ROLLUP.iter_unpack(zlib.decompress(blob[1:])):
        hour, passed, warned, failed, up, known, p50, p95 = fields
        out[hour] = Rollup(passed, warned, failed, up, known, p50 * 10, p95 * 10)
    return out
