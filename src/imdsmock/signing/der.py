"""A minimal ASN.1 DER encoder and decoder: only what identity signing needs.

Signing (``signing``) writes PKCS#7 signed data and X.509 certificates and reads PKCS#1 /
PKCS#8 keys and certificates (RFC 5652, RFC 5280, RFC 8017, RFC 5208). Those use a handful
of universal types and context-specific tags, all with low tag numbers (below 31), so a tag
here is one byte. Encoders return complete TLVs (tag, length, value) as ``bytes`` and nest
by concatenation; the decoder walks TLVs without interpreting them.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass

__all__ = [
    "BIT_STRING",
    "INTEGER",
    "NULL",
    "OCTET_STRING",
    "OID",
    "SEQUENCE",
    "SET",
    "TLV",
    "DERError",
    "algorithm",
    "base64_lines",
    "bit_string",
    "context",
    "decode_integer",
    "integer",
    "null",
    "octet_string",
    "oid",
    "parse",
    "pem",
    "printable_string",
    "sequence",
    "set_of",
    "time",
    "tlv",
    "utf8_string",
]

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
SET = 0x31
_CONSTRUCTED = 0x20
_CONTEXT = 0x80


class DERError(ValueError):
    """The bytes are not the DER this module expects (truncated, bad length, wrong tag)."""


# -- encoding -------------------------------------------------------------------------


def tlv(tag: int, value: bytes) -> bytes:
    """One element: ``tag``, the DER length of ``value`` (short or long form), ``value``."""
    size = len(value)
    if size < 0x80:
        return bytes((tag, size)) + value
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + value


def integer(value: int) -> bytes:
    """An INTEGER: minimal two's complement (a leading 0x00 keeps positives positive)."""
    size = value.bit_length() // 8 + 1  # one spare bit for the sign
    return tlv(INTEGER, value.to_bytes(size, "big", signed=True))


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER from its dotted form (``1.2.840.113549.1.1.11``)."""
    arcs = [int(arc) for arc in dotted.split(".")]
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        # Base 128, most significant first; every septet but the last has its top bit set.
        top = 7 * (max(arc.bit_length() - 1, 0) // 7)
        out += bytes((arc >> shift & 0x7F) | (0x80 if shift else 0) for shift in range(top, -1, -7))
    return tlv(OID, bytes(out))


def null() -> bytes:
    """NULL (the parameters of rsaEncryption and the SHA-2 algorithm identifiers)."""
    return tlv(NULL, b"")


def algorithm(dotted: str) -> bytes:
    """An AlgorithmIdentifier with NULL parameters (RSA and SHA-2 identifiers)."""
    return sequence(oid(dotted), null())


def base64_lines(raw: bytes, width: int = 64) -> str:
    """``raw`` in base64, in lines of ``width`` characters (PEM bodies, IMDS signatures)."""
    text = base64.b64encode(raw).decode()
    return "\n".join(text[i : i + width] for i in range(0, len(text), width))


def pem(label: str, data: bytes) -> str:
    """``data`` in PEM armour (``-----BEGIN label-----``, RFC 7468)."""
    return f"-----BEGIN {label}-----\n{base64_lines(data)}\n-----END {label}-----\n"


def octet_string(value: bytes) -> bytes:
    """An OCTET STRING."""
    return tlv(OCTET_STRING, value)


def bit_string(value: bytes) -> bytes:
    """A BIT STRING of whole bytes (no unused bits), as keys and signatures are."""
    return tlv(BIT_STRING, b"\x00" + value)


def sequence(*items: bytes) -> bytes:
    """A SEQUENCE of already encoded elements, in order."""
    return tlv(SEQUENCE, b"".join(items))


def set_of(*items: bytes, tag: int = SET) -> bytes:
    """A SET OF: DER orders the encoded elements as byte strings (X.690 §11.6).

    ``tag`` replaces the universal SET tag for IMPLICIT context tags, such as a signer's
    ``[0] IMPLICIT SET OF Attribute`` (the signature covers the same set tagged SET).
    """
    return tlv(tag, b"".join(sorted(items)))


def printable_string(text: str) -> bytes:
    """A PrintableString (X.520 country names must be one)."""
    return tlv(PRINTABLE_STRING, text.encode("ascii"))


def utf8_string(text: str) -> bytes:
    """A UTF8String."""
    return tlv(UTF8_STRING, text.encode())


def time(moment: datetime.datetime) -> bytes:
    """An RFC 5280 Time: UTCTime through 2049, GeneralizedTime from 2050 (whole seconds, UTC)."""
    moment = moment.astimezone(datetime.UTC)
    if moment.year < 2050:
        return tlv(UTC_TIME, moment.strftime("%y%m%d%H%M%SZ").encode())
    return tlv(GENERALIZED_TIME, moment.strftime("%Y%m%d%H%M%SZ").encode())


def context(number: int, value: bytes, *, constructed: bool = True) -> bytes:
    """A context-specific tag ``[number]`` around ``value`` (EXPLICIT when constructed)."""
    return tlv(_CONTEXT | (_CONSTRUCTED if constructed else 0) | number, value)


# -- decoding -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TLV:
    """One decoded element: its tag byte, its value, and its whole encoding."""

    tag: int
    value: bytes
    encoded: bytes

    def children(self) -> list[TLV]:
        """The elements inside a constructed value, in order."""
        items, offset = [], 0
        while offset < len(self.value):
            item, offset = _read(self.value, offset)
            items.append(item)
        return items

    def expect(self, tag: int) -> TLV:
        """This element, checked to carry ``tag``."""
        if self.tag != tag:
            raise DERError(f"expected tag 0x{tag:02x}, found 0x{self.tag:02x}")
        return self


def parse(data: bytes) -> TLV:
    """``data`` as exactly one element (trailing bytes are an error)."""
    item, end = _read(data, 0)
    if end != len(data):
        raise DERError(f"{len(data) - end} bytes after the element")
    return item


def decode_integer(item: TLV) -> int:
    """The value of an INTEGER element."""
    if item.expect(INTEGER).value == b"":
        raise DERError("empty INTEGER")
    return int.from_bytes(item.value, "big", signed=True)


def _read(data: bytes, offset: int) -> tuple[TLV, int]:
    start = offset
    if offset + 2 > len(data):
        raise DERError("truncated element")
    tag, size = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise DERError("high tag numbers are not supported")
    offset += 2
    if size & 0x80:
        count = size & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise DERError("bad length")
        size = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    end = offset + size
    if end > len(data):
        raise DERError("truncated element")
    return TLV(tag, data[offset:end], data[start:end]), end
