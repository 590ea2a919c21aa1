"""The one id rule: what a runner, device or session id may look like.

Ids travel in URLs, file names, log lines, HTML reports and SQL, so they are restricted to a small
alphabet: ASCII letters, digits and ``. _ : -``, 1 to 64 characters. No spaces, no slashes, no
markup, no control characters. ``-`` alone is allowed (a runner profile's placeholder session id).
"""

from __future__ import annotations

import re

#: the id alphabet and length, as a regular expression (documented in schemas/README.md)
ID_PATTERN = r"[A-Za-z0-9._:-]{1,64}"
ID_MAX_LEN = 64
#: the event fields the rule applies to
ID_FIELDS: tuple[str, ...] = ("runner_id", "device_id", "session_id")

_ID_RE = re.compile(ID_PATTERN)


def id_problem(name: str, value: object) -> str | None:
    """``None`` when ``value`` is a valid id, otherwise a readable reason naming the field ``name``
    (characters outside the alphabet are shown as ``\\x{hex}``, so markup or control characters in the
    offending value cannot reach a log line, a JSON answer or a page)."""
    if not isinstance(value, str):
        return f"{name} must be a string, got {type(value).__name__}"
    if _ID_RE.fullmatch(value) is None:
        shown = "".join(c if _ID_RE.fullmatch(c) else f"\\x{{{ord(c):x}}}" for c in value[: ID_MAX_LEN + 8])
        return (
            f"{name} '{shown}' ({len(value)} chars) does not match {ID_PATTERN} "
            f"(letters, digits and . _ : -, 1-{ID_MAX_LEN} chars)"
        )
    return None


def event_id_problem(event: object) -> str | None:
    """The first id field of ``event`` that breaks the rule, as a reason; ``None`` when all are valid."""
    for name in ID_FIELDS:
        problem = id_problem(name, getattr(event, name, None))
        if problem is not None:
            return problem
    return None
