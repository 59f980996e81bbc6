"""A real WebDAV server on loopback that behaves like a Nextcloud public link share.

:class:`WebDavServer` starts wsgidav (served by cheroot) in a child process on
127.0.0.1 and a free port, with both Nextcloud endpoints:

* ``/public.php/webdav`` (legacy): HTTP Basic, user = share token, password = the
  share password (empty by default);
* ``/public.php/dav/files/<token>`` (Nextcloud >= 29): anonymous, or
  ``anonymous:<password>`` when ``v2_password`` is given. wsgidav lower-cases
  routes, so the route is the parent ``/public.php/dav/files`` and the mixed-case
  token is a sub-folder.

A small WSGI middleware in front adds what wsgidav lacks: it answers 401 when
``X-Requested-With: XMLHttpRequest`` is missing (legacy: every request; v2: every
non-GET request), records every request (method, path, headers of interest) in a
JSON-lines file, and obeys a control file for failure tests: ``ok``, ``507``
(PUT and MKCOL answer 507), ``503`` (everything answers 503) or ``flaky:N:STATUS``
(the next N requests answer STATUS, then normal service). :meth:`WebDavServer.stop`
makes the share "down" (connection refused); :meth:`WebDavServer.start` brings it
back on the same port.

Run as a script (``python webdav_server.py --serve ...``) it is the child process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_TOKEN = "TestShareToken9Xy"
LEGACY_ROUTE = "/public.php/webdav"
V2_ROUTE = "/public.php/dav/files"
START_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebDavServer:
    """Launcher and remote control of one wsgidav child process.

    Parameters
    ----------
    root
        Scratch folder: share contents, control file and request log live here.
    token
        The share token (mixed case on purpose).
    password
        Share password on the legacy endpoint ('' = an unprotected share).
    v2_password
        When set, the v2 endpoint requires ``anonymous:<v2_password>``.
    """

    def __init__(
        self,
        root: Path,
        *,
        token: str = DEFAULT_TOKEN,
        password: str = "",
        v2_password: str | None = None,
        port: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.token = token
        self.password = password
        self.v2_password = v2_password
        self.port = port or free_port()
        # A port picked by us may be taken by someone else before the child binds it;
        # then start() picks another (only before the first successful start).
        self._may_repick_port = port is None
        self.legacy_dir = self.root / "legacy-share"
        self.v2_dir = self.root / "v2-root" / token
        self.control_file = self.root / "control"
        self.log_file = self.root / "requests.jsonl"
        self._process: subprocess.Popen[bytes] | None = None
        self.legacy_dir.mkdir(parents=True, exist_ok=True)
        self.v2_dir.mkdir(parents=True, exist_ok=True)
        self.set_mode("ok")

    # -- addresses ------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def legacy_url(self) -> str:
        """The legacy endpoint as a worker's ``UCLOUD_WEBDAV_URL``."""
        return f"{self.base_url}{LEGACY_ROUTE}"

    @property
    def v2_url(self) -> str:
        """The Nextcloud >= 29 endpoint, token included."""
        return f"{self.base_url}{V2_ROUTE}/{self.token}"

    # -- process control ------------------------------------------------------

    def start(self) -> WebDavServer:
        """Start the child process and wait until it accepts connections."""
        if self._process is not None and self._process.poll() is None:
            return self
        for attempt in range(3):
            try:
                self._start_once()
            except RuntimeError:
                if not self._may_repick_port or attempt == 2:
                    raise
                self.port = free_port()
                continue
            self._may_repick_port = False  # restarts must keep the URL workers know
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self) -> None:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            "--root",
            str(self.root),
            "--port",
            str(self.port),
            "--token",
            self.token,
            "--password",
            self.password,
        ]
        if self.v2_password is not None:
            cmd += ["--v2-password", self.v2_password]
        stderr = open(self.root / "server.log", "ab")  # noqa: SIM115 - lives with the process
        self._process = subprocess.Popen(cmd, stdout=stderr, stderr=stderr)
        stderr.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"wsgidav exited with {self._process.returncode}: "
                    + (self.root / "server.log").read_text(errors="replace")[-2000:]
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"wsgidav did not start on port {self.port}")

    def stop(self) -> None:
        """Stop the child process: the share is now 'down' (connection refused)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> WebDavServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- failure switch and request log ---------------------------------------

    def set_mode(self, mode: str) -> None:
        """``ok``, ``507``, ``503`` or ``flaky:N:STATUS`` (see the module docstring)."""
        tmp = self.control_file.with_suffix(".tmp")
        tmp.write_text(mode)
        os.replace(tmp, self.control_file)

    def requests(self) -> list[dict[str, Any]]:
        """Every request seen so far: method, path, x_requested_with, auth_user, status."""
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines() if line]

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self.log_file.unlink(missing_ok=True)

    def share_file(self, remote_path: str, *, flavour: str = "legacy") -> Path:
        """The file behind a share path on disk (to check what a worker uploaded)."""
        base = self.legacy_dir if flavour == "legacy" else self.v2_dir
        return base.joinpath(*[p for p in remote_path.split("/") if p])


@contextlib.contextmanager
def running_webdav_server(root: Path, **kwargs: Any) -> Iterator[WebDavServer]:
    """Context manager: a started :class:`WebDavServer` that is stopped afterwards."""
    server = WebDavServer(root, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------
# child process
# ---------------------------------------------------------------------------


class NextcloudEmulation:
    """WSGI middleware: Nextcloud's X-Requested-With rule, failure modes, request log."""

    def __init__(self, app: Any, control_file: Path, log_file: Path) -> None:
        self.app = app
        self.control_file = control_file
        self.log_file = log_file

    def _mode(self) -> str:
        try:
            return self.control_file.read_text().strip() or "ok"
        except OSError:
            return "ok"

    def _record(self, environ: dict[str, Any], status: int | str) -> None:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        user = None
        if auth.lower().startswith("basic "):
            import base64

            with contextlib.suppress(ValueError):
                user = base64.b64decode(auth[6:]).decode().split(":", 1)[0]
        entry = {
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", ""),
            "raw_path": environ.get("REQUEST_URI", ""),
            "x_requested_with": environ.get("HTTP_X_REQUESTED_WITH"),
            "auth_user": user,
            "content_length": environ.get("CONTENT_LENGTH"),
            "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
            "status": status,
        }
        with open(self.log_file, "a") as fh:
            fh.write(json.dumps(entry) + "\n")

    @staticmethod
    def _drain(environ: dict[str, Any]) -> None:
        # Answer only after reading the body, so the client sees our status code
        # rather than a reset connection.
        stream = environ.get("wsgi.input")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        while stream is not None and length > 0:
            chunk = stream.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _reply(self, environ: dict[str, Any], start_response: Any, status: int) -> list[bytes]:
        self._drain(environ)
        self._record(environ, status)
        reasons = {401: "Unauthorized", 503: "Service Unavailable", 507: "Insufficient Storage"}
        body = f"<error>{status}</error>".encode()
        headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
        start_response(f"{status} {reasons.get(status, 'Error')}", headers)
        return [body]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        mode = self._mode()
        if mode.startswith("flaky:"):
            _, count, status = mode.split(":")
            remaining = int(count)
            if remaining > 0:
                self.control_file.write_text(
                    f"flaky:{remaining - 1}:{status}" if remaining > 1 else "ok"
                )
                return self._reply(environ, start_response, int(status))
        if mode == "503":
            return self._reply(environ, start_response, 503)
        if mode == "507" and method in ("PUT", "MKCOL"):
            return self._reply(environ, start_response, 507)
        has_header = environ.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest"
        legacy = path.startswith(LEGACY_ROUTE)
        v2 = path.startswith(V2_ROUTE)
        if not has_header and (legacy or (v2 and method != "GET")):
            return self._reply(environ, start_response, 401)

        def recording_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            self._record(environ, int(status.split(" ", 1)[0]))
            return start_response(status, headers, exc_info)

        return self.app(environ, recording_start_response)


