"""setup-service.sh renders systemd units that `systemd-analyze verify` accepts."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "setup-service.sh"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def render(tmp_path: Path) -> Path:
    out = tmp_path / "units"
    crowdsky = Path(sys.executable).parent / "crowdsky"
    result = subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "--dry-run",
            "--output",
            str(out),
            "--exec",
            str(crowdsky),
            "--user",
            getpass.getuser(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out


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
        assert "TimeoutStopSec=180" in text  # > SHUTDOWN_TIMEOUT (120) + hand-back grace
        assert "ProtectSystem=strict" in text and "NoNewPrivileges=yes" in text
    assert "--work-dir %C/crowdsky-worker" in single
    assert "--worker-id %H-%i --work-dir %C/crowdsky-worker/%i" in template


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
