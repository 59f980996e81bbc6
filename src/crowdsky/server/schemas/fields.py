"""The text a client may send: constrained string types shared by every request schema.

PostgreSQL cannot store NUL, no database stores unpaired surrogates, and control
characters make no sense in a path, a name or a token. These types refuse such text
at the HTTP edge with a 400 naming the field (``ucloud_path (body): must not contain
NUL, ...``) instead of letting a database driver fail on it.
Each type's pattern is also written into the OpenAPI document, so clients and fuzzers
see the rule. Unpaired surrogates (a JSON body may spell them as ``\\ud800``) cannot be
encoded for any driver, so every pattern excludes them too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

#: Single-line text (paths, names): no C0 control characters, no DEL, no lone surrogates.
LINE_PATTERN = r"^[^\x00-\x1f\x7f\ud800-\udfff]*$"
#: Free text (error messages, reasons): anything but NUL and lone surrogates.
TEXT_PATTERN = r"^[^\x00\ud800-\udfff]*$"
#: Identifiers (worker ids): printable ASCII, spaces allowed.
NAME_PATTERN = r"^[\x20-\x7e]+$"
#: Secrets handed out by the server (lease and session tokens): printable ASCII, no spaces.
TOKEN_PATTERN = r"^[\x21-\x7e]+$"
#: The longest token a client may present (ours are 32 characters).
MAX_TOKEN_CHARS = 64
TOKEN_PROBLEM = f"must be 1 to {MAX_TOKEN_CHARS} printable ASCII characters without spaces"


@dataclass(frozen=True, slots=True)
class Allowed:
    """``Annotated`` metadata: the whole string must match ``pattern``, else ``problem``.

    Put it after any length constraint (``Annotated[str, Field(max_length=512), LINE]``)
    so that pydantic still reports lengths in its own words. The pattern is copied into
    the JSON schema.
    """

    pattern: str
    problem: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        compiled = re.compile(self.pattern)
        problem = self.problem

        def check(value: str) -> str:
            if compiled.fullmatch(value) is None:
                raise ValueError(problem)
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        result = handler(schema)
        result["pattern"] = self.pattern
        return result


LINE = Allowed(
    LINE_PATTERN, "must not contain NUL, other control characters or unpaired surrogates"
)
TEXT = Allowed(TEXT_PATTERN, "must not contain NUL characters or unpaired surrogates")
NAME = Allowed(NAME_PATTERN, "must be printable ASCII characters")
TOKEN = Allowed(TOKEN_PATTERN, TOKEN_PROBLEM)

Token = Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_CHARS), TOKEN]


def is_token(value: str) -> bool:
    """Whether ``value`` has the form of a token (for fields parsed outside pydantic)."""
    return 0 < len(value) <= MAX_TOKEN_CHARS and re.fullmatch(TOKEN_PATTERN, value) is not None
