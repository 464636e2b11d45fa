"""The baseline web app: Falcon doing one single-row INSERT transaction per request.

It answers the release routes that the `pairs` load scenario uses, so the
same load runs against it and against the service, under the same gunicorn
settings. Each POST or PUT stores its request body as one row.

    BENCH_BASELINE_CONNINFO=... gunicorn -c gunicorn.conf.py 'bench.baseline:create_app()'
"""

from __future__ import annotations

import os

import falcon
from psycopg_pool import ConnectionPool

TABLE = "baseline_requests"
CREATE_TABLE = f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"
INSERT = f"INSERT INTO {TABLE} (body) VALUES (%s) RETURNING id"


class Rows:
    """POST and PUT insert the request body as one row and return its id."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def on_post(self, req: falcon.Request, resp: falcon.Response, **_: str) -> None:
        resp.media = {"id": str(self.insert(req))}
        resp.status = falcon.HTTP_201

    def on_put(self, req: falcon.Request, resp: falcon.Response, **_: str) -> None:
        resp.media = {"id": str(self.insert(req))}

    def insert(self, req: falcon.Request) -> int:
        body = req.bounded_stream.read().decode()
        with self.pool.connection() as connection:
            row = connection.execute(INSERT, (body,)).fetchone()
        return row[0]


def create_app() -> falcon.App:
    pool = ConnectionPool(os.environ["BENCH_BASELINE_CONNINFO"], min_size=1, max_size=4, open=True)
    rows = Rows(pool)
    app = falcon.App()
    app.add_route("/api/0/organizations/{org}/releases/", rows)
    app.add_route("/api/0/organizations/{org}/releases/{version}/", rows)
    return app
