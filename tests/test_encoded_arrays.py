"""Arrays encoded for PostgreSQL ahead of psycopg read back as the values they hold."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from api.config import Settings
from chain.arrays import BigintArray, ByteaArray, TextArray, UUIDArray
from tests.conftest import check_postgres_reachable, postgres_url

IDS = [uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
CASES = [
    (UUIDArray, "uuid[]", IDS),
    (BigintArray, "bigint[]", [0, 1, -1, 2**63 - 1, -(2**63)]),
    (TextArray, "text[]", ["domain.release:Release.Created", "", "naïve ✓ 😀", "a,b {c} \"d\""]),
    (ByteaArray, "bytea[]", [b"", b"\x00\x01\xff", b"x" * 70_000]),
]


@pytest.fixture(scope="module")
def connection():
    check_postgres_reachable()
    conninfo = Settings(database_url=postgres_url()).postgres.conninfo
    with psycopg.connect(conninfo, autocommit=True) as connection:
        yield connection


@pytest.mark.parametrize(("array_class", "cast", "values"), CASES)
def test_array_reads_back_its_values(connection, array_class, cast, values):
    row = connection.execute(f"SELECT %b::{cast} AS value", (array_class(values),)).fetchone()

    assert row[0] == values


@pytest.mark.parametrize(("array_class", "cast"), [case[:2] for case in CASES])
def test_empty_array_reads_back_empty(connection, array_class, cast):
    row = connection.execute(
        f"SELECT %b::{cast} AS value, cardinality(%b::{cast}) AS size",
        (array_class([]), array_class([])),
    ).fetchone()

    assert row == ([], 0)


def test_uuid_array_takes_text_ids(connection):
    row = connection.execute("SELECT %b::uuid[]", (UUIDArray([str(IDS[0])]),)).fetchone()

    assert row[0] == [IDS[0]]


def test_array_without_cast_has_its_type(connection):
    row = connection.execute("SELECT pg_typeof(%b)::text", (BigintArray([5]),)).fetchone()

    assert row[0] == "bigint[]"
