"""gunicorn settings, read from the environment.

PORT               port to listen on (default 8000)
BIND_HOST          address to listen on (default 127.0.0.1; 0.0.0.0 behind a load balancer)
WEB_CONCURRENCY    worker processes (default 2)
WEB_TIMEOUT        seconds a request may run before its worker is restarted (default 30)
WEB_GRACEFUL_TIMEOUT  seconds workers get to finish requests on shutdown (default 20)
"""

import os

bind = f"{os.environ.get('BIND_HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
# The app factory runs in each worker after the fork, so no connection is shared.
preload_app = False
control_socket_disable = True
accesslog = None
