"""A test for "one of these values" that keeps a statement's text the same for any count."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("count", [1, 50, 51, 120])
def test_any_of_matches_exactly_the_values(services, count):
    values = [f"v{index:03d}" for index in range(0, 240, 2)][:count]
    with services.database.transaction(write=True) as cursor:
        cursor.execute("CREATE TABLE any_of_values (value TEXT PRIMARY KEY)")
        cursor.executemany("INSERT INTO any_of_values (value) VALUES (%s)",
                           [(f"v{index:03d}",) for index in range(240)])
        test, params = cursor.any_of(values)
        rows = cursor.execute(
            f"SELECT value FROM any_of_values WHERE value {test} ORDER BY value", params
        ).fetchall()
        cursor.execute("DROP TABLE any_of_values")

    assert [row["value"] for row in rows] == values


def test_any_of_text_fixed_on_postgresql(services):
    # psycopg neither prepares nor caches statements of over 50 parameters.
    if services.settings.backend != "postgresql":
        pytest.skip("SQLite lists the values.")
    with services.database.transaction() as cursor:
        tests = {cursor.any_of(["a"] * count)[0] for count in (1, 100, 1000)}

    assert tests == {"= ANY(%s)"}


@pytest.mark.parametrize("values, others", [
    (["é", "日本", "plain"], ["e", "日"]), ([3, 7], [5]), ([], ["a"]),
])
def test_any_of_matches_text_and_numbers(services, values, others):
    selects = " UNION ALL ".join(["SELECT %s AS value"] * (len(values) + len(others)))
    with services.database.transaction() as cursor:
        test, params = cursor.any_of(values)
        found = cursor.execute(
            f"SELECT value FROM ({selects}) AS t WHERE value {test}", (*values, *others, *params)
        ).fetchall()

    assert sorted(row["value"] for row in found) == sorted(values)
