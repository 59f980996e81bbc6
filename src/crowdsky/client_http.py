"""The signed-in HTTP connection of the user-side clients (upload, jobs, stacks).

:func:`signed_in_client` is the one place that turns a server URL and a user's
credentials (an API key as Bearer, else a user name and password as HTTP Basic)
into an :class:`httpx.Client`, so :mod:`crowdsky.upload_client` and
:mod:`crowdsky.user_client` sign in alike.
"""

from __future__ import annotations

import httpx

__all__ = ["signed_in_client"]


def signed_in_client(
    server_url: str,
    *,
    api_key: str | None,
    username: str | None,
    password: str | None,
    timeout: httpx.Timeout,
    transport: httpx.BaseTransport | None = None,
    headers: dict[str, str] | None = None,
    limits: httpx.Limits | None = None,
) -> httpx.Client:
    """An :class:`httpx.Client` on ``server_url`` (trailing ``/`` dropped), signed in.

    ``api_key`` wins when given; otherwise ``username`` and a ``password`` (which
    may be empty) sign in with HTTP Basic; with neither the client is anonymous
    and the server answers 401. ``headers`` are sent with every request; the
    caller's ``transport`` (tests: :class:`httpx.MockTransport`) is used as is.
    """
    sent = dict(headers or {})
    auth: httpx.Auth | None = None
    if api_key:
        sent["Authorization"] = f"Bearer {api_key}"
    elif username and password is not None:
        auth = httpx.BasicAuth(username, password)
    pool = {} if limits is None else {"limits": limits}  # None: httpx's own default pool
    return httpx.Client(
        base_url=server_url.rstrip("/"),
        headers=sent,
        auth=auth,
        timeout=timeout,
        transport=transport,
        **pool,
    )
