"""GET /readyz: whether this process can serve reads that are up to date."""

from __future__ import annotations

import logging

import falcon

from api import response_schemas as bodies
from api.errors import RETRY_AFTER_SECONDS
from api.operations import operation
from api.services import Services
from projections.database import UNAVAILABLE_ERRORS

logger = logging.getLogger(__name__)


class Readiness:
    """200 when the database responds and every read model is within the lag bound.

    Otherwise 503 with the reason in `detail` and a Retry-After header, so a
    load balancer sends requests to other hosts meanwhile. A read model
    behind by events it ignores only is not lagging. A failed read model
    is listed with its state but does not make the host unready: every
    host shares it, and reads of other models go on.
    """

    def __init__(self, services: Services) -> None:
        self.services = services

    @operation("Tell whether reads are up to date", {200: bodies.READINESS}, public=True,
               errors=(503,))
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            lags = self.services.projector.lags()
        except UNAVAILABLE_ERRORS as error:
            logger.warning("not ready: database unavailable", extra={"error": str(error)})
            self._unavailable(resp, "The database does not answer.")
            return
        bound = self.services.settings.ready_max_lag
        behind = [lag for lag in lags if lag.events > bound]
        if behind:
            reasons = "; ".join(
                f"read model {lag.name} is {lag.events} events behind the ledger" for lag in behind
            )
            self._unavailable(resp, f"{reasons.capitalize()}, more than {bound}.")
            return
        resp.media = {
            "status": "ready",
            "ledgerPosition": lags[0].head if lags else 0,
            "readModels": {
                lag.name: {"position": lag.position, "lag": lag.events,
                           "state": "failed" if lag.failed else "live"}
                for lag in lags
            },
        }

    @staticmethod
    def _unavailable(resp: falcon.Response, detail: str) -> None:
        resp.status = falcon.HTTP_503
        resp.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
        resp.media = {"detail": detail}
