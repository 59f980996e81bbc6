"""``crowdsky stack``'s own command-line parser agrees with Typer's, or defers to it."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from crowdsky.cli import build_app, stack


def _typer_values(args: list[str]) -> dict[str, object]:
    group = typer.main.get_command(build_app(("stack",)))
    command = group.commands["stack"]  # type: ignore[attr-defined]
    ctx = command.make_context("stack", list(args))
    return dict(ctx.params)


@pytest.mark.parametrize(
    "args",
    [
        ["a.fit", "-o", "out.fits"],
        ["a.fit", "b.fit", "--output", "out.fits", "--json"],
        ["-o", "out.fits", "a.fit", "--method=median", "--sigma-clip", "2.5"],
        ["a.fit", "-o", "x.fits", "--sigma-clip", "-1", "--threads", "3"],
        ["a.fit", "-o", "x.fits", "--memory-limit-mb=512", "--thumbnail", "t.png"],
        ["a.fit", "-o", "x.fits", "--thumbnail-size", "1024", "--stretch", "linear"],
        ["-o", "x.fits", "--", "-odd-name.fit", "b.fit"],
        ["a.fit", "-o", "first.fits", "-o", "second.fits", "--json", "--json"],
    ],
)
def test_both_parsers_give_the_same_values(args: list[str]) -> None:
    fast = stack.parse_fast(args)
    assert fast is not None
    assert fast == _typer_values(args)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["a.fit"],  # no output: Typer says what is missing
        ["-o", "x.fits"],  # no input
        ["a.fit", "-o"],
        ["a.fit", "-o", "x.fits", "--sigma-clip", "lots"],
        ["a.fit", "-o", "x.fits", "--thread", "2"],  # an abbreviation
        ["a.fit", "-ox.fits"],
        ["a.fit", "-o", "x.fits", "--json=yes"],
        ["a.fit", "-o", "x.fits", "--unknown"],
    ],
)
def test_anything_unusual_goes_to_typer(args: list[str]) -> None:
    assert stack.parse_fast(args) is None


def test_every_typer_option_is_known() -> None:
    group = typer.main.get_command(build_app(("stack",)))
    command = group.commands["stack"]  # type: ignore[attr-defined]
    flags = {flag for param in command.params for flag in param.opts if flag.startswith("-")}
    assert flags == set(stack.FAST_OPTIONS)


def test_the_fast_path_exits_like_typer(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        stack.run_fast([str(tmp_path / "missing.fit"), "-o", str(tmp_path / "out.fits")])
    assert exited.value.code == 2
    assert stack.run_fast(["--help"]) is False
