"""The password rule of the web app's register and change-password forms."""

from __future__ import annotations

MIN_CHARS = 10
LONG_ENOUGH = 16
MIN_CLASSES = 3
RULE = (
    f"At least {MIN_CHARS} characters with at least {MIN_CLASSES} of: lower-case, upper-case, "
    f"digits, symbols (or {LONG_ENOUGH}+ characters of anything); not your user name."
)


def password_problem(password: str, username: str) -> str | None:
    """Why ``password`` is too weak, or None when it passes :data:`RULE`."""
    if len(password) < MIN_CHARS:
        return f"Password too short: use at least {MIN_CHARS} characters."
    if username and username.lower() in password.lower():
        return "Password must not contain your user name."
    classes = sum(
        [
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        ]
    )
    if classes < MIN_CLASSES and len(password) < LONG_ENOUGH:
        return (
            f"Password too simple: mix at least {MIN_CLASSES} of lower-case, upper-case, "
            f"digits and symbols, or use {LONG_ENOUGH} or more characters."
        )
    if len(set(password)) < 4:
        return "Password too repetitive."
    return None