def _serve(args: argparse.Namespace) -> None:
    from cheroot import wsgi
    from wsgidav.wsgidav_app import WsgiDAVApp

    root = Path(args.root)
    legacy_dir = root / "legacy-share"
    v2_root = root / "v2-root"
    v2_users: Any = True
    if args.v2_password is not None:
        v2_users = {"anonymous": {"password": args.v2_password}}
    config = {
        "host": "127.0.0.1",
        "port": args.port,
        "provider_mapping": {LEGACY_ROUTE: str(legacy_dir), V2_ROUTE: str(v2_root)},
        "http_authenticator": {
            "domain_controller": None,
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
        },
        "simple_dc": {
            "user_mapping": {
                LEGACY_ROUTE: {args.token: {"password": args.password}},
                V2_ROUTE: v2_users,
            }
        },
        "verbose": 1,
        "logging": {"enable": False},
        "property_manager": True,
        "lock_storage": True,
    }
    app = NextcloudEmulation(WsgiDAVApp(config), root / "control", root / "requests.jsonl")
    server = wsgi.Server(("127.0.0.1", args.port), app, numthreads=16)

    def stop(signum: int, frame: Any) -> None:
        # cheroot's graceful stop waits ~10 s for idle keep-alive connections; a test
        # share has nothing to flush (every PUT is complete on disk), so leave now.
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.start()
    except KeyboardInterrupt:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    """Child-process entry point (``--serve``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--password", default="")
    parser.add_argument("--v2-password", default=None)
    _serve(parser.parse_args(argv))


if __name__ == "__main__":
    main()
