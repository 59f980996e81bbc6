"""The S3 connection shared by the object-store backends: URL parsing, options, the client.

``s3://bucket/prefix`` names where a store keeps its objects. Credentials, endpoint and
region come from :class:`S3Options`, which the settings fill from the standard AWS
variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``); anything left unset falls through to boto3's own chain
(``AWS_PROFILE``, ``~/.aws/credentials``, ``AWS_SHARED_CREDENTIALS_FILE``, instance
roles), so the store works exactly as every other S3 tool on the host does.
boto3 is imported only when an S3 store is built: the embedded default never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: Presigned URLs handed to workers live this long (seconds).
DEFAULT_PRESIGN_SECONDS = 300
#: Multipart part size: S3's minimum is 5 MiB for every part but the last.
DEFAULT_PART_BYTES = 8 * 1024 * 1024
MIN_PART_BYTES = 5 * 1024 * 1024
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
MAX_ATTEMPTS = 5


class S3Unavailable(RuntimeError):
    """boto3 is not installed (``pip install 'crowdsky[s3]'``) or the store URL is invalid."""


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (empty, or ending in ``/``)."""

    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, relative: str) -> str:
        """The object key of a store-relative path."""
        return self.prefix + relative.lstrip("/")


def parse_s3_url(url: str) -> S3Location:
    """Split ``s3://bucket/some/prefix`` into bucket and prefix (``some/prefix/``).

    Raises
    ------
    S3Unavailable
        Not an ``s3://`` URL, no bucket, or ``.``/``..`` segments in the prefix.

    Examples
    --------
    >>> parse_s3_url("s3://raws/crowdsky")
    S3Location(bucket='raws', prefix='crowdsky/')
    """
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise S3Unavailable(f"expected s3://bucket[/prefix], not {url!r}")
    segments = [s for s in parts.path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise S3Unavailable(f"the prefix of {url!r} must not contain '.' or '..'")
    prefix = "/".join(segments) + "/" if segments else ""
    return S3Location(parts.netloc, prefix)


@dataclass(frozen=True)
class S3Options:
    """How to reach the store; ``None`` leaves the value to boto3's defaults."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    presign_seconds: int = DEFAULT_PRESIGN_SECONDS
    part_bytes: int = DEFAULT_PART_BYTES
    max_connections: int = 32

    def describe(self) -> str:
        """Endpoint and region, never credentials."""
        return f"endpoint={self.endpoint_url or 'aws-default'} region={self.region or 'default'}"


def make_client(options: S3Options) -> Any:
    """A thread-safe boto3 S3 client with bounded timeouts and standard retries.

    Path-style addressing is used whenever an endpoint is given (SeaweedFS, MinIO,
    Ceph and most self-hosted gateways have no per-bucket DNS names).

    Raises
    ------
    S3Unavailable
        boto3 is not installed.
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise S3Unavailable("the S3 store needs boto3: pip install 'crowdsky[s3]'") from exc
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        max_pool_connections=options.max_connections,
        s3={"addressing_style": "path" if options.endpoint_url else "auto"},
        signature_version="s3v4",
    )
    session = boto3.session.Session(
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=options.secret_access_key,
        aws_session_token=options.session_token,
        region_name=options.region,
    )
    return session.client("s3", endpoint_url=options.endpoint_url, config=config)


def is_missing(exc: Exception) -> bool:
    """Whether a botocore error means "no such key" (404 on HEAD, NoSuchKey on GET)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("404", "NoSuchKey", "NotFound") or status == 404
