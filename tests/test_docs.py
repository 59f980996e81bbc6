"""The generated references in docs/ match the code, and every endpoint is documented."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen():  # type: ignore[no-untyped-def]
    return _generator()


def test_configuration_reference_is_current(gen) -> None:  # type: ignore[no-untyped-def]
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == gen.configuration_markdown(), (
        "docs/configuration.md is stale: run .venv/bin/python scripts/gen_docs.py"
    )


def test_api_reference_is_current_and_complete(gen) -> None:  # type: ignore[no-untyped-def]
    openapi = gen.openapi_document()
    committed = (ROOT / "docs" / "api.md").read_text()
    assert committed == gen.api_markdown(openapi), (
        "docs/api.md is stale: run .venv/bin/python scripts/gen_docs.py"
    )
    for path in openapi["paths"]:
        assert f"`{path}`" in committed
    # one entry per endpoint: an alias is named in its .php path's heading, not repeated
    headings = [line for line in committed.splitlines() if line.startswith("## ")]
    assert len(headings) == len(set(headings))
    for path in openapi["paths"]:
        if f"{path}.php" in openapi["paths"]:
            assert not any(h.split(" (also")[0].endswith(f"`{path}`") for h in headings), path
    assert "Body_" not in committed, "form bodies have readable names"


def test_every_spec_variable_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for name in (
        "API_BASE_URL",
        "WORKER_API_KEY",
        "UCLOUD_WEBDAV_URL",
        "UCLOUD_SHARE_TOKEN",
        "UCLOUD_BASE_PATH",
        "WORKER_ID",
        "POLL_INTERVAL",
        "WORK_DIR",
        "MAX_WORKERS",
        "CROWDSKY_DATABASE_URL",
        "CROWDSKY_DATA_DIR",
        "UPLOAD_EXPIRY_HOURS",
    ):
        assert f"`{name}`" in text, name


def test_command_line_variables_are_documented(gen) -> None:  # type: ignore[no-untyped-def]
    table = gen.cli_variables_table()
    for name, option in (
        ("CROWDSKY_SERVER", "crowdsky upload --server"),
        ("CROWDSKY_USER", "crowdsky upload --user"),
        ("CROWDSKY_PASSWORD", "crowdsky upload --password"),
        ("CROWDSKY_API_KEY", "crowdsky upload --api-key"),
        ("CROWDSKY_PASSWORD", "crowdsky user create --password"),
    ):
        assert f"| `{name}` | `{option}` |" in table, name


def test_every_variable_has_a_meaning(gen) -> None:  # type: ignore[no-untyped-def]
    for line in gen.configuration_markdown().splitlines():
        if line.startswith("| `"):
            assert not line.rstrip().endswith("|  |"), f"undocumented variable: {line}"
