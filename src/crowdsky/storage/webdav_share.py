"""Addressing a Nextcloud public link share: its root URL, credentials and encoded paths.

Shared by the worker, which writes results to the share, and the server, which reads
them back for downloads. The rules are Nextcloud's (``original-system.md`` §10): a
legacy ``.../public.php/webdav`` URL takes the share token as the Basic user name; a
Nextcloud >= 29 ``.../public.php/dav/files/<token>`` URL holds the token in its path
and needs credentials only for a protected share (``anonymous:<password>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

LEGACY_MARKER = "/public.php/webdav"
V2_MARKER = "/public.php/dav/files"


class ShareConfigError(ValueError):
    """The share URL and token do not name a usable share."""


@dataclass(frozen=True)
class ShareEndpoint:
    """Where and how to talk to one share: the collection URL and the Basic credentials."""

    base_url: str
    auth: tuple[str, str] | None
    flavour: str  # "legacy", "v2" or "generic"


def resolve_share_endpoint(url: str, token: str | None, password: str | None) -> ShareEndpoint:
    """Work out the share's root URL and credentials from the configured URL.

    Parameters
    ----------
    url
        ``UCLOUD_WEBDAV_URL``.
    token
        ``UCLOUD_SHARE_TOKEN`` (may be omitted for a v2 URL that already holds it).
    password
        ``UCLOUD_SHARE_PASSWORD``; ``None`` or empty for an unprotected share.

    Raises
    ------
    ShareConfigError
        The URL needs a token and none was given, or the two tokens disagree.
    """
    parts = urlsplit(url.rstrip("/"))
    path = parts.path
    password = password or ""
    if V2_MARKER in path:
        head, _, tail = path.partition(V2_MARKER)
        path_token = tail.strip("/").split("/", 1)[0] or None
        if path_token and token and path_token != token:
            raise ShareConfigError(
                "UCLOUD_SHARE_TOKEN does not match the token in UCLOUD_WEBDAV_URL "
                "(.../public.php/dav/files/<token>)"
            )
        the_token = path_token or token
        if not the_token:
            raise ShareConfigError("UCLOUD_SHARE_TOKEN is missing (needed for the WebDAV store)")
        root = f"{head}{V2_MARKER}/{quote(the_token, safe='')}"
        base = urlunsplit((parts.scheme, parts.netloc, root, "", ""))
        # Any user name works for a protected v2 share; Nextcloud's own client sends this.
        return ShareEndpoint(base, ("anonymous", password) if password else None, "v2")
    flavour = "legacy" if path.endswith(LEGACY_MARKER) or LEGACY_MARKER + "/" in path else "generic"
    if token is None:
        if flavour == "legacy":
            raise ShareConfigError("UCLOUD_SHARE_TOKEN is missing (needed for the WebDAV store)")
        return ShareEndpoint(urlunsplit(parts), None, flavour)
    return ShareEndpoint(urlunsplit(parts), (token, password), flavour)


def encode_remote_path(remote_path: str) -> str:
    """Percent-encode each segment of a share path (``+`` of chunk keys included).

    ``+`` is legal in a URL path, but proxies and PHP treat it as a space in some
    places, so it is always sent as ``%2B``.

    Raises
    ------
    ValueError
        A ``.`` or ``..`` segment.
    """
    segments = [s for s in remote_path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise ValueError(f"refusing a path with '.' or '..' segments: {remote_path!r}")
    return "/".join(quote(s, safe="") for s in segments)


def token_in_share_url(url: str) -> str | None:
    """The share token embedded in a ``.../public.php/dav/files/<token>`` URL, if any."""
    marker = V2_MARKER + "/"
    path = urlsplit(url).path
    if marker not in path:
        return None
    token = path.split(marker, 1)[1].strip("/").split("/", 1)[0]
    return token or None
