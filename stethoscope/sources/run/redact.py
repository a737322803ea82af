"""Keeping secrets out of what `steth run` reports: environment values, arguments and URLs.

A value is withheld when its name looks like a secret (password, token, key, credential...), and
the userinfo of any URL (``scheme://user:pass@host``) is withheld wherever it appears. Withheld
values are replaced by a fixed marker, never hashed: a hash of a short password is a dictionary
attack away from the password.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["REDACTED", "is_secret_name", "redact_argv", "redact_environment", "redact_text"]

REDACTED = "<redacted>"

_SECRET_NAME = re.compile(
    r"passw(or)?d|passwd|pwd|secret|token|key|credential|auth|private|session|cookie|"
    r"signature|salt|dsn|connection_?string|headers",
    re.IGNORECASE,
)
# scheme://userinfo@ : the userinfo ends at the last '@' before the host (passwords may hold '@'
# only percent-encoded, but be generous) and holds no '/', whitespace or quote.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@'\"<>]+@")
# --name=value and name=value forms inside one argument.
_ASSIGNMENT = re.compile(r"^(?P<name>-{0,2}[A-Za-z_][\w.\-]*)(?P<sep>[=:])(?P<value>.+)$", re.S)


# The shell's working directories, not passwords.
_NOT_SECRET = frozenset({"PWD", "OLDPWD"})


def is_secret_name(name: str) -> bool:
    """True when a variable or option name looks like it holds a secret."""
    return name not in _NOT_SECRET and bool(_SECRET_NAME.search(name))


def redact_text(text: str) -> str:
    """`text` with the userinfo of every URL in it withheld."""
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)


def redact_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with secret-named values and URL credentials withheld."""
    return {
        name: REDACTED if is_secret_name(name) else redact_text(value)
        for name, value in env.items()
    }


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Arguments with `--password=x`, `--token x`, `KEY=x` values and URL credentials withheld."""
    out: list[str] = []
    withhold_next = False
    for arg in argv:
        if withhold_next and not arg.startswith("-"):
            out.append(REDACTED)
            withhold_next = False
            continue
        withhold_next = False
        assignment = _ASSIGNMENT.match(arg)
        if assignment and is_secret_name(assignment.group("name").lstrip("-")):
            out.append(f"{assignment.group('name')}{assignment.group('sep')}{REDACTED}")
        elif arg.startswith("-") and len(arg) > 2 and is_secret_name(arg.lstrip("-")):
            out.append(arg)
            withhold_next = True
        else:
            out.append(redact_text(arg))
    return out
