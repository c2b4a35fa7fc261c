"""The control protocol's argument checks (pure), one per kind of argument, shared by the agent and privacyctl.

Each takes the argument's name and its value as sent, and returns the value the handler gets, or raises
UsageError naming the argument.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from agent.errors import UsageError

ArgCheck = Callable[[str, Any], Any]  # (name, value as sent) -> the value the handler gets; UsageError if bad

PURPOSE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
PURPOSE_RULE = "a purpose name: lowercase letters, digits, '_', '.', '-' (max 64), starting with a letter"
MAX_WAIT_S = 60.0
DEFAULT_WAIT_S = 10.0


def check_wait_seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            (isinstance(value, float) and not math.isfinite(value)):
        raise UsageError(f"'{key}' must be a number of seconds")
    if not 0 <= value <= MAX_WAIT_S:  # compared as given: a huge integer has no float
        raise UsageError(f"'{key}' must be between 0 and {MAX_WAIT_S:g} seconds")
    return float(value)


def check_purpose(key: str, value: Any) -> str:
    if not isinstance(value, str) or not PURPOSE.fullmatch(value):
        raise UsageError(f"'{key}' must be {PURPOSE_RULE}")
    return value


def check_flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"'{key}' must be true or false")
    return value


_MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the ledger's last representable time


def check_time_ms(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TIME_MS:
        raise UsageError(f"'{key}' must be a time in milliseconds since 1970 (up to year 9999)")
    return value


_REGION = re.compile(r"[A-Z][A-Z0-9-]{1,15}")


def check_region(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _REGION.fullmatch(value):
        raise UsageError(f"'{key}' must be an upper-case region code such as CN or EU")
    return value


_RECORD_TYPE = re.compile(r"[a-z][a-z_]{0,31}")
MAX_LOG_LIMIT = 1000


def check_record_type(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _RECORD_TYPE.fullmatch(value):
        raise UsageError(f"'{key}' must be a record type such as switch, upload, request")
    return value


def check_limit(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LOG_LIMIT:
        raise UsageError(f"'{key}' must be a whole number from 1 to {MAX_LOG_LIMIT}")
    return value


POLICY_FORMATS = ("text", "markdown", "json")


def check_policy_format(key: str, value: Any) -> str:
    if value not in POLICY_FORMATS:
        raise UsageError(f"'{key}' must be one of " + ", ".join(POLICY_FORMATS))
    return str(value)


CORRECTIONS = ("minor", "guardian", "region", "wrong-fix")  # what privacyctl correct can correct
UPLOAD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_YES_NO = {"yes": True, "no": False, "true": True, "false": False}


def check_what(key: str, value: Any) -> str:
    if value not in CORRECTIONS:
        raise UsageError(f"'{key}' must be one of " + ", ".join(CORRECTIONS))
    return str(value)


def check_correction(what: str, value: Any) -> bool | str:
    """The corrected value for ``what``, checked: yes/no for the flags, a region code, an upload id."""
    check_what("what", what)
    if what in ("minor", "guardian"):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _YES_NO:
            return _YES_NO[value.lower()]
        raise UsageError(f"a correction of '{what}' takes yes or no")
    if what == "region":
        if not isinstance(value, str) or not _REGION.fullmatch(value):
            raise UsageError("a region is an upper-case code such as CN or EU")
        return value
    if not isinstance(value, str) or not UPLOAD_ID.fullmatch(value):
        raise UsageError("a wrong fix is named by its upload id, as privacyctl uploads shows it")
    return value


def check_correction_value(key: str, value: Any) -> bool | str:
    """yes/no (a bool), a region code or an upload id: checked against what is corrected by the handler
    (check_correction), since one argument's rule depends on the other."""
    if isinstance(value, bool) or (isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable()):
        return value
    raise UsageError(f"'{key}' must be true, false or a short text (a region code or an upload id)")
