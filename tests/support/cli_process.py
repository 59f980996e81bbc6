"""Run ``crowdsky`` as a user does: a child process, on pipes or on a real pseudo-terminal.

:func:`run_cli` runs the command with pipes (what a script sees); :class:`Terminal`
runs it on a pseudo-terminal from the standard library's :mod:`pty`, so the process
sees ``isatty()`` true, prompts for passwords and draws progress bars, and the test
reads what a person would see and types answers.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from crowdsky.launch import clean_environment

CLI = [sys.executable, "-m", "crowdsky"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def cli_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment whose cache folder (upload state) is under ``home``."""
    env = clean_environment({"XDG_CACHE_HOME": str(home / "cache"), "COLUMNS": "120"})
    env.update(extra or {})
    return env


@dataclass
class Completed:
    """A finished command: exit code and what it printed."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args: str, env: Mapping[str, str], cwd: Path, timeout_s: float = 120.0) -> Completed:
    """Run ``crowdsky ARGS`` with pipes and no standard input."""
    done = subprocess.run(
        [*CLI, *args],
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return Completed(done.returncode, done.stdout, done.stderr)


class Terminal:
    """``crowdsky ARGS`` on a pseudo-terminal (80 columns unless COLUMNS says otherwise)."""

    def __init__(self, *args: str, env: Mapping[str, str], cwd: Path) -> None:
        master, slave = pty.openpty()
        self._master = master
        self.process = subprocess.Popen(
            [*CLI, *args],
            env=dict(env),
            cwd=cwd,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            close_fds=True,
            start_new_session=True,
        )
        os.close(slave)
        self.raw = ""

    @property
    def text(self) -> str:
        """Everything shown so far, without colour and cursor codes."""
        return ANSI.sub("", self.raw)

    def _read(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self._master], [], [], timeout_s)
        if not ready:
            return True
        try:
            data = os.read(self._master, 65536)
        except OSError:  # the child closed the terminal
            return False
        if not data:
            return False
        self.raw += data.decode(errors="replace")
        return True

    def expect(self, pattern: str, timeout_s: float = 60.0) -> None:
        """Wait until ``pattern`` (a regular expression) appears on the screen."""
        deadline = time.monotonic() + timeout_s
        while not re.search(pattern, self.text):
            if time.monotonic() > deadline or not self._read(0.2):
                if re.search(pattern, self.text):
                    return
                raise AssertionError(f"{pattern!r} never appeared; the screen shows:\n{self.text}")

    def type(self, line: str) -> None:
        """Type a line and press Enter."""
        os.write(self._master, line.encode() + b"\r")

    def wait(self, timeout_s: float = 120.0) -> int:
        """Read until the process exits and closes the terminal; its exit code."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._read(0.2):
            finished = self.process.poll() is not None
            if finished and not select.select([self._master], [], [], 0)[0]:
                break
        try:
            return self.process.wait(max(1.0, deadline - time.monotonic()))
        finally:
            os.close(self._master)
