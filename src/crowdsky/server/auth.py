"""Worker authentication: the shared WORKER_API_KEY (as in the spec) or a per-worker token.

Keys travel only in the ``Authorization: Bearer`` header, except for cleanup, which the
spec also allows with ``?key=`` for cron jobs. Comparison with the shared key is
constant-time; per-worker tokens are looked up by hash. A per-worker token reaches
only the jobs it claimed (see :class:`crowdsky.queue.WorkerCaller`);
``CROWDSKY_ALLOW_SHARED_WORKER_KEY=false`` refuses the shared key altogether.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from crowdsky.accounts import authenticate_worker_token


class NotAuthenticated(Exception):
    """Unauthorized."""


class TooManyAttempts(Exception):
    """Too many login attempts; try again later."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many login attempts; retry in {max(1, round(retry_after_s))} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class WorkerPrincipal:
    """Who is calling the worker API: the shared key, or a named per-worker token."""

    token_name: str | None

    @property
    def is_shared_key(self) -> bool:
        """True for the shared WORKER_API_KEY."""
        return self.token_name is None


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def check_worker_secret(request: Request, secret: str | None) -> WorkerPrincipal:
    """Validate a presented secret against the shared key, then per-worker tokens.

    The shared key is checked in the event loop (no I/O); only a per-worker token needs
    the database, in a worker thread.
    """
    if not secret:
        raise NotAuthenticated()
    state = request.app.state.crowdsky
    shared = state.settings.worker_api_key
    if (
        shared is not None
        and state.settings.allow_shared_worker_key
        and hmac.compare_digest(secret.encode("utf-8"), shared.get_secret_value().encode("utf-8"))
    ):
        return WorkerPrincipal(token_name=None)

    def lookup() -> str | None:
        with state.session_factory() as session:
            return authenticate_worker_token(session, secret)

    name = await run_in_threadpool(lookup)
    if name is None:
        raise NotAuthenticated()
    return WorkerPrincipal(token_name=name)


async def require_worker(request: Request) -> WorkerPrincipal:
    """Dependency: a valid worker credential in the Authorization header."""
    return await check_worker_secret(request, bearer_token(request))


async def require_worker_or_query_key(request: Request) -> WorkerPrincipal:
    """Dependency for cleanup only: the header, or ``?key=`` as the spec's cron example."""
    secret = bearer_token(request) or request.query_params.get("key")
    return await check_worker_secret(request, secret)
