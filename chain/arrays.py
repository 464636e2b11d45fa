"""Arrays for query parameters, encoded in PostgreSQL's binary format before psycopg adapts them.

psycopg inspects every list parameter to choose the dumper for its
elements, in Python, on each query. An append sends four arrays, and
that inspection took about a tenth of the CPU time of a release command.
These arrays know their element type, so their dumper only passes the
encoded bytes on.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from uuid import UUID

import psycopg
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
        if not elements:
            # No dimensions at all is how PostgreSQL encodes an empty array.
            self.data = struct.pack(">iiI", 0, 0, self.element_oid)
            return
        parts = [_HEADER.pack(1, 0, self.element_oid, len(elements), 1)]
        for element in elements:
            parts.append(_LENGTH.pack(len(element)))
            parts.append(element)
        self.data = b"".join(parts)


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


class TextArray(EncodedArray):
    __slots__ = ()
    element_oid = 25

    def __init__(self, values: Sequence[str]) -> None:
        super().__init__([value.encode() for value in values])


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


for _array_class, _array_oid in ((UUIDArray, 2951), (BigintArray, 1016), (TextArray, 1009),
                                 (ByteaArray, 1001)):
    psycopg.adapters.register_dumper(_array_class, _dumper(_array_oid))
