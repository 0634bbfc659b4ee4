"""Compact blobs: a chunk of raw results, and the 24 hourly rollups of one day.

Columns are delta-encoded and zlib-compressed: a check that passes every 15 s in about
the same time compresses to a few hundred bytes an hour, which keeps a check's 90 days
well under the size goal (bench/bench_history.py measures it).
"""

from __future__ import annotations

import struct
import zlib
from array import array

from probe.history.model import Chunk, Rollup

_VERSION = 1
_ROLLUP = struct.Struct("<B7I")  # hour of the day, then Rollup.as_tuple()


def _deltas(values: array[int]) -> array[int]:
    out, previous = array("q"), 0
    for value in values:
        out.append(value - previous)
        previous = value
    return out


def _undeltas(values: array[int]) -> array[int]:
    out, total = array("q"), 0
    for value in values:
        total += value
        out.append(total)
    return out


def encode_chunk(chunk: Chunk) -> bytes:
    # Signed 64-bit for deltas (the ts column rises, the others wander both ways).
    columns = [_deltas(chunk.ts_ms), _deltas(chunk.status), _deltas(chunk.rt_us)]
    columns.append(_deltas(chunk.weight_ms))
    body = b"".join(column.tobytes() for column in columns)
    return bytes([_VERSION]) + struct.pack("<I", len(chunk)) + zlib.compress(body, 6)


def decode_chunk(hour: int, blob: bytes) -> Chunk:
    if not blob or blob[0] != _VERSION:
        raise ValueError("unknown history chunk format")
    (count,) = struct.unpack_from("<I", blob, 1)
    values = array("q")
    values.frombytes(zlib.decompress(blob[5:]))
    if len(values) != 4 * count:
        raise ValueError("truncated history chunk")
    cols = [_undeltas(values[i * count : (i + 1) * count]) for i in range(4)]
    return Chunk(hour, cols[0], cols[1], cols[2], cols[3])


def encode_day(hours: dict[int, Rollup]) -> bytes:
    """`hours` maps the hour of the day (0-23) to its rollup."""
    body = b"".join(_ROLLUP.pack(h, *r.as_tuple()) for h, r in sorted(hours.items()))
    return bytes([_VERSION]) + zlib.compress(body, 6)


def decode_day(blob: bytes) -> dict[int, Rollup]:
    if not blob or blob[0] != _VERSION:
        raise ValueError("unknown history day format")
    body = zlib.decompress(blob[1:])
    out: dict[int, Rollup] = {}
    for fields in _ROLLUP.iter_unpack(body):
        out[fields[0]] = Rollup(*fields[1:])
    return out
