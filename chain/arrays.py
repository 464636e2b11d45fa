"""Arrays for query parameters, encoded in PostgreSQL's binary format before psycopg adapts them.

psycopg inspects every list parameter to choose the dumper for its
elements, in Python, on each query. An append sends four arrays, and
that inspection took about a tenth of the CPU time of a release command.
Each array class here has a fixed element type, so its dumper passes
the encoded bytes on as they are.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from uuid import UUID

import psycopg
from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.pq import Format

_HEADER = struct.Struct(">iiIii")
_LENGTH = struct.Struct(">i")
_INT8 = struct.Struct(">q")


class EncodedArray:
    """A one-dimensional array without nulls, in PostgreSQL's binary format."""

    __slots__ = ("data",)
    element_oid = 0

    def __init__(self, elements: Sequence[bytes]) -> None:
        self.data = encode_array(self.element_oid, elements)


def encode_array(element_oid: int, elements: Sequence[bytes]) -> bytes:
    """Return the binary format of a one-dimensional array of encoded elements."""
    if not elements:
        # No dimensions at all is how PostgreSQL encodes an empty array.
        return struct.pack(">iiI", 0, 0, element_oid)
    parts = [_HEADER.pack(1, 0, element_oid, len(elements), 1)]
    for element in elements:
        parts.append(_LENGTH.pack(len(element)))
        parts.append(element)
    return b"".join(parts)


class UUIDArray(EncodedArray):
    __slots__ = ()
    element_oid = 2950

    def __init__(self, values: Sequence[UUID | str]) -> None:
        super().__init__([
            value.bytes if isinstance(value, UUID) else UUID(value).bytes for value in values
        ])


class BigintArray(EncodedArray):
    __slots__ = ()
    element_oid = 20

    def __init__(self, values: Sequence[int]) -> None:
        super().__init__([_INT8.pack(value) for value in values])


class TextArray:
    """A one-dimensional text array without nulls, encoded by its dumper.

    PostgreSQL reads binary text in the connection's client encoding,
    and only the dumper has the connection.
    """

    __slots__ = ("values",)

    def __init__(self, values: Sequence[str]) -> None:
        self.values = values


class ByteaArray(EncodedArray):
    __slots__ = ()
    element_oid = 17


def _dumper(array_oid: int) -> type[Dumper]:
    class EncodedArrayDumper(Dumper):
        format = Format.BINARY
        oid = array_oid

        def dump(self, obj: EncodedArray) -> bytes:
            return obj.data

    return EncodedArrayDumper


class TextArrayDumper(Dumper):
    format = Format.BINARY
    oid = 1009

    def __init__(self, cls: type, context: AdaptContext | None = None) -> None:
        super().__init__(cls, context)
        self._encoding = self.connection.info.encoding if self.connection else "utf-8"

    def dump(self, obj: TextArray) -> bytes:
        return encode_array(25, [value.encode(self._encoding) for value in obj.values])


for _array_class, _array_oid in ((UUIDArray, 2951), (BigintArray, 1016), (ByteaArray, 1001)):
    psycopg.adapters.register_dumper(_array_class, _dumper(_array_oid))
psycopg.adapters.register_dumper(TextArray, TextArrayDumper)
