"""setup-service.sh renders systemd units that `systemd-analyze verify` accepts and
that give the worker what it needs under the sandbox (a writable numba cache, a stop
timeout longer than its shutdown bound)."""

from __future__ import annotations

import getpass
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
from typer.testing import CliRunner

from crowdsky.cli import app
from crowdsky.worker.config import DEFAULT_SHUTDOWN_TIMEOUT_SECONDS
from crowdsky.worker.main import HANDBACK_GRACE_SECONDS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "setup-service.sh"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
UNITS = ("crowdsky-worker.service", "crowdsky-worker@.service")


def run_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """setup-service.sh --dry-run into ``tmp_path/units`` (no settings file unless given)."""
    crowdsky = Path(sys.executable).parent / "crowdsky"
    return subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "--dry-run",
            "--output",
            str(tmp_path / "units"),
            "--exec",
            str(crowdsky),
            "--user",
            getpass.getuser(),
            "--env-file",
            str(tmp_path / "no-settings.env"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def render(tmp_path: Path, *args: str) -> Path:
    result = run_script(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    return tmp_path / "units"


def directives(text: str, name: str) -> list[str]:
    """The values of every ``name=`` line of a unit file."""
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{name}=")]


def environment(text: str) -> dict[str, str]:
    """The variables set by ``Environment=`` lines (one assignment per line)."""
    return dict(line.split("=", 1) for line in directives(text, "Environment"))


def exec_arguments(text: str) -> list[str]:
    """ExecStart's arguments after the executable, with the specifiers filled in."""
    (line,) = directives(text, "ExecStart")
    filled = line.replace("%C", "/var/cache").replace("%H", "host").replace("%i", "2")
    return shlex.split(filled)[1:]


def verify(unit: Path) -> str:
    """Run systemd-analyze verify; return its complaints about this unit (empty = clean)."""
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=unit.parent,
    )
    # verify exits 0 even for ignored bad directives; it names the file in each complaint.
    complaints = [line for line in result.stderr.splitlines() if unit.name.split("@")[0] in line]
    if result.returncode != 0:
        complaints.append(f"exit code {result.returncode}: {result.stderr.strip()}")
    return "\n".join(complaints)


def test_dry_run_writes_both_units_with_absolute_paths(tmp_path: Path) -> None:
    out = render(tmp_path)
    single = (out / "crowdsky-worker.service").read_text()
    template = (out / "crowdsky-worker@.service").read_text()
    for text in (single, template):
        assert "@" not in text.replace("%i", "").replace("worker@", "").replace("{1..4}", "")
        exec_line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
        assert exec_line.split("=", 1)[1].startswith("/")
        assert "Restart=on-failure" in text
        assert "EnvironmentFile=-/etc/crowdsky/worker.env" in text
        assert "TimeoutStopSec=180" in text  # SHUTDOWN_TIMEOUT (120) + hand-back grace + margin
        assert "ProtectSystem=strict" in text and "NoNewPrivileges=yes" in text
    assert "--work-dir %C/crowdsky-worker" in single
    assert "--worker-id %H-%i --work-dir %C/crowdsky-worker/%i" in template


def test_units_give_the_worker_a_writable_numba_cache(tmp_path: Path) -> None:
    # ProtectSystem=strict and ProtectHome=read-only leave numba no place to cache its
    # kernels (the package folder, ~/.cache): NUMBA_CACHE_DIR must point into a folder
    # systemd creates writable for the service (CacheDirectory=, under %C).
    out = render(tmp_path)
    for name in UNITS:
        text = (out / name).read_text()
        assert "ProtectSystem=strict" in text
        cache_dir = environment(text).get("NUMBA_CACHE_DIR")
        assert cache_dir is not None, f"{name} sets no NUMBA_CACHE_DIR"
        assert cache_dir.startswith("%C/"), cache_dir
        inside = PurePosixPath(cache_dir.removeprefix("%C/"))
        writable = [PurePosixPath(d) for v in directives(text, "CacheDirectory") for d in v.split()]
        assert any(inside == d or d in inside.parents for d in writable), (name, writable)
    # the instances share one cache (numba writes it atomically), so a kernel compiled
    # by one instance is loaded by the others
    template = (out / "crowdsky-worker@.service").read_text()
    assert "%i" not in environment(template)["NUMBA_CACHE_DIR"]


def test_stop_timeout_follows_the_configured_shutdown_timeout(tmp_path: Path) -> None:
    settings = tmp_path / "worker.env"
    settings.write_text('API_BASE_URL=http://x/api\nSHUTDOWN_TIMEOUT = "600"  # ten minutes\n')
    cases = [
        ((), DEFAULT_SHUTDOWN_TIMEOUT_SECONDS),  # no settings file: the worker's default
        (("--env-file", str(settings)), 600.0),
        (("--env-file", str(settings), "--shutdown-timeout", "7.5"), 7.5),  # the option wins
    ]
    for args, shutdown_timeout in cases:
        out = render(tmp_path, *args)
        for name in UNITS:
            text = (out / name).read_text()
            arguments = exec_arguments(text)
            assert float(arguments[arguments.index("--shutdown-timeout") + 1]) == shutdown_timeout
            (stop,) = directives(text, "TimeoutStopSec")
            # systemd must not SIGKILL before running jobs are handed back
            assert int(stop) >= shutdown_timeout + HANDBACK_GRACE_SECONDS + 30, (args, stop)
    settings.write_text("SHUTDOWN_TIMEOUT=two minutes\n")
    result = run_script(tmp_path, "--env-file", str(settings))
    assert result.returncode != 0
    assert "SHUTDOWN_TIMEOUT must be a number of seconds" in result.stderr


def test_the_worker_accepts_the_units_command_line(tmp_path: Path, clean_env: Path) -> None:
    out = render(tmp_path, "--shutdown-timeout", "90")
    for name in UNITS:
        arguments = exec_arguments((out / name).read_text())
        assert arguments[0] == "worker"
        # no configuration at all: the options parse, then settings fail (exit 2, named)
        result = CliRunner().invoke(
            app, [*arguments, "--once", "--env-file", str(clean_env / "missing.env")]
        )
        assert result.exit_code == 2, result.output
        assert "API_BASE_URL is missing" in result.output


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed here")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    out = render(tmp_path)
    assert verify(out / "crowdsky-worker.service") == ""
    instance = out / "crowdsky-worker@2.service"
    instance.symlink_to(out / "crowdsky-worker@.service")
    assert verify(instance) == ""


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed here")
def test_verify_catches_a_bad_directive(tmp_path: Path) -> None:
    out = render(tmp_path)
    bad = out / "crowdsky-worker.service"
    bad.write_text(bad.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    assert "restart specifier" in verify(bad)


def test_install_mode_refuses_a_missing_executable(tmp_path: Path) -> None:
    # Fails in argument checking, before anything on the system is touched (even as root).
    result = subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "--exec",
            str(tmp_path / "no-such-crowdsky"),
            "--env-file",
            str(tmp_path / "missing.env"),
            "--unit-dir",
            str(tmp_path),
            "--user",
            getpass.getuser(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "not executable" in result.stderr or "No such file" in result.stderr
