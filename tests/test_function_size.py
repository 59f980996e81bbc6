"""No function of ``src/crowdsky`` is longer than 80 lines or takes more than 8 parameters.

A long function is read in pieces and a long parameter list hides a missing record
(style.md §8). Lines count from ``def`` to the function's last line; parameters are
positional, keyword-only, ``*args`` and ``**kwargs``, without ``self`` or ``cls``.
A function may stay over a limit when it says why:

- a comment directly above its ``def`` (or its first decorator) that starts with
  ``# long:`` and gives the reason (either limit), e.g. an Alembic migration's
  ``upgrade()``;
- ``# noqa: PLR0913`` and a reason on its ``def`` line (the parameter limit only, as
  ruff's own rule), e.g. a Typer command with one parameter per option.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "crowdsky"
MAX_LINES = 80
MAX_PARAMETERS = 8
LONG_COMMENT = re.compile(r"^\s*# long:\s*\S")
NOQA = re.compile(r"# noqa:\s*(?P<codes>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)(?P<reason>.*)")

#: Offenders allowed without a comment of their own: none (an entry that is no longer
#: an offender fails the test, so the list cannot go stale).
ALLOWED: frozenset[str] = frozenset()

Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Offender:
    """A function over a limit that does not say why."""

    name: str
    lines: int
    parameters: int

    def __str__(self) -> str:
        return f"{self.name} ({self.lines} lines, {self.parameters} parameters)"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, Function]]:
    """Every function and method, by qualified name (``Class.method``, ``outer.inner``)."""
    found: list[tuple[str, Function]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            found.append((name, node))
            found.extend(_functions(node, f"{name}."))
        elif isinstance(node, ast.ClassDef):
            found.extend(_functions(node, f"{prefix}{node.name}."))
        else:
            found.extend(_functions(node, prefix))
    return found


def count_parameters(function: Function) -> int:
    """Positional, keyword-only, ``*args`` and ``**kwargs``, without ``self`` / ``cls``."""
    arguments = function.args
    names = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return len(names) + (arguments.vararg is not None) + (arguments.kwarg is not None)


def count_lines(function: Function) -> int:
    """From ``def`` to the function's last line (decorators not counted)."""
    return (function.end_lineno or function.lineno) - function.lineno + 1


def is_excused(function: Function, lines: list[str]) -> tuple[bool, bool]:
    """Whether the function explains its length, and its parameter count."""
    first = min([function.lineno, *(d.lineno for d in function.decorator_list)])
    above = lines[first - 2] if first >= 2 else ""
    long = LONG_COMMENT.match(above) is not None
    return long, long or _has_parameter_noqa(lines[function.lineno - 1])


def _has_parameter_noqa(line: str) -> bool:
    """``# noqa: PLR0913`` (possibly among other codes) followed by a reason."""
    found = NOQA.search(line)
    if found is None:
        return False
    codes = {code.strip() for code in found["codes"].split(",")}
    return "PLR0913" in codes and any(c.isalnum() for c in found["reason"])


def find_offenders(root: Path = SRC) -> list[Offender]:
    """Functions over a limit, in module order, without a reason given in the code."""
    offenders = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        module = _module_name(path, root)
        for name, function in _functions(ast.parse(text, filename=str(path))):
            n_lines, n_parameters = count_lines(function), count_parameters(function)
            long_ok, parameters_ok = is_excused(function, lines)
            too_long = n_lines > MAX_LINES and not long_ok
            too_many = n_parameters > MAX_PARAMETERS and not parameters_ok
            if too_long or too_many:
                offenders.append(Offender(f"{module}:{name}", n_lines, n_parameters))
    return offenders


def test_functions_are_short_and_take_few_parameters() -> None:
    found = [o for o in find_offenders() if o.name not in ALLOWED]
    assert not found, (
        f"over {MAX_LINES} lines or {MAX_PARAMETERS} parameters: split the function or "
        "group its parameters in a record, or say why in a '# long: ...' comment above "
        "its def:\n  " + "\n  ".join(str(o) for o in found)
    )


def test_the_allow_list_holds_only_current_offenders() -> None:
    current = {o.name for o in find_offenders()}
    stale = sorted(ALLOWED - current)
    assert not stale, (
        "no longer over a limit (or gone): remove from ALLOWED in "
        "tests/test_function_size.py:\n  " + "\n  ".join(stale)
    )


def test_the_rules_read_the_code_as_described(tmp_path: Path) -> None:
    package = tmp_path / "crowdsky"
    package.mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    many = ", ".join(f"p{i}" for i in range(MAX_PARAMETERS + 1))
    (package / "sample.py").write_text(
        f"def long_one():\n{body}\n"
        f"# long: a migration lists its tables\ndef long_excused():\n{body}\n"
        f"class Thing:\n    def method(self, {many}):\n        pass\n\n"
        f"    def few(self, {', '.join(f'p{i}' for i in range(MAX_PARAMETERS))}):\n"
        "        pass\n\n"
        f"def noqa_one({many}):  # noqa: PLR0913 (one parameter per option)\n    pass\n\n"
        f"def bare_noqa({many}):  # noqa: PLR0913\n    pass\n\n"
        f"def codes_only({many}):  # noqa: PLR0913, C901\n    pass\n\n"
        "def outer():\n"
        f"    def inner(*args, **kwargs):\n        pass\n"
    )
    found = {o.name: o for o in find_offenders(package)}
    assert set(found) == {
        "crowdsky.sample:long_one",
        "crowdsky.sample:Thing.method",
        "crowdsky.sample:bare_noqa",
        "crowdsky.sample:codes_only",
    }
    assert found["crowdsky.sample:long_one"].lines == MAX_LINES + 1
    assert found["crowdsky.sample:Thing.method"].parameters == MAX_PARAMETERS + 1
