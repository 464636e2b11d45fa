"""gunicorn settings, read from the environment.

PORT                  port to listen on (default 8000)
BIND_HOST             address to listen on (default 127.0.0.1; 0.0.0.0 behind a load balancer)
WEB_CONCURRENCY       worker processes (default 2)
WEB_TIMEOUT           seconds a request may run before its worker is killed and replaced
                      (default 30); the database time bounds in api/config.py stay well under it
WEB_GRACEFUL_TIMEOUT  seconds workers get to finish their requests after SIGTERM (default 20)
WEB_KEEPALIVE         seconds an idle client connection stays open (default 5); keep it
                      above the load balancer's idle timeout
LEDGER_WEB_PROJECTOR  1 (default) runs a read-model runner on a thread of each worker, so
                      read models stay current without a projector process; 0 leaves
                      that to `release-ledger projections run`
PROMETHEUS_MULTIPROC_DIR  folder where workers share metrics; without it a temporary
                      folder is made at start and removed at exit. An existing folder is
                      emptied of metric files at start, so give each server its own.
"""

import glob
import logging
import os
import shutil
import tempfile

bind = f"{os.environ.get('BIND_HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("WEB_KEEPALIVE", "5"))
# The app factory runs in each worker after the fork, so no connection is shared.
preload_app = False
control_socket_disable = True
# The longest request line gunicorn allows; longer ones get its own 414 page.
limit_request_line = 8190
accesslog = None

# gunicorn's own lines go through the service's handler: JSON lines, or
# readable lines on a terminal.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"ledger": {"()": "api.logs.log_handler"}},
    "root": {"level": "INFO", "handlers": ["ledger"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["ledger"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
    },
}

# The multiprocess metrics folder must be in the environment before a
# worker imports prometheus_client, so it is set here, in the master.
_created_metrics_dir = None
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    for stale in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(stale)
else:
    _created_metrics_dir = tempfile.mkdtemp(prefix="ledger-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _created_metrics_dir

_logger = logging.getLogger("api.server")


def when_ready(server):
    _logger.info("server started", extra={"bind": bind, "workers": workers, "pid": os.getpid()})
    from pathlib import Path

    from api.blobs import LocalBlobStore
    from api.config import Settings

    removed = LocalBlobStore(Path(Settings.from_environ().blob_dir)).remove_abandoned_uploads()
    if removed:
        _logger.info("abandoned uploads removed", extra={"count": removed})


def post_worker_init(worker):
    _logger.info("worker started", extra={"worker_pid": worker.pid})
    if os.environ.get("LEDGER_WEB_PROJECTOR", "1") != "0":
        from api.config import Settings
        from api.projector import start_in_thread

        worker.read_model_runner = start_in_thread(Settings.from_environ())


def worker_exit(server, worker):
    runner = getattr(worker, "read_model_runner", None)
    if runner is not None:
        runner.stop()


def worker_abort(worker):
    _logger.error(
        "worker timed out; it is killed and replaced",
        extra={"worker_pid": worker.pid, "timeout_seconds": timeout},
    )


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    _logger.info("worker exited", extra={"worker_pid": worker.pid})


def on_exit(server):
    _logger.info("server stopped", extra={"pid": os.getpid()})
    if _created_metrics_dir:
        shutil.rmtree(_created_metrics_dir, ignore_errors=True)
