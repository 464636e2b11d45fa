"""Read transactions: one snapshot, begun in the round trip of their first statement.

On PostgreSQL the pool's connections are in autocommit mode, and a read
transaction sends its BEGIN together with its first statement when that
statement has no parameters. The read-model check is such a statement,
prepared once per connection, so the server does not plan it again on
every request.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from projections.postgres import PostgresDatabase
from projections.projector import Projector, _checked_name

PREPARED_COUNT = "SELECT count(*) AS n FROM pg_prepared_statements WHERE name LIKE 'ledger_%%'"


@pytest.fixture
def postgres_only(backend):
    if backend != "postgresql":
        pytest.skip("SQLite begins its transactions itself.")


def test_first_statement_begins_snapshot(services, postgres_only):
    with services.database.transaction() as cursor:
        cursor.execute_planned("SELECT current_setting('transaction_isolation') AS isolation,"
                               " current_setting('transaction_read_only') AS read_only")
        row = cursor.fetchone()
        # The BEGIN went in the same query as the first statement.
        assert row == {"isolation": "repeatable read", "read_only": "on"}
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            cursor.execute("CREATE TABLE not_allowed (id INTEGER)")


def test_read_sees_one_snapshot(services, postgres_only):
    database = services.database
    with database.transaction(write=True) as cursor:
        cursor.execute("CREATE TABLE snapshot_probe (id INTEGER)")
    with database.transaction() as cursor:
        first = cursor.execute("SELECT count(*) AS n FROM snapshot_probe").fetchone()["n"]
        # Another connection commits a row while the read is open.
        with database.transaction(write=True) as other:
            other.execute("INSERT INTO snapshot_probe (id) VALUES (1)")
        second = cursor.execute("SELECT count(*) AS n FROM snapshot_probe").fetchone()["n"]
    assert first == 0
    assert second == 0
    with database.transaction() as cursor:
        assert cursor.execute("SELECT count(*) AS n FROM snapshot_probe").fetchone()["n"] == 1


def test_check_prepared_once(services, postgres_only):
    database = services.database
    projector = services.projector
    heads = []
    for _ in range(4):
        with database.transaction() as cursor:
            heads.append(projector.check(cursor).head)
            prepared = cursor.execute(PREPARED_COUNT).fetchone()["n"]
            assert prepared == 1
    assert len(set(heads)) == 1


def test_failed_read_rolls_back(services, postgres_only):
    database = services.database
    with pytest.raises(psycopg.errors.UndefinedTable), database.transaction() as cursor:
        cursor.execute_planned("SELECT 1 AS one")
        cursor.execute("SELECT * FROM no_such_table")
    for _ in range(3):
        with database.transaction() as cursor:
            assert cursor.execute_planned("SELECT 1 AS one").fetchone() == {"one": 1}


def test_failed_planned_drops_connection(services, postgres_only):
    database = services.database
    with pytest.raises(psycopg.errors.UndefinedTable), database.transaction() as cursor:
        cursor.execute_planned("SELECT * FROM no_such_table")
    # Whether the statement was prepared is unknown, so a new connection
    # prepares it again instead of failing on a name that already exists.
    with database.transaction(write=True) as cursor:
        cursor.execute("CREATE TABLE no_such_table (id INTEGER)")
    for _ in range(3):
        with database.transaction() as cursor:
            assert cursor.execute_planned("SELECT * FROM no_such_table").fetchall() == []


def test_writes_still_roll_back(services, postgres_only):
    database = services.database
    with database.transaction(write=True) as cursor:
        cursor.execute("CREATE TABLE write_probe (id INTEGER)")
    with pytest.raises(RuntimeError), database.transaction(write=True) as cursor:
        cursor.execute("INSERT INTO write_probe (id) VALUES (1)")
        raise RuntimeError("abandon the write")
    with database.transaction() as cursor:
        assert cursor.execute("SELECT count(*) AS n FROM write_probe").fetchone()["n"] == 0


def test_planned_statement_on_sqlite(services):
    with services.database.transaction() as cursor:
        assert cursor.execute_planned("SELECT 1 AS one").fetchone()["one"] == 1
        check = services.projector.check(cursor)
    assert check.head == services.projector.head()


@pytest.mark.parametrize("name", ["releases_v1", "audit_v2", "a"])
def test_model_names_accepted(name):
    assert _checked_name(name) == name


@pytest.mark.parametrize("name", ["", "Releases", "x'; DROP TABLE t; --", "1st", "a-b"])
def test_bad_model_names_rejected(name):
    with pytest.raises(ValueError):
        _checked_name(name)


def test_check_reads_model_positions(services):
    projector: Projector = services.projector
    projector.catch_up()
    with services.database.transaction() as cursor:
        check = projector.check(cursor)
    assert check.current
    assert set(check.positions) == {projection.name for projection in projector.projections}


def test_check_survives_deallocate_all(services, postgres_only):
    database = services.database
    projector = services.projector
    with database.transaction() as cursor:
        head = projector.check(cursor).head
    # A rolled back write makes psycopg run DEALLOCATE ALL on its connection.
    for _ in range(2):
        with pytest.raises(RuntimeError), database.transaction(write=True) as cursor:
            cursor.execute("SELECT 1")
            raise RuntimeError("roll back")
        with database.transaction() as cursor:
            assert projector.check(cursor).head == head


def test_forgotten_statement_prepared_again(services, postgres_only):
    database = services.database
    with database.transaction() as cursor:
        cursor.execute_planned("SELECT 2 AS two")
    # Clear the record of prepared statements, as a reconnect would.
    for prepared in database._prepared.values():
        prepared.clear()
    with database.transaction() as cursor:
        assert cursor.execute_planned("SELECT 2 AS two").fetchone() == {"two": 2}


def test_executemany_first_still_begins(services, postgres_only):
    database = services.database
    with database.transaction(write=True) as cursor:
        cursor.execute("CREATE TABLE begin_probe (id INTEGER)")
    # A read-only transaction rejects the write, which shows the BEGIN went first.
    with database.transaction() as cursor, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        cursor.executemany("INSERT INTO begin_probe (id) VALUES (%s)", [(1,), (2,)])


def prepare_time(cursor):
    row = cursor.execute(
        "SELECT prepare_time FROM pg_prepared_statements WHERE name LIKE 'ledger_%%'"
    ).fetchone()
    return row["prepare_time"]


def test_raising_read_keeps_prepared_check(services, postgres_only):
    postgres = services.settings.postgres
    # One connection, so that every transaction below shares it.
    database = PostgresDatabase(postgres.conninfo, postgres.schema, min_size=1, max_size=1)
    projector = Projector(services.ledger, database, services.projector.projections)
    try:
        check_survives_raising_read(database, projector)
    finally:
        database.close()


def check_survives_raising_read(database, projector):
    with database.transaction() as cursor:
        projector.check(cursor)
        first = prepare_time(cursor)
        # psycopg prepares a statement run five times, and then deallocates
        # all prepared statements after any ROLLBACK on the connection.
        for _ in range(6):
            cursor.execute("SELECT %s::int AS x", (1,))
    # A handler raising, such as for a 404, ends the read without ROLLBACK,
    # after which psycopg would deallocate every prepared statement.
    with pytest.raises(LookupError), database.transaction() as cursor:
        projector.check(cursor)
        raise LookupError("no such release")
    with database.transaction() as cursor:
        projector.check(cursor)
        assert prepare_time(cursor) == first


def test_checksum_collision_keeps_statements(services, postgres_only):
    # These two statements have the same CRC-32.
    for _ in range(2):
        for number in (32060020, 29685295):
            with services.database.transaction() as cursor:
                row = cursor.execute_planned(f"SELECT {number} AS n").fetchone()
            assert row == {"n": number}


def test_first_statement_percent_escaping(services, postgres_only):
    with services.database.transaction() as cursor:
        first = cursor.execute("SELECT 'a%%b' AS v").fetchone()["v"]
        later = cursor.execute("SELECT 'a%%b' AS v").fetchone()["v"]
    assert first == "a%b"
    assert later == "a%b"


def test_composed_first_statement_runs(services, postgres_only):
    statement = sql.SQL("SELECT {} AS v").format(sql.Literal("composed"))
    with services.database.transaction() as cursor:
        assert cursor.execute(statement).fetchone() == {"v": "composed"}


def test_planned_statement_trailing_comment(services, postgres_only):
    with services.database.transaction() as cursor:
        assert cursor.execute_planned("SELECT 7 AS seven -- note").fetchone() == {"seven": 7}
