"""Parsers from AT ``Response`` objects (or single lines) to typed values.

Strategy:
- Every parser takes what the AT core produced and returns a value from ``agent.model`` (or a small value
  defined here); an error response raises the exception ``codes.error_for`` builds, and a reply that does not
  have the documented shape raises ``RemoteProtocolError`` naming the command and the field, never the value
  (replies carry identifiers and cell IDs).
- Fields are split on commas outside double quotes; numbers are matched with strict patterns before ``int``/
  ``float`` see them, so ``nan``, ``1e9`` or ``0x10`` never pass as numbers.
- Field layouts follow the reference sheet (sections 1.4, 3) and the real transcripts (4.4-4.11).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from agent.at import Response, plus_prefix
from agent.errors import RemoteProtocolError
from agent.model import CellInfo, Fix, ModemInfo
from agent.quectel.codes import error_for

_PREFIX_HEAD = re.compile(r"\+[A-Za-z0-9_]+\s*:\s*", re.ASCII)
_INT = re.compile(r"[+-]?\d{1,10}", re.ASCII)
_DECIMAL = re.compile(r"[+-]?\d{1,10}(\.\d{1,10})?", re.ASCII)
_HEX = re.compile(r"[0-9A-Fa-f]{1,16}", re.ASCII)
_DEG_MIN = re.compile(r"(\d{1,3})(\d{2}\.\d{1,10})", re.ASCII)
_UTC_TIME = re.compile(r"(\d{2})(\d{2})(\d{2})(\.\d{1,6})?", re.ASCII)
_DATE = re.compile(r"(\d{2})(\d{2})(\d{2})", re.ASCII)
_WORD = re.compile(r"[A-Za-z0-9_-]{1,24}", re.ASCII)
_MISSING = {"", "-"}
_MISSING_SIGNAL = -32768  # some firmwares print this for "no value"
HDOP_VALID = (0.5, 99.9)  # Quectel: values outside this range (e.g. 500.0) are invalid


# -- small helpers -------------------------------------------------------------------------------------------
def _malformed(command: str, what: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed reply to {command}: {what}", command=command)


def _require_ok(response: Response) -> None:
    if not response.ok:
        raise error_for(response)


def _payloads(response: Response, prefix: str) -> list[str]:
    """The text after ``<prefix>:`` of every info line with that prefix."""
    return [_PREFIX_HEAD.sub("", line, count=1) for line in response.lines if plus_prefix(line) == prefix]


def _first_payload(response: Response, prefix: str) -> str:
    _require_ok(response)
    payloads = _payloads(response, prefix)
    if not payloads:
        raise _malformed(response.command.name, f"no {prefix} line")
    return payloads[0]


def split_fields(payload: str, command: str = "reply") -> list[str]:
    """Split on commas outside double quotes; quotes are kept (see :func:`unquote`), spaces trimmed.

    Raises:
        RemoteProtocolError: a quote is not closed.
    """
    if '"' not in payload:
        return [field.strip() for field in payload.split(",")]  # the common case, without the char loop
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for char in payload:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if quoted:
        raise _malformed(command, "unbalanced quote")
    fields.append("".join(current).strip())
    return fields


def unquote(field: str) -> str:
    if len(field) >= 2 and field[0] == field[-1] == '"':
        return field[1:-1]
    return field


def _is_quoted(field: str) -> bool:
    return len(field) >= 2 and field[0] == field[-1] == '"'


def _int(field: str, command: str, what: str) -> int:
    text = unquote(field)
    if not _INT.fullmatch(text):
        raise _malformed(command, f"{what} is not an integer")
    return int(text)


def _opt_int(field: str, command: str, what: str) -> int | None:
    return None if unquote(field) in _MISSING else _int(field, command, what)


def _float(field: str, command: str, what: str) -> float:
    if not _DECIMAL.fullmatch(field):
        raise _malformed(command, f"{what} is not a decimal number")
    return float(field)


def _opt_float(field: str, command: str, what: str) -> float | None:
    return None if field in _MISSING else _float(field, command, what)


def _opt_hex(field: str, command: str, what: str) -> str | None:
    text = unquote(field)
    if text in _MISSING:
        return None
    if not _HEX.fullmatch(text):
        raise _malformed(command, f"{what} is not hexadecimal")
    return text.upper()


def _word(field: str, command: str, what: str) -> str:
    text = unquote(field)
    if not _WORD.fullmatch(text):
        raise _malformed(command, f"{what} is not a plain word")
    return text.upper()


def _signal(field: str, command: str, what: str) -> int | None:
    value = _opt_int(field, command, what)
    return None if value == _MISSING_SIGNAL else value


def _loose(field: str) -> int | str | None:
    """A field kept only as extra detail: an int when it is one, None when missing, else its text."""
    text = unquote(field)
    if text in _MISSING:
        return None
    if _INT.fullmatch(text):
        value = int(text)
        return None if value == _MISSING_SIGNAL else value
    return text


# -- GNSS ----------------------------------------------------------------------------------------------------
def parse_qgps_state(response: Response) -> bool:
    """``+QGPS: <0|1>`` -> whether the GNSS engine is on."""
    fields = split_fields(_first_payload(response, "+QGPS"), response.command.name)
    if fields[0] not in ("0", "1"):
        raise _malformed(response.command.name, "GNSS state is not 0 or 1")
    return fields[0] == "1"


def _degrees_minutes(value: str, hemisphere: str, axis: str, command: str) -> float:
    """``ddmm.mmmm`` plus ``N/S/E/W`` -> signed degrees (degrees + minutes / 60, not decimal degrees)."""
    match = _DEG_MIN.fullmatch(value)
    positive, negative = ("N", "S") if axis == "latitude" else ("E", "W")
    if match is None or hemisphere.upper() not in (positive, negative):
        raise _malformed(command, f"{axis} is not ddmm.mmmm with a hemisphere")
    minutes = float(match.group(2))
    if minutes >= 60:
        raise _malformed(command, f"{axis} minutes out of range")
    degrees = int(match.group(1)) + minutes / 60
    return -degrees if hemisphere.upper() == negative else degrees


def _checked_position(lat: float, lon: float, command: str) -> tuple[float, float]:
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise _malformed(command, "position out of range")
    return lat, lon


def _position(fields: Sequence[str], mode: int, command: str) -> tuple[float, float]:
    if mode == 0:
        lat = _degrees_minutes(fields[0][:-1], fields[0][-1:], "latitude", command)
        lon = _degrees_minutes(fields[1][:-1], fields[1][-1:], "longitude", command)
    elif mode == 1:
        lat = _degrees_minutes(fields[0], fields[1], "latitude", command)
        lon = _degrees_minutes(fields[2], fields[3], "longitude", command)
    else:
        lat = _float(fields[0], command, "latitude")
        lon = _float(fields[1], command, "longitude")
    return _checked_position(lat, lon, command)


def _utc(time_text: str, date_text: str, command: str) -> dt.datetime:
    """``hhmmss.s`` and ``ddmmyy`` -> an aware UTC datetime."""
    time_match, date_match = _UTC_TIME.fullmatch(time_text), _DATE.fullmatch(date_text)
    if time_match is None or date_match is None:
        raise _malformed(command, "time or date is not hhmmss.s / ddmmyy")
    hour, minute, second, fraction = time_match.groups()
    micro = min(round(float("0" + (fraction or ".0")) * 1_000_000), 999_999)
    day, month, year = map(int, date_match.groups())
    try:
        return dt.datetime(2000 + year, month, day, int(hour), int(minute), int(second), micro, tzinfo=dt.UTC)
    except ValueError:
        raise _malformed(command, "time or date out of range") from None


def _course(field: str, command: str) -> float | None:
    """``cog`` is ddd.mm (degrees.minutes per the manual); an impossible value becomes None."""
    value = _opt_float(field, command, "course")
    if value is None:
        return None
    degrees, minutes = divmod(round(value * 100), 100)
    course = degrees + minutes / 60
    return course if minutes < 60 and 0 <= course < 360 else None


def _hdop(field: str, command: str) -> float | None:
    value = _opt_float(field, command, "hdop")
    return value if value is not None and HDOP_VALID[0] <= value <= HDOP_VALID[1] else None


_QGPSLOC_POSITION_FIELDS = {0: 2, 1: 4, 2: 2}


def parse_qgpsloc(response: Response, mode: int) -> Fix:
    """``+QGPSLOC: <utc>,<lat>,<lon>,<hdop>,<alt>,<fix>,<cog>,<spkm>,<spkn>,<date>,<nsat>`` -> ``Fix``.

    ``mode`` is the one the command was sent with: 0 ``ddmm.mmmmN``, 1 ``ddmm.mmmmmm,N``, 2 decimal degrees.
    """
    if mode not in _QGPSLOC_POSITION_FIELDS:
        raise ValueError("QGPSLOC mode must be 0, 1 or 2")
    command = response.command.name
    fields = split_fields(_first_payload(response, "+QGPSLOC"), command)
    width = _QGPSLOC_POSITION_FIELDS[mode]
    if len(fields) != 9 + width:
        raise _malformed(command, f"expected {9 + width} fields for mode {mode}")
    lat, lon = _position(fields[1 : 1 + width], mode, command)
    hdop, alt, fix, cog, spkm, _spkn, date, nsat = fields[1 + width :]
    return Fix(
        source="QGPSLOC",
        valid=True,
        time=_utc(fields[0], date, command),
        lat=lat,
        lon=lon,
        altitude_m=_opt_float(alt, command, "altitude"),
        hdop=_hdop(hdop, command),
        satellites=_opt_int(nsat, command, "satellites"),
        speed_kmh=_opt_float(spkm, command, "speed"),
        course_deg=_course(cog, command),
        fix_quality=_opt_int(fix, command, "fix type"),
    )


def parse_qgpscfg(response: Response) -> tuple[str, tuple[str | int, ...]]:
    """``+QGPSCFG: "<key>",<value>...`` -> the key and its values.

    Quoted values stay strings (without quotes), unquoted integers become ints, anything else is kept
    verbatim as a string; unknown keys are returned as they are.
    """
    command = response.command.name
    fields = split_fields(_first_payload(response, "+QGPSCFG"), command)
    key = unquote(fields[0])
    if not key:
        raise _malformed(command, "empty key")
    values: list[str | int] = []
    for field in fields[1:]:
        values.append(int(field) if not _is_quoted(field) and _INT.fullmatch(field) else unquote(field))
    return key, tuple(values)


def parse_qgpsgnmea(response: Response) -> list[str]:
    """``+QGPSGNMEA: $GPGGA,...`` lines (GSV gives several) -> the sentences."""
    _require_ok(response)
    sentences = [payload.strip() for payload in _payloads(response, "+QGPSGNMEA")]
    if any(not sentence.startswith("$") for sentence in sentences):
        raise _malformed(response.command.name, "NMEA sentence does not start with '$'")
    return sentences


# -- identity ------------------------------------------------------------------------------------------------
def parse_ati(response: Response) -> ModemInfo:
    """``ATI``: ``Quectel`` / ``EC25`` / ``Revision: EC25EFAR06A03M4G``."""
    _require_ok(response)
    lines = [line for line in response.lines if line.strip()]
    revisions = [line for line in lines if line.upper().startswith("REVISION:")]
    if len(lines) < 3 or not revisions:
        raise _malformed(response.command.name, "expected manufacturer, model and Revision lines")
    revision = revisions[0].split(":", 1)[1].strip()
    if not revision:
        raise _malformed(response.command.name, "empty revision")
    return ModemInfo(manufacturer=lines[0].strip(), model=lines[1].strip(), revision=revision)


def _single_value(response: Response, prefix: str | None) -> str:
    """The value of a one-line reply, bare (``861536030196001``) or prefixed (``+QCCID: 8986...``)."""
    _require_ok(response)
    lines = [line for line in response.lines if line.strip()]
    if not lines:
        raise _malformed(response.command.name, "no value line")
    line = lines[0]
    if prefix is not None and plus_prefix(line) == prefix:
        line = _PREFIX_HEAD.sub("", line, count=1)
    return unquote(line.strip())


def _identifier(response: Response, prefix: str | None, pattern: str, what: str) -> str:
    value = _single_value(response, prefix)
    if not re.fullmatch(pattern, value, re.ASCII):
        raise _malformed(response.command.name, f"{what} has the wrong form")
    return value.upper()


def parse_imei(response: Response) -> str:
    """``AT+CGSN``/``AT+GSN`` (bare 15 digits, or ``+CGSN: <imei>``) -> the IMEI."""
    return _identifier(response, "+CGSN", r"\d{14,16}", "IMEI")


def parse_imsi(response: Response) -> str:
    """``AT+CIMI`` -> the IMSI (6-15 digits)."""
    return _identifier(response, "+CIMI", r"\d{6,15}", "IMSI")


def parse_iccid(response: Response) -> str:
    """``+QCCID: 89860025128306012474`` -> the ICCID (18-22 characters, may hold hex digits or a final F)."""
    return _identifier(response, "+QCCID", r"[0-9A-Fa-f]{18,22}", "ICCID")


def parse_cnum(response: Response) -> str | None:
    """``+CNUM: ,"+639544817486",145`` -> the MSISDN; None when the SIM holds none (just ``OK``)."""
    _require_ok(response)
    payloads = _payloads(response, "+CNUM")
    if not payloads:
        return None
    fields = split_fields(payloads[0], response.command.name)
    number = unquote(fields[1]) if len(fields) > 1 else ""
    if not number:
        return None
    if not re.fullmatch(r"\+?[0-9*#]{1,24}", number, re.ASCII):
        raise _malformed(response.command.name, "subscriber number has the wrong form")
    return number


def _text_value(response: Response, prefix: str, what: str) -> str:
    value = _single_value(response, prefix)
    if not value or len(value) > 64 or not value.isprintable():
        raise _malformed(response.command.name, f"{what} has the wrong form")
    return value


def parse_qgmr(response: Response) -> str:
    """``AT+QGMR`` -> the full firmware version (``EG25GGBR07A08M2G_01.003.01.003``)."""
    return _text_value(response, "+QGMR", "firmware version")


def parse_cgmm(response: Response) -> str:
    """``AT+CGMM`` -> the model (``EC25``)."""
    return _text_value(response, "+CGMM", "model")


# -- serving cell --------------------------------------------------------------------------------------------
def _extra(names: Sequence[str], fields: Sequence[str]) -> tuple[tuple[str, object], ...]:
    return tuple((name, _loose(field)) for name, field in zip(names, fields, strict=False))


def _need(fields: Sequence[str], count: int, rat: str, command: str) -> None:
    if len(fields) < count:
        raise _malformed(command, f"too few {rat} serving-cell fields")


def _plmn(mcc: str, mnc: str, command: str) -> tuple[int | None, int | None]:
    return _opt_int(mcc, command, "MCC"), _opt_int(mnc, command, "MNC")


def _lte(state: str, rat: str, f: Sequence[str], command: str) -> CellInfo:
    # is_tdd,mcc,mnc,cellID,pcid,earfcn,band,ul_bw,dl_bw,tac,rsrp,rsrq,rssi,sinr[,cqi,tx_power],srxlev
    _need(f, 14, rat, command)
    tail_names = ("cqi", "tx_power", "srxlev") if len(f) >= 17 else ("srxlev",)
    extra = (("duplex", _loose(f[0])), *_extra(("band", "ul_bw", "dl_bw"), f[6:9]),
             *_extra(("rssi", "sinr", *tail_names), f[12:]))
    mcc, mnc = _plmn(f[1], f[2], command)
    return CellInfo(state=state, rat=rat, mcc=mcc, mnc=mnc,
                    cell_id=_opt_hex(f[3], command, "cell ID"), area=_opt_hex(f[9], command, "TAC"),
                    pcid=_opt_int(f[4], command, "PCI"), earfcn=_opt_int(f[5], command, "EARFCN"),
                    rsrp=_signal(f[10], command, "RSRP"), rsrq=_signal(f[11], command, "RSRQ"), extra=extra)


def _gsm(state: str, rat: str, f: Sequence[str], command: str) -> CellInfo:
    # mcc,mnc,lac,cellid,bsic,arfcn,band,rxlev,txp,rla,drx,c1,c2,gprs,tch,ts,ta,maio,hsn,...
    _need(f, 8, rat, command)
    mcc, mnc = _plmn(f[0], f[1], command)
    return CellInfo(state=state, rat=rat, mcc=mcc, mnc=mnc,
                    area=_opt_hex(f[2], command, "LAC"), cell_id=_opt_hex(f[3], command, "cell ID"),
                    extra=_extra(("bsic", "arfcn", "band", "rxlev"), f[4:8]))


def _wcdma(state: str, rat: str, f: Sequence[str], command: str) -> CellInfo:
    # mcc,mnc,lac,cellID,uarfcn,psc,rac,rscp,ecio,phych,sf,slot,speech_code,comMod
    _need(f, 9, rat, command)
    mcc, mnc = _plmn(f[0], f[1], command)
    return CellInfo(state=state, rat=rat, mcc=mcc, mnc=mnc,
                    area=_opt_hex(f[2], command, "LAC"), cell_id=_opt_hex(f[3], command, "cell ID"),
                    earfcn=_opt_int(f[4], command, "UARFCN"),
                    extra=_extra(("psc", "rac", "rscp", "ecio"), f[5:9]))


def _nr_sa(state: str, rat: str, f: Sequence[str], command: str) -> CellInfo:
    # duplex,mcc,mnc,cellID,pcid,tac,arfcn,band,dl_bw,rsrp,rsrq,sinr,scs,srxlev
    _need(f, 12, rat, command)
    mcc, mnc = _plmn(f[1], f[2], command)
    return CellInfo(state=state, rat=rat, mcc=mcc, mnc=mnc,
                    cell_id=_opt_hex(f[3], command, "cell ID"), pcid=_opt_int(f[4], command, "PCI"),
                    area=_opt_hex(f[5], command, "TAC"), earfcn=_opt_int(f[6], command, "ARFCN"),
                    rsrp=_signal(f[9], command, "RSRP"), rsrq=_signal(f[10], command, "RSRQ"),
                    extra=(("duplex", _loose(f[0])),
                           *_extra(("band", "dl_bw", "sinr", "scs", "srxlev"), (*f[7:9], *f[11:14]))))


_NSA_NAMES = ("nr_mcc", "nr_mnc", "nr_pcid", "nr_rsrp", "nr_sinr", "nr_rsrq", "nr_arfcn", "nr_band",
              "nr_dl_bw", "nr_scs")

_RAT_PARSERS: dict[str, Callable[[str, str, Sequence[str], str], CellInfo]] = {
    "LTE": _lte, "CAT-M": _lte, "CAT-NB": _lte, "EMTC": _lte, "NBIOT": _lte,
    "GSM": _gsm, "WCDMA": _wcdma, "NR5G-SA": _nr_sa,
}


def _cell_row(state: str, row: Sequence[str], command: str) -> CellInfo:
    rat = _word(row[0], command, "RAT")
    parser = _RAT_PARSERS.get(rat)
    return CellInfo(state=state, rat=rat) if parser is None else parser(state, rat, row[1:], command)


def _with_nsa(state: str, anchor: CellInfo | None, nsa: Sequence[str], command: str) -> CellInfo:
    _need(nsa, 3, "NR5G-NSA", command)
    extra = _extra(_NSA_NAMES, nsa)
    if anchor is None:
        return CellInfo(state=state, rat="NR5G-NSA", mcc=_opt_int(nsa[0], command, "MCC"),
                        mnc=_opt_int(nsa[1], command, "MNC"), extra=extra)
    return replace(anchor, rat="NR5G-NSA", extra=anchor.extra + extra)


def _multi_line(state: str, rows: Sequence[Sequence[str]], command: str) -> CellInfo:
    """RM5xx/EN-DC: ``"servingcell",<state>`` then one line per RAT (``"LTE",...``, ``"NR5G-NSA",...``)."""
    anchor: CellInfo | None = None
    nsa: Sequence[str] | None = None
    for row in rows:
        if _word(row[0], command, "RAT") == "NR5G-NSA":
            nsa = row[1:]
        elif anchor is None:
            anchor = _cell_row(state, row, command)
    if nsa is not None:
        return _with_nsa(state, anchor, nsa, command)
    return anchor if anchor is not None else CellInfo(state=state)


def parse_qeng_servingcell(response: Response) -> CellInfo:
    """``+QENG: "servingcell",...`` in every known shape -> ``CellInfo`` (location-bearing: personal data).

    Shapes: LTE (short, and EC25's long form with cqi/tx_power), CAT-M, GSM, WCDMA, NR5G-SA on one line;
    ``SEARCH``/``LIMSRV`` with only a state; and the multi-line EN-DC form (state line, LTE line,
    NR5G-NSA line).
    """
    command = response.command.name
    _require_ok(response)
    rows = [split_fields(payload, command) for payload in _payloads(response, "+QENG")]
    if not rows or unquote(rows[0][0]).lower() != "servingcell" or len(rows[0]) < 2:
        raise _malformed(command, "no servingcell line")
    state = _word(rows[0][1], command, "state")
    if len(rows[0]) == 2:
        return _multi_line(state, rows[1:], command)
    return _cell_row(state, rows[0][2:], command)


# -- registration and functionality --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Registration:
    """``+CREG``/``+CEREG``/``+CGREG``: read form (``n`` known) or URC form (``n`` None).

    ``area`` (LAC/TAC) and ``cell_id`` are upper-case hex as printed, or None; they are location-bearing.
    """

    stat: int
    n: int | None = None
    area: str | None = None
    cell_id: str | None = None
    act: int | None = None

    @property
    def carries_location(self) -> bool:
        return self.area is not None or self.cell_id is not None


def _registration_payload(source: str | Response, prefix: str) -> tuple[str, str]:
    if isinstance(source, Response):
        return _first_payload(source, prefix), source.command.name
    if plus_prefix(source.strip()) != prefix:
        raise _malformed(prefix, f"not a {prefix} line")
    return _PREFIX_HEAD.sub("", source.strip(), count=1), prefix


def _parse_registration(source: str | Response, prefix: str) -> Registration:
    payload, command = _registration_payload(source, prefix)
    fields = split_fields(payload, command)
    read_form = len(fields) >= 2 and not _is_quoted(fields[1]) and _INT.fullmatch(fields[1]) is not None
    n = _int(fields[0], command, "mode") if read_form else None
    rest = fields[2:] if read_form else fields[1:]
    stat = _int(fields[1] if read_form else fields[0], command, "status")
    if not 0 <= stat <= 11 or (n is not None and not 0 <= n <= 5):
        raise _malformed(command, "status or mode out of range")
    padded = [*rest, "", "", ""]
    return Registration(stat=stat, n=n, area=_opt_hex(padded[0], command, "area code"),
                        cell_id=_opt_hex(padded[1], command, "cell ID"),
                        act=_opt_int(padded[2], command, "access technology"))


def parse_creg(source: str | Response) -> Registration:
    """``+CREG: [<n>,]<stat>[,"<lac>","<ci>"[,<AcT>]]`` (a line or a ``AT+CREG?`` response)."""
    return _parse_registration(source, "+CREG")


def parse_cereg(source: str | Response) -> Registration:
    """``+CEREG: [<n>,]<stat>[,"<tac>","<ci>"[,<AcT>]]`` (a line or a ``AT+CEREG?`` response)."""
    return _parse_registration(source, "+CEREG")


def parse_cgreg(source: str | Response) -> Registration:
    """``+CGREG: [<n>,]<stat>[,"<lac>","<ci>"[,<AcT>]]`` (a line or a ``AT+CGREG?`` response)."""
    return _parse_registration(source, "+CGREG")


_REGISTRATION_PREFIXES = ("+CREG", "+CEREG", "+CGREG")


def parse_registration_mode(response: Response) -> int:
    """The URC mode ``n`` from an ``AT+CREG?``/``AT+CEREG?``/``AT+CGREG?`` response (2 = with cell IDs)."""
    _require_ok(response)
    for line in response.lines:
        prefix = plus_prefix(line)
        if prefix in _REGISTRATION_PREFIXES:
            registration = _parse_registration(line, prefix)
            if registration.n is None:
                break
            return registration.n
    raise _malformed(response.command.name, "no registration read-form line")


def parse_cfun(response: Response) -> int:
    """``+CFUN: <fun>`` -> the functionality level (0 minimum, 1 full, 4 RF off)."""
    command = response.command.name
    fields = split_fields(_first_payload(response, "+CFUN"), command)
    fun = _int(fields[0], command, "functionality")
    if not 0 <= fun <= 127:
        raise _malformed(command, "functionality out of range")
    return fun
