"""Logging set-up: structlog events, JSON when not on a terminal (systemd), console on a TTY.

Library code calls ``structlog.get_logger(__name__)`` and logs named events with
bound context (``job_id``, ``worker_id``, ``chunk_key``); only entry points call
:func:`configure_logging`. Secrets are never logged.
"""

from __future__ import annotations

import logging
import sys

import structlog

_configured = False


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    """Route structlog and stdlib logging (uvicorn, httpx) through one renderer.

    Parameters
    ----------
    level
        Minimum level name (``DEBUG``, ``INFO``, ...).
    json
        Force JSON (True) or console (False) output; default: JSON unless stderr is a TTY.
    """
    global _configured
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO, which drowns a worker's own events.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _configured = True
