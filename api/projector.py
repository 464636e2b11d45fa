"""`release-ledger projections run`: the Procfile's projector process."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Sequence
from types import FrameType

from api.config import Settings
from api.logs import configure_logging
from api.services import RELEASE_MODELS, Services
from domain.application import ReleaseLedger
from domain.errors import InvalidRequestError
from projections.projection import Projection
from projections.registry import all_projections
from projections.runner import Runner
from projections.runner_locks import FileRunnerLocks, PostgresRunnerLocks, RunnerLocks

# The event store NOTIFYs this channel, its events table's name, on every append.
EVENTS_CHANNEL = f"{ReleaseLedger.name.lower()}_events"


def run_projections(services: Services, names: Sequence[str]) -> None:
    """Keep the named read models, default all, up to date until SIGTERM or SIGINT."""
    configure_logging()
    runner = Runner(
        lambda: services.projector,
        runner_locks(services),
        select_projections(all_projections(), names),
        runner_id=f"{socket.gethostname()}:{os.getpid()}",
        poll_interval=services.settings.projector_poll_interval,
        first=RELEASE_MODELS,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runner.run()


def start_in_thread(settings: Settings) -> Runner:
    """Run every read model's runner on a daemon thread of this process, and return it.

    Each gunicorn worker starts one, so read models stay current even
    where no projector process runs. The runner locks let one runner at a
    time apply events to each read model, whichever process it lives in,
    and the others stand by. Call `stop()` on the result to end it.
    """
    services = Services(settings)
    runner = Runner(
        lambda: services.projector,
        runner_locks(services),
        all_projections(),
        runner_id=f"{socket.gethostname()}:{os.getpid()}:web",
        poll_interval=settings.projector_poll_interval,
        first=RELEASE_MODELS,
    )

    def run() -> None:
        try:
            runner.run()
        except Exception:
            # Runner.run has logged the failure. This process goes on
            # serving, and another runner takes over the read models.
            pass
        finally:
            services.close()

    threading.Thread(target=run, name="read-model-runner", daemon=True).start()
    return runner


def runner_locks(services: Services) -> RunnerLocks:
    settings = services.settings
    if settings.backend == "sqlite":
        return FileRunnerLocks(settings.sqlite_path)
    postgres = settings.postgres
    return PostgresRunnerLocks(postgres.conninfo, postgres.schema, EVENTS_CHANNEL)


def select_projections(projections: Sequence[Projection], names: Sequence[str]
                       ) -> list[Projection]:
    if not names:
        return list(projections)
    by_name = {projection.name: projection for projection in projections}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise InvalidRequestError(
            f"Unknown read model {', '.join(unknown)}; known: {', '.join(by_name)}."
        )
    return [by_name[name] for name in dict.fromkeys(names)]
