"""``crowdsky worker [--once]``: run a stacking worker (logic in :mod:`crowdsky.worker.main`)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``worker`` command to the CLI."""

    @app.command("worker")
    def worker(
        once: bool = typer.Option(
            False, "--once", help="Process one job and exit (exit codes below)."
        ),
        env_file: Path = typer.Option(Path(".env"), "--env-file", help="Dotenv file to read."),
        worker_id: str | None = typer.Option(None, "--worker-id", help="Overrides WORKER_ID."),
        max_workers: int | None = typer.Option(
            None, "--max-workers", help="Overrides MAX_WORKERS (parallel jobs)."
        ),
        work_dir: Path | None = typer.Option(None, "--work-dir", help="Overrides WORK_DIR."),
        poll_interval: float | None = typer.Option(
            None, "--poll-interval", help="Overrides POLL_INTERVAL (seconds)."
        ),
        shutdown_timeout: float | None = typer.Option(
            None, "--shutdown-timeout", help="Overrides SHUTDOWN_TIMEOUT (seconds)."
        ),
        log_level: str | None = typer.Option(None, "--log-level", help="Overrides LOG_LEVEL."),
        json_logs: bool | None = typer.Option(
            None, "--json-logs/--console-logs", help="Log format (default: JSON unless a TTY)."
        ),
    ) -> None:
        """Claim stacking jobs, stack them and publish the results (daemon or --once).

        Exit codes of --once:
        0 a job was processed (done, or reported failed)
        1 no job was available
        2 invalid configuration, or API_BASE_URL is not a worker API
        3 the server could not be reached or answered with errors
        4 the server refused WORKER_API_KEY
        """
        from crowdsky.worker.errors import ConfigError
        from crowdsky.worker.main import EXIT_CONFIG
        from crowdsky.worker.main import run as run_worker

        try:
            code = run_worker(
                once=once,
                env_file=env_file,
                log_level=log_level,
                json_logs=json_logs,
                worker_id=worker_id,
                max_workers=max_workers,
                work_dir=work_dir,
                poll_interval=poll_interval,
                shutdown_timeout=shutdown_timeout,
            )
        except ConfigError as exc:
            typer.echo(f"crowdsky worker: {exc}", err=True)
            raise typer.Exit(EXIT_CONFIG) from exc
        raise typer.Exit(code)
