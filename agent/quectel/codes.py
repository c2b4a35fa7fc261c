"""Quectel result codes: the GNSS ``+CME ERROR`` table (501-549) as named exceptions, and ``error_for``.

Strategy: one small class per GNSS code, all under :class:`GnssError` (a ``CmeError``), so that callers catch
exactly the case they handle (``except GnssSessionOngoing``: the engine was already on). The table below is
the single place that maps codes to classes; ``error_for`` turns any error ``Response`` into the right one.
Source: the Quectel GNSS appendix as summarised in the project's reference sheet (section 2).
"""

from __future__ import annotations

from agent.at import Response
from agent.errors import CmeError, CmsError, CommandError


class GnssError(CmeError):
    """A GNSS-specific ``+CME ERROR`` (codes 501-549)."""

    code_number: int = 549
    meaning: str = "unknown GNSS error"


class GnssInvalidParameter(GnssError):
    code_number, meaning = 501, "invalid parameter"


class GnssNotSupported(GnssError):
    code_number, meaning = 502, "operation not supported"


class GnssBusy(GnssError):
    code_number, meaning = 503, "GNSS subsystem busy"


class GnssSessionOngoing(GnssError):
    code_number, meaning = 504, "session is ongoing"


class GnssSessionNotActive(GnssError):
    code_number, meaning = 505, "session not active"


class GnssOperationTimeout(GnssError):
    code_number, meaning = 506, "operation timeout"


class GnssFunctionNotEnabled(GnssError):
    code_number, meaning = 507, "function not enabled"


class GnssTimeInfoError(GnssError):
    code_number, meaning = 508, "time information error"


class GnssXtraNotEnabled(GnssError):
    code_number, meaning = 509, "XTRA not enabled"


class GnssXtraFileOpenFailed(GnssError):
    code_number, meaning = 510, "XTRA file open failed"


class GnssXtraBadCrc(GnssError):
    code_number, meaning = 511, "bad CRC in XTRA data file"


class GnssValidityTimeOutOfRange(GnssError):
    code_number, meaning = 512, "validity time out of range"


class GnssInternalResourceError(GnssError):
    code_number, meaning = 513, "internal resource error"


class GnssLocked(GnssError):
    code_number, meaning = 514, "GNSS locked"


class GnssEndedByE911(GnssError):
    code_number, meaning = 515, "ended by E911"


class GnssNotFixed(GnssError):
    code_number, meaning = 516, "not fixed now"


class GnssGeofenceIdMissing(GnssError):
    code_number, meaning = 517, "geofence ID does not exist"


class GnssUnknownError(GnssError):
    code_number, meaning = 549, "unknown GNSS error"


GNSS_ERRORS: dict[int, type[GnssError]] = {
    cls.code_number: cls
    for cls in (
        GnssInvalidParameter, GnssNotSupported, GnssBusy, GnssSessionOngoing, GnssSessionNotActive,
        GnssOperationTimeout, GnssFunctionNotEnabled, GnssTimeInfoError, GnssXtraNotEnabled,
        GnssXtraFileOpenFailed, GnssXtraBadCrc, GnssValidityTimeOutOfRange, GnssInternalResourceError,
        GnssLocked, GnssEndedByE911, GnssNotFixed, GnssGeofenceIdMissing, GnssUnknownError,
    )
}

# With AT+CMEE=2 the modem prints the meaning instead of the number; recognise the GNSS ones (compared
# without case and punctuation) so that callers still get the named class.
_VERBOSE_GNSS: dict[str, type[GnssError]] = {
    "".join(filter(str.isalnum, cls.meaning.lower())): cls for cls in GNSS_ERRORS.values()
}


def _verbose_key(text: str) -> str:
    detail = text.split(":", 1)[1] if ":" in text else text
    return "".join(filter(str.isalnum, detail.lower()))


def _cme_error(response: Response) -> CmeError:
    final, name = response.final, response.command.name
    if final.code is None:
        verbose_cls = _VERBOSE_GNSS.get(_verbose_key(final.text))
        if verbose_cls is not None:
            return verbose_cls(f"GNSS error: {verbose_cls.meaning}", command=name,
                               code=verbose_cls.code_number)
        return CmeError("modem answered +CME ERROR", command=name, code=None, reason=_reason(final.text))
    cls = GNSS_ERRORS.get(final.code)
    if cls is not None:
        return cls(f"GNSS error: {cls.meaning}", command=name, code=final.code)
    return CmeError("modem answered +CME ERROR", command=name, code=final.code)


def _reason(text: str) -> str:
    """The verbose error text (``CMEE=2``), cut short: it names a condition, never personal data."""
    return (text.split(":", 1)[1] if ":" in text else text).strip()[:80]


def error_for(response: Response) -> CommandError:
    """The exception for an error ``response``.

    Plain ``ERROR`` (and ``NO CARRIER``) give ``CommandError`` with code None; ``+CME ERROR`` gives the named
    GNSS subclass when the code is known, else ``CmeError``; ``+CMS ERROR`` gives ``CmsError``.

    Raises:
        ValueError: ``response`` is a success (a caller bug).
    """
    final, name = response.final, response.command.name
    if response.ok:
        raise ValueError("error_for() needs an error response")
    if final.kind == "CME":
        return _cme_error(response)
    if final.kind == "CMS":
        details = {} if final.code is not None else {"reason": _reason(final.text)}
        return CmsError("modem answered +CMS ERROR", command=name, code=final.code, **details)
    return CommandError(f"modem answered {final.kind.replace('_', ' ')}", command=name, code=None)
