"""Accounts and credentials: users, API keys and worker tokens (shown once, stored hashed)."""

from __future__ import annotations

from crowdsky.accounts.signing_keys import shared_signing_key
from crowdsky.accounts.users import (
    API_KEY_PREFIX,
    AccountError,
    ApiKeyInfo,
    IssuedApiKey,
    UserInfo,
    authenticate_api_key,
    authenticate_password,
    create_api_key,
    create_user,
    get_active_user,
    list_api_keys,
    list_users,
    login_fingerprint,
    revoke_api_key,
    set_user_active,
    throttle_name,
)
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
    "API_KEY_PREFIX",
    "AccountError",
    "ApiKeyInfo",
    "IssuedApiKey",
    "IssuedWorkerToken",
    "UserInfo",
    "WorkerTokenError",
    "WorkerTokenInfo",
    "authenticate_api_key",
    "authenticate_password",
    "authenticate_worker_token",
    "create_api_key",
    "create_user",
    "create_worker_token",
    "get_active_user",
    "list_api_keys",
    "list_users",
    "list_worker_tokens",
    "login_fingerprint",
    "revoke_api_key",
    "revoke_worker_token",
    "set_user_active",
    "shared_signing_key",
    "throttle_name",
]
