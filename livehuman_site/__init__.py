"""LiveHuman Django project: settings, routing, Celery app and tenancy."""

import os

# Many sessions share a few cores and every per-frame numpy call is small: a BLAS thread pool costs more than it
# gains there (the Wav2Lip mel of 3 s of audio took 25 ms with OpenBLAS threads, 6 ms without). Set before numpy
# is imported; an operator's own value wins. Torch keeps its own thread pool.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .celery import app as celery_app

__all__ = ("celery_app",)
