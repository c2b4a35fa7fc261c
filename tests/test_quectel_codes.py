"""GNSS CME table and error_for."""

from __future__ import annotations

import pytest

from agent.at import Command, Final, Response
from agent.errors import CmeError, CmsError, CommandError
from agent.quectel import codes
from agent.quectel.codes import (
    GNSS_ERRORS,
    GnssBusy,
    GnssError,
    GnssFunctionNotEnabled,
    GnssNotFixed,
    GnssSessionNotActive,
    GnssSessionOngoing,
    GnssUnknownError,
    error_for,
)

QGPS_ON = Command("AT+QGPS=1", prefix="+QGPS")


def failed(final: Final, command: Command = QGPS_ON) -> Response:
    return Response(command, (), final)


@pytest.mark.parametrize(
    ("code", "cls"),
    [(503, GnssBusy), (504, GnssSessionOngoing), (505, GnssSessionNotActive), (507, GnssFunctionNotEnabled),
     (516, GnssNotFixed), (549, GnssUnknownError)],
)
def test_named_gnss_errors(code: int, cls: type[GnssError]) -> None:
    error = error_for(failed(Final("CME", code, f"+CME ERROR: {code}")))
    assert type(error) is cls
    assert isinstance(error, CmeError) and isinstance(error, CommandError)
    assert error.code == code and error.command == "AT+QGPS"


def test_table_covers_the_reference_codes() -> None:
    assert sorted(GNSS_ERRORS) == [*range(501, 518), 549]
    assert all(cls.code_number == code for code, cls in GNSS_ERRORS.items())
    assert len({cls.meaning for cls in GNSS_ERRORS.values()}) == len(GNSS_ERRORS)


def test_unknown_cme_code_is_plain_cme_error() -> None:
    error = error_for(failed(Final("CME", 10, "+CME ERROR: 10"), Command("AT+CIMI", None)))
    assert type(error) is CmeError and error.code == 10 and error.command == "AT+CIMI"


def test_verbose_cme_text() -> None:
    error = error_for(failed(Final("CME", None, "+CME ERROR: Session is ongoing")))
    assert type(error) is GnssSessionOngoing and error.code == 504
    other = error_for(failed(Final("CME", None, "+CME ERROR: SIM not inserted")))
    assert type(other) is CmeError and other.code is None and other.details["reason"] == "SIM not inserted"


def test_plain_error_cms_and_no_carrier() -> None:
    plain = error_for(failed(Final("ERROR", None, "ERROR")))
    assert type(plain) is CommandError and plain.code is None
    cms = error_for(failed(Final("CMS", 330, "+CMS ERROR: 330"), Command("AT+CMGS=1", "+CMGS")))
    assert type(cms) is CmsError and cms.code == 330 and cms.command == "AT+CMGS"
    carrier = error_for(failed(Final("NO_CARRIER", None, "NO CARRIER")))
    assert type(carrier) is CommandError and "NO CARRIER" in str(carrier)


def test_error_for_refuses_success() -> None:
    with pytest.raises(ValueError):
        error_for(failed(Final("OK", None, "OK")))


def test_message_names_command_not_arguments() -> None:
    command = Command('AT+QGPSCFG="lbsapn",1,1,"secret-apn"', prefix="+QGPSCFG")
    error = error_for(failed(Final("CME", 501, "+CME ERROR: 501"), command))
    assert "secret-apn" not in str(error) and "AT+QGPSCFG" in str(error)
    assert isinstance(error, codes.GnssInvalidParameter)
