"""Accounts and credentials: users, API keys and worker tokens (shown once, stored hashed)."""

from __future__ import annotations

from crowdsky.accounts.workers import (
    IssuedWorkerToken,
    WorkerTokenError,
    WorkerTokenInfo,
    authenticate_worker_token,
    create_worker_token,
    list_worker_tokens,
    revoke_worker_token,
)

__all__ = [
    "IssuedWorkerToken",
    "WorkerTokenError",
    "WorkerTokenInfo",
    "authenticate_worker_token",
    "create_worker_token",
    "list_worker_tokens",
    "revoke_worker_token",
]
