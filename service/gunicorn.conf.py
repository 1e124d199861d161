"""gunicorn settings for tfship; every value comes from ``TFSHIP_*`` (see service/settings.py).

``tfship serve`` runs gunicorn with this file; it also works directly:
``gunicorn -c service/gunicorn.conf.py``.
"""

import os
import shutil
import tempfile
from pathlib import Path

from service.http_server import connection_counts
from service.models.worker_readiness import (
    WORKERS_DIR_VARIABLE,
    drift_file,
    ready_file,
    versions_file,
)
from service.settings import ServiceSettings

_settings = ServiceSettings.from_env()
_host = f"[{_settings.host}]" if ":" in _settings.host else _settings.host

wsgi_app = "service.wsgi:app"
bind = [f"{_host}:{_settings.rest_port}"]
workers = _settings.workers
# tfship's worker (service/http_server/): an event loop reads every connection and only
# whole requests reach the thread(s) that run models, so slow clients cost a connection,
# not a worker. TFSHIP_THREADS > 1 answers them in a pool (dynamic batching needs it).
threads = _settings.threads
# It reads its connection cap and timeouts from the TFSHIP_* settings, not gunicorn's.
worker_class = "service.http_server.buffering_worker.BufferingWorker"
# A worker silent this long is killed and replaced; model loading runs in a background
# thread, so a slow load does not trip it.
# Above the request timeout, which stops ONNX Runtime in time to answer 504 itself; this is
# the backstop for what cannot be stopped (TensorFlow).
timeout = max(60, int(_settings.request_timeout_seconds) + 30)
graceful_timeout = 30
proc_name = "tfship"
# The app writes the access log itself (JSON, with model, version and request id), so
# gunicorn's own is off: one line per request, not two.
accesslog = None
errorlog = "-"
# No preload: each worker loads its own models after the fork, so no runtime thread pool
# is ever copied into a child.
preload_app = False
# gunicorn >= 25 opens a control socket in $HOME by default: two servers on one machine
# would share it, and a read-only root filesystem refuses it. tfship does not use it.
control_socket_disable = True

_metrics_dir_created = None


def on_starting(server):
    """Prepare prometheus-client's multi-process folder before any worker imports it, the
    folder where workers report their readiness (service/models/worker_readiness.py), and
    the memory where they count their connections (service/http_server/)."""
    global _metrics_dir_created
    os.environ[WORKERS_DIR_VARIABLE] = tempfile.mkdtemp(prefix="tfship-workers-")
    connection_counts.create(_settings.workers)
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        # Files of an earlier run would be summed into this one's counters.
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
    else:
        path = tempfile.mkdtemp(prefix="tfship-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        _metrics_dir_created = path
    server.log.info("metrics: multi-process folder %s", path)


def post_worker_init(worker):
    """Start this worker's gRPC server, sharing the app's model registry.

    Imported here, in the worker, so the master never initialises gRPC before forking.
    A port that cannot be bound raises, and gunicorn stops: a boot error, not a restart loop.
    A gRPC stack that cannot even be built (a protobuf or grpcio that another install left
    broken) is logged and skipped: REST keeps serving.
    """
    settings = worker.wsgi.extensions["tfship.settings"]
    if settings.grpc_port == 0:
        return
    try:
        from service.protocols.grpc_server import GrpcServer

        grpc_server = GrpcServer(worker.wsgi.extensions["tfship.dataplane"], settings)
    except Exception as exc:
        worker.log.error(
            "gRPC is off in this worker, REST keeps serving: %s: %s", type(exc).__name__, exc
        )
        return
    worker.tfship_grpc = grpc_server
    worker.tfship_grpc.start()


def worker_exit(server, worker):
    grpc_server = getattr(worker, "tfship_grpc", None)
    if grpc_server is not None:
        grpc_server.stop(graceful_timeout)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    connection_counts.clear(worker.pid)
    # A worker killed before it could tidy up is not ready, whatever its file said.
    folder = Path(os.environ[WORKERS_DIR_VARIABLE])
    ready_file(folder, worker.pid).unlink(missing_ok=True)
    versions_file(folder, worker.pid).unlink(missing_ok=True)
    # Its drift window leaves the server's with it (service/drift/tracker.py).
    drift_file(folder, worker.pid).unlink(missing_ok=True)


def on_exit(server):
    shutil.rmtree(os.environ[WORKERS_DIR_VARIABLE], ignore_errors=True)
    if _metrics_dir_created:
        shutil.rmtree(_metrics_dir_created, ignore_errors=True)
