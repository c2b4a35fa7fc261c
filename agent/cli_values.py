"""``privacyctl``'s argument values: argparse types that turn one argument's text into what the agent takes.

The checks are the control protocol's own (:mod:`agent.control_protocol`): the same rule on both sides.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from agent.control_protocol import check_limit, check_purpose, check_record_type, check_region, check_wait_seconds
from agent.errors import UsageError


def checked(check: Callable[[str, Any], Any], name: str) -> Callable[[str], Any]:
    """An argparse type from one of the protocol's argument checks: the same rule on both sides."""
    def parse(text: str) -> Any:
        value: Any = text
        if check is check_wait_seconds:
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError("must be a number of seconds") from None
        try:
            return check(name, value)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(exc.message.removeprefix(f"'{name}' ")) from None
    return parse


wait_seconds = checked(check_wait_seconds, "wait")
purpose = checked(check_purpose, "purpose")
region = checked(check_region, "region")


_AGE = re.compile(r"(\d{1,6})([smhd])")
_AGE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since(text: str, *, now: float | None = None) -> int:
    """``--since``: milliseconds since the epoch, from an ISO 8601 time or an age (``30m``, ``12h``, ``7d``)."""
    age = _AGE.fullmatch(text)
    if age:
        current = dt.datetime.now(dt.UTC).timestamp() if now is None else now
        return int((current - int(age.group(1)) * _AGE_SECONDS[age.group(2)]) * 1000)
    moment = _moment(text, "must be an ISO 8601 time (2026-12-02T10:00:00Z) or an age such as 30m, 12h, 7d")
    return int(moment.timestamp() * 1000)


def _moment(text: str, problem: str) -> dt.datetime:
    """An ISO 8601 date or time (UTC unless it says); ``problem`` is the usage error otherwise."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise argparse.ArgumentTypeError(problem) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def before(text: str) -> int:
    """``erase --before``: an ISO 8601 date or time (no ages: an erasure names its boundary plainly)."""
    moment = _moment(text, "must be an ISO 8601 date or time (2026-12-01 or 2026-12-01T10:00:00Z)")
    if moment.year < 1970:
        raise argparse.ArgumentTypeError("must be after 1970")
    return int(moment.timestamp() * 1000)


record_type = checked(check_record_type, "type")
_limit_check = checked(check_limit, "limit")


def limit(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("must be a whole number")
    result: int = _limit_check(int(text))  # type: ignore[arg-type]
    return result
