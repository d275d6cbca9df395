"""Quiet third-party logging in the processes of the local Ray that training starts.

:func:`quiet_worker_logging` is the ``worker_process_setup_hook`` of that Ray (it runs in every worker
process, the Train controller's detached ``PlacementGroupCleaner`` included); the driver calls
:func:`quiet_driver_env` before ``ray.init``. Rank-0 progress (``recsys.training``) stays at INFO.
"""

from __future__ import annotations

import logging
import os

# logger name -> minimum level shown
QUIET_LOGGERS: dict[str, int] = {
    # Ray 2.5x Train V2: the detached PlacementGroupCleaner polls the State API every second, which needs the
    # dashboard; without it every poll logs "Failed to query Ray Train Controller actor state" (WARNING).
    # It only matters if the controller dies ungracefully, and ray.shutdown() removes its placement groups.
    "ray.train.v2._internal.execution.controller.placement_group_cleaner": logging.ERROR,
    # "Reporting training result ...", "Checkpoint successfully created ...", worker group start-up chatter.
    "ray.train": logging.WARNING,
    # "Failed loading Unischema ..." / "Recovering rowgroup information ...": expected for plain Parquet
    # (Delta) files that were not written by Petastorm's materialize_dataset.
    "petastorm": logging.WARNING,
}


class MinLevelFilter(logging.Filter):
    """Drops records below ``level``. A logger's filters survive ``logging.config.dictConfig`` (which Ray
    Train runs in its controller and workers, resetting ``ray.train`` to INFO); its level does not."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


def _named_loggers() -> dict[str, int]:
    names = dict(QUIET_LOGGERS)
    try:
        # Named by file path (logging.getLogger(__file__)), outside the ray.train hierarchy: it logs
        # "Reporting training result ..." for every ray.train.report.
        from ray.train.v2._internal.execution import context

        names[context.__file__] = logging.WARNING
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - other Ray versions
        pass
    return names


def quiet_loggers() -> None:
    for name, level in _named_loggers().items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(f, MinLevelFilter) for f in logger.filters):
            logger.addFilter(MinLevelFilter(level))


def quiet_driver_env() -> None:
    """Environment of the local Ray (inherited by its processes): no usage stats, no accelerator FutureWarning."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Opt in to Ray's future behaviour (do not override *_VISIBLE_DEVICES for workers without GPUs): silences
    # the "Tip: In future versions of Ray ..." FutureWarning printed by ray.init.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")


def quiet_worker_logging() -> None:
    """``runtime_env["worker_process_setup_hook"]``: runs once in each Ray worker process."""
    quiet_loggers()
    try:  # "Loading weights: 100%|...|" bars of transformers in the training workers
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
