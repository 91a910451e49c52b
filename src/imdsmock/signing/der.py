"""A minimal ASN.1 DER encoder: the PKCS#7 signed data of the identity document.

The server writes PKCS#7 (RFC 5652) at start without importing ``cryptography``; the
tests check the result byte for byte against ``cryptography``'s PKCS#7 builder. Only a
handful of universal types and low-numbered context tags occur, so a tag is one byte.
Encoders return complete TLVs (tag, length, value) as ``bytes`` and nest by concatenation.
"""

from __future__ import annotations

import base64
import datetime

__all__ = [
    "algorithm",
    "base64_lines",
    "context",
    "integer",
    "null",
    "octet_string",
    "oid",
    "pem",
    "sequence",
    "set_of",
    "time",
    "tlv",
]

INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
SET = 0x31
_CONSTRUCTED = 0x20
_CONTEXT = 0x80


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


def sequence(*items: bytes) -> bytes:
    """A SEQUENCE of already encoded elements, in order."""
    return tlv(SEQUENCE, b"".join(items))


def set_of(*items: bytes, tag: int = SET) -> bytes:
    """A SET OF: DER orders the encoded elements as byte strings (X.690 §11.6).

    ``tag`` replaces the universal SET tag for IMPLICIT context tags, such as a signer's
    ``[0] IMPLICIT SET OF Attribute`` (the signature covers the same set tagged SET).
    """
    return tlv(tag, b"".join(sorted(items)))


def time(moment: datetime.datetime) -> bytes:
    """An RFC 5280 Time: UTCTime through 2049, GeneralizedTime from 2050 (whole seconds, UTC)."""
    moment = moment.astimezone(datetime.UTC)
    if moment.year < 2050:
        return tlv(UTC_TIME, moment.strftime("%y%m%d%H%M%SZ").encode())
    return tlv(GENERALIZED_TIME, moment.strftime("%Y%m%d%H%M%SZ").encode())


def context(number: int, value: bytes) -> bytes:
    """An EXPLICIT context-specific tag ``[number]`` around ``value``."""
    return tlv(_CONTEXT | _CONSTRUCTED | number, value)
