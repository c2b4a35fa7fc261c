"""The one exception tree of the agent.

Every error the agent raises on purpose is an :class:`AgentError`. Foreign libraries' exceptions (pyserial,
cbor2, cryptography, OSError from files and sockets) are translated into this tree in exactly one module each,
and re-raised ``from`` the original. Messages never carry personal data: no identifiers, no coordinates.

::

    AgentError                      (context: keyword details, safe to log)
    |- ConfigError                  also ValueError: bad config file, key or value
    |- UsageError                   also ValueError: bad command-line or request arguments
    |- TransportError               a port could not be opened, read or written
    |  |- PortUnavailable           open failed, or the port vanished (unplug, re-enumeration)
    |  |  `- PortBusy               another program holds the port's exclusive lock (one owner per modem)
    |  `- TransportTimeout          also TimeoutError
    |- ProtocolError                abstract, as in h11
    |  |- LocalProtocolError        we misused a core (command while busy, CR in an argument)
    |  `- RemoteProtocolError       the peer sent bytes we cannot accept (endless line, bad frame)
    |- CommandError                 the modem's final result was an error; .command, .code
    |  |- CmeError                  +CME ERROR: n   (GNSS codes 501-549 have names, see agent.quectel)
    |  |- CmsError                  +CMS ERROR: n
    |  `- CommandTimeout            also TimeoutError: no final result in time
    |- NmeaError                    a sentence that cannot be decoded (counted and dropped)
    |- PolicyError                  a privacy rule refused the operation (fail closed)
    |  |- ConsentRequired
    |  `- RequestRefused            a rights request repeated inside its window (reason and window end said)
    |- StoreError                   the ledger cannot be trusted to keep what it is given (fatal for the store)
    |  |- LogCorrupt                .segment, .offset: verification failed at an exact place
    |  |  `- LogTruncated           .missing: records lost below the newest signed head
    |  |- KeyStoreError             the key store cannot be read or written
    |  |- ExportError               an export cannot be written or does not verify
    |  `- StateDamaged              desired.json does not hold a desired state (the ledger then decides)
    |- ControlError                 the control socket protocol: bad request, refused, unreachable
    |  |- PermissionDenied          the peer's credentials do not allow the request
    |  |- AgentBusy                 every connection slot the peer may take is in use; retry later
    |  `- AgentUnreachable          privacyctl cannot reach the daemon
    |- GuardError                   the on-module firmware guard answered badly or not at all
    `- SinkError                    an upload sink could not take a message
       |- SinkRejected              permanent: the sink refused this message (never retried; dead-lettered)
       `- SinkUnavailable           transient: the sink is down, slow or busy (retried with backoff)

Caller bugs (wrong types, impossible arguments to internal functions) stay ``ValueError``/``TypeError``.
"""

from __future__ import annotations

from typing import Any


class AgentError(Exception):
    """Base of every error the agent raises on purpose.

    ``details`` are keyword facts about the failure (port URL, segment name, offset, command name), never
    personal data; they are shown after the message.
    """

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        if not self.details:
            return self.message
        facts = ", ".join(f"{key}={value!r}" for key, value in self.details.items())
        return f"{self.message} ({facts})"


class ConfigError(AgentError, ValueError):
    """The configuration file, a key or a value is wrong; the message names it."""


class UsageError(AgentError, ValueError):
    """Arguments from a user (command line, control request) are wrong; the message names the problem."""


class TransportError(AgentError):
    """A port could not be opened, read or written."""


class PortUnavailable(TransportError):
    """The port cannot be opened, or it vanished (pty closed, USB unplugged or re-enumerated)."""


class PortBusy(PortUnavailable):
    """Another program holds the port's exclusive lock: the agent refuses to share a modem."""


class TransportTimeout(TransportError, TimeoutError):
    """A read or write did not complete in time."""


class ProtocolError(AgentError):
    """Abstract: a protocol core cannot go on. Use one of the two subclasses."""

    def __init__(self, message: str, **details: Any) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise LocalProtocolError or RemoteProtocolError")
        super().__init__(message, **details)


class LocalProtocolError(ProtocolError):
    """We misused a protocol core (a command while one is pending, a forbidden byte in an argument)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that cannot be accepted (an endless line, an oversized frame)."""


class CommandError(AgentError):
    """The modem answered a command with an error final result.

    ``command`` is the command text without arguments that could be personal (builders never put personal data
    in commands anyway); ``code`` is the numeric CME/CMS code or None for a plain ``ERROR``.
    """

    def __init__(self, message: str, *, command: str = "", code: int | None = None, **details: Any) -> None:
        super().__init__(message, command=command, code=code, **details)
        self.command = command
        self.code = code


class CmeError(CommandError):
    """``+CME ERROR: n`` (mobile equipment error)."""


class CmsError(CommandError):
    """``+CMS ERROR: n`` (message service error)."""


class CommandTimeout(CommandError, TimeoutError):
    """No final result arrived within the command's timeout."""


class NmeaError(AgentError):
    """A sentence that cannot be decoded: bad frame, checksum or field."""


class PolicyError(AgentError):
    """A privacy rule refused the operation; the data involved is discarded (fail closed)."""


class ConsentRequired(PolicyError):
    """The purpose has no consent (and no legal-basis exception)."""


class RequestRefused(PolicyError):
    """A rights request refused because an identical one was answered inside the repeat window."""


class StoreError(AgentError):
    """The ledger cannot be trusted to keep what it is given; fatal for the store (no silent retry)."""


class LogCorrupt(StoreError):
    """Verification failed at an exact place in the log."""

    def __init__(self, message: str, *, segment: str, offset: int, **details: Any) -> None:
        super().__init__(message, segment=segment, offset=offset, **details)
        self.segment = segment
        self.offset = offset


class LogTruncated(LogCorrupt):
    """Records are missing below the newest signed head: ``missing`` of the ``head_size`` it vouches for."""

    def __init__(self, message: str, *, segment: str, offset: int, missing: int, head_size: int,
                 **details: Any) -> None:
        super().__init__(message, segment=segment, offset=offset, missing=missing, head_size=head_size,
                         **details)
        self.missing = missing
        self.head_size = head_size


class KeyStoreError(StoreError):
    """The key store cannot be read or written."""


class ExportError(StoreError):
    """An export cannot be written, or an export file does not verify."""


class StateDamaged(StoreError):
    """The desired-state file holds no valid desired state: it is a copy of the ledger's last switch record,
    written after it, so the daemon falls back to that record (or to off) and rewrites the file."""


class ControlError(AgentError):
    """The control socket protocol: a bad request or reply."""


class PermissionDenied(ControlError):
    """The peer's credentials do not allow the request."""


class AgentBusy(ControlError):
    """Every connection slot the peer may take is in use; clients retry with backoff."""


class AgentUnreachable(ControlError):
    """The daemon's control socket cannot be reached."""


class GuardError(AgentError):
    """The on-module firmware guard answered badly or not at all."""


class SinkError(AgentError):
    """An upload sink could not take a message."""


class SinkRejected(SinkError):
    """The sink refused this message for good (e.g. HTTP 4xx): it is dead-lettered, never retried."""


class SinkUnavailable(SinkError):
    """The sink is down, slow or busy (connection error, timeout, HTTP 408/429/5xx): retried with backoff."""
