"""Logging of the arq ``worker`` process (``arq --custom-log-dict ops.logconfig.ARQ``).

arq logs every job it runs at INFO, and the cron jobs (hold reconciler, P2P sweep)
run every few seconds: that is noise in a healthy exchange. Job runs are logged at
WARNING and above (failures, retries) unless ``HFTX_LOG_LEVEL=DEBUG``; hftx's own
loggers follow ``HFTX_LOG_LEVEL``.
"""

from __future__ import annotations

import os
from typing import Any

LEVEL = os.environ.get("HFTX_LOG_LEVEL", "INFO").upper()
JOB_LEVEL = "DEBUG" if LEVEL == "DEBUG" else "WARNING"

ARQ: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "arq": {"handlers": ["stderr"], "level": LEVEL, "propagate": False},
        "arq.worker": {"level": JOB_LEVEL},
        "arq.jobs": {"level": JOB_LEVEL},
        "hftx": {"handlers": ["stderr"], "level": LEVEL, "propagate": False},
    },
}
