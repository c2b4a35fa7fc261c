"""How a simulated command fails: :class:`CommandFailed`, the CME error texts, and argument checks.

A handler raises CommandFailed; the command layer turns it into ``+CME ERROR: <n>``, the verbose text or a
plain ``ERROR`` as ``AT+CMEE`` says.
"""

from __future__ import annotations

CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    13: "SIM failure",
    14: "SIM busy",
    30: "no network service",
    50: "Incorrect parameters",
    501: "Invalid parameter(s)",
    502: "Operation not supported",
    503: "GNSS subsystem busy",
    504: "Session is ongoing",
    505: "Session not active",
    506: "Operation timeout",
    507: "Function not enabled",
    508: "Time information error",
    509: "XTRA not enabled",
    512: "Validity time is out of range",
    513: "Internal resource error",
    514: "GNSS locked",
    515: "End by E911",
    516: "Not fixed now",
    517: "Geo-fence ID does not exist",
    549: "Unknown error",
}


class CommandFailed(Exception):
    """Raised by a command handler: the final result is ``+CME ERROR: code`` (or plain ``ERROR`` for None)."""

    def __init__(self, code: int | None = None) -> None:
        super().__init__(code)
        self.code = code


def error_text(code: int | None, cmee: int) -> str:
    """The final result line for a failure with ``code`` under ``AT+CMEE=<cmee>``."""
    if code is None or cmee == 0:
        return "ERROR"
    if cmee == 2 and code in CME_TEXT:
        return f"+CME ERROR: {CME_TEXT[code]}"
    return f"+CME ERROR: {code}"


def int_arg(args: tuple[str, ...], index: int, allowed: range | tuple[int, ...], *, error: int | None) -> int:
    """Argument ``index`` as an int within ``allowed``, or CommandFailed(error)."""
    if index >= len(args) or not is_number(args[index]):
        raise CommandFailed(error)
    value = int(args[index])
    if value not in allowed:
        raise CommandFailed(error)
    return value


def is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts ``²``, which ``int`` refuses."""
    return text.isascii() and text.isdigit()
