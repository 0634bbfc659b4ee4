"""The certificates a TLS server sends, and when the first of them expires.

A chain is only as good as its earliest expiry: an intermediate that lapses breaks every
client as surely as the leaf. The standard library decodes only certificates it has
verified, and two fields are needed (notAfter, the subject's common name), so a small
DER walk beats adding a dependency.
"""

from __future__ import annotations

import calendar
import ssl
import time
from dataclasses import dataclass
from typing import Any

_COMMON_NAME = bytes.fromhex("550403")  # OID 2.5.4.3


@dataclass(frozen=True, slots=True)
class Served:
    """One certificate of the chain: its place (0 is the server's own) and expiry."""

    position: int
    subject: str
    not_after: float

    @property
    def role(self) -> str:
        return "certificate" if self.position == 0 else "intermediate"


def served_chain(ssl_object: Any) -> list[bytes]:
    """The DER certificates the server sent, its own first.

    Python 3.13 has `get_unverified_chain()`; 3.11 and 3.12 have it on the object
    underneath. Without either, the server's own certificate is all there is.
    """
    public = getattr(ssl_object, "get_unverified_chain", None)
    if public is not None:
        return [_der(cert) for cert in public() or []]
    inner = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if inner is not None:
        return [_der(cert) for cert in inner() or []]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _der(cert: Any) -> bytes:
    if isinstance(cert, bytes):
        return cert
    der: bytes = cert.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
    return der


def earliest(chain: list[bytes]) -> Served:
    """The certificate of the chain that expires first; ValueError if none can be read.

    A self-signed root sent along is skipped when anything else is there: clients trust
    their own copy of it, not the one on the wire.
    """
    found = [Served(i, subject_name(der), der_not_after(der)) for i, der in enumerate(chain)]
    if not found:
        raise ValueError("no certificate")
    kept = [s for s, der in zip(found, chain, strict=True) if not _self_signed(der)] or found
    return min(kept, key=lambda served: (served.not_after, served.position))


# ---------------------------------------------------------------- DER


def _tbs_fields(der: bytes) -> tuple[bytes, int]:
    """tbsCertificate and the offset of its `issuer` field."""
    certificate, _ = _der_item(der, 0, 0x30)
    tbs, _ = _der_item(certificate, 0, 0x30)
    offset = 0
    if tbs[:1] == b"\xa0":  # explicit [0] version, absent in v1 certificates
        offset = _der_skip(tbs, offset)
    for _ in range(2):  # serialNumber, signature
        offset = _der_skip(tbs, offset)
    return tbs, offset


def der_not_after(der: bytes) -> float:
    """Unix time of a DER certificate's notAfter:
    Certificate -> tbsCertificate -> [version], serial, signature, issuer, validity."""
    tbs, issuer = _tbs_fields(der)
    validity, _ = _der_item(tbs, _der_skip(tbs, issuer), 0x30)
    return _der_time(validity, _der_skip(validity, 0))


def subject_name(der: bytes) -> str:
    """The subject's common name, or '' when it has none."""
    tbs, issuer = _tbs_fields(der)
    subject_at = _der_skip(tbs, _der_skip(tbs, issuer))  # after issuer and validity
    return _common_name(_der_item(tbs, subject_at, 0x30)[0])


def _self_signed(der: bytes) -> bool:
    tbs, issuer = _tbs_fields(der)
    subject_at = _der_skip(tbs, _der_skip(tbs, issuer))
    return _der_item(tbs, issuer, 0x30)[0] == _der_item(tbs, subject_at, 0x30)[0]


def _common_name(name: bytes) -> str:
    offset = 0
    while offset < len(name):  # Name: SET OF SEQUENCE { OID, value }
        relative, offset = _der_item(name, offset, 0x31)
        pair, _ = _der_item(relative, 0, 0x30)
        oid, after = _der_item(pair, 0, 0x06)
        if oid == _COMMON_NAME:
            _, start, length = _der_header(pair, after)
            return pair[start : start + length].decode("utf-8", errors="replace")
    return ""


def _der_header(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, content start, content length) of the item at `offset`."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or start + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + length > len(data):
        raise ValueError("truncated DER")
    return tag, start, length


def _der_item(data: bytes, offset: int, tag: int) -> tuple[bytes, int]:
    found, start, length = _der_header(data, offset)
    if found != tag:
        raise ValueError(f"unexpected DER tag {found:#x}")
    return data[start : start + length], start + length


def _der_skip(data: bytes, offset: int) -> int:
    _, start, length = _der_header(data, offset)
    return start + length


def _der_time(data: bytes, offset: int) -> float:
    tag, start, length = _der_header(data, offset)
    text = data[start : start + length].decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ; years 50-99 are 19xx (RFC 5280)
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError(f"unexpected DER tag {tag:#x}")
    if len(text) != 15 or not text.endswith("Z"):
        raise ValueError(f"unexpected certificate time {text!r}")
    return float(calendar.timegm(time.strptime(text, "%Y%m%d%H%M%SZ")))
