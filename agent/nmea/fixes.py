"""From checked sentences to :class:`agent.model.Fix` values.

:class:`FixAssembler` emits one ``Fix`` per position sentence (GGA, RMC, GNS), in stream order, with
``source`` naming the sentence. A receiver sends several sentences per epoch (one time of day); what the
position sentence itself lacks is taken from the sentences of the same epoch that came before it: altitude,
HDOP and satellites from GGA/GNS, speed and course from RMC/VTG. The date comes from the latest RMC or ZDA; a
GGA/GNS time of day that is more than 12 hours before (after) the time the date was learnt belongs to the next
(previous) day, which covers the midnight roll-over between an RMC and the next GGA.

A "no fix" report (GGA quality 0, RMC status V, GNS mode all N, or coordinates missing) gives ``valid=False``
and carries no position and nothing else derived from one. A sentence whose fields cannot be read is dropped
and counted in ``undecodable``; the position it might carry is never guessed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from agent.errors import NmeaError
from agent.model import Fix
from agent.nmea.reader import DEFAULT_MAX_SENTENCE_BYTES, NmeaReader, Sentence
from agent.nmea.sentences import (
    KNOTS_TO_KMH,
    Gga,
    Gns,
    Rmc,
    Vtg,
    Zda,
    decode_gga,
    decode_gns,
    decode_rmc,
    decode_vtg,
    decode_zda,
)

_FIX_INPUTS = frozenset({"GGA", "RMC", "GNS", "VTG", "ZDA"})  # what FixAssembler.push reads; it ignores the rest
_HALF_DAY_S = 43_200.0
_ONE_DAY = dt.timedelta(days=1)


def _seconds_of_day(time: dt.time) -> float:
    return time.hour * 3600 + time.minute * 60 + time.second + time.microsecond / 1e6


@dataclass(slots=True)
class _Epoch:
    """What is known about the current epoch (one time of day) from the sentences seen so far."""

    time: dt.time | None = None
    altitude_m: float | None = None
    hdop: float | None = None
    satellites: int | None = None
    speed_kmh: float | None = None
    course_deg: float | None = None


class FixAssembler:
    """Sentences in, ``Fix`` values out; see the module docstring for how epochs and dates are combined."""

    def __init__(self) -> None:
        self.undecodable = 0
        self._date: dt.date | None = None
        self._date_learnt_at = 0.0  # seconds of day of the sentence that gave the date
        self._epoch = _Epoch()

    def push(self, sentence: Sentence) -> Fix | None:
        """Take one sentence; return the fix it completes, if it is a position sentence."""
        if sentence.proprietary:
            return None
        kind = sentence.kind
        try:
            if kind == "GGA":
                return self._from_gga(decode_gga(sentence))
            if kind == "RMC":
                return self._from_rmc(decode_rmc(sentence))
            if kind == "GNS":
                return self._from_gns(decode_gns(sentence))
            if kind == "VTG":
                self._from_vtg(decode_vtg(sentence))
            elif kind == "ZDA":
                self._from_zda(decode_zda(sentence))
        except NmeaError:
            self.undecodable += 1
        return None

    # -- per sentence type ---------------------------------------------------------------------------------

    def _from_gga(self, gga: Gga) -> Fix:
        valid = bool(gga.quality) and gga.lat is not None and gga.lon is not None
        epoch = self._enter_epoch(gga.time)
        if valid:
            epoch.altitude_m, epoch.hdop, epoch.satellites = gga.altitude_m, gga.hdop, gga.satellites
        return self._fix("GGA", gga.talker, valid, gga.time, gga.lat, gga.lon, gga.quality)

    def _from_gns(self, gns: Gns) -> Fix:
        valid = bool(gns.mode.strip("N")) and gns.lat is not None and gns.lon is not None
        epoch = self._enter_epoch(gns.time)
        if valid:
            epoch.altitude_m, epoch.hdop, epoch.satellites = gns.altitude_m, gns.hdop, gns.satellites
        return self._fix("GNS", gns.talker, valid, gns.time, gns.lat, gns.lon, None)

    def _from_rmc(self, rmc: Rmc) -> Fix:
        if rmc.date is not None and rmc.time is not None:
            self._learn_date(rmc.date, rmc.time)
        valid = rmc.status == "A" and rmc.lat is not None and rmc.lon is not None
        epoch = self._enter_epoch(rmc.time)
        if valid:
            if rmc.speed_knots is not None:
                epoch.speed_kmh = rmc.speed_knots * KNOTS_TO_KMH
            if rmc.course_deg is not None:
                epoch.course_deg = rmc.course_deg
        return self._fix("RMC", rmc.talker, valid, rmc.time, rmc.lat, rmc.lon, None)

    def _from_vtg(self, vtg: Vtg) -> None:
        # VTG has no time of its own: it belongs to the epoch in progress.
        if vtg.mode == "N":  # NMEA 2.3+: data not valid
            return
        speed = vtg.speed_kmh
        if speed is None and vtg.speed_knots is not None:
            speed = vtg.speed_knots * KNOTS_TO_KMH
        if speed is not None:
            self._epoch.speed_kmh = speed
        if vtg.course_true_deg is not None:
            self._epoch.course_deg = vtg.course_true_deg

    def _from_zda(self, zda: Zda) -> None:
        if zda.date is not None and zda.time is not None:
            self._learn_date(zda.date, zda.time)

    # -- helpers -------------------------------------------------------------------------------------------

    def _learn_date(self, date: dt.date, time: dt.time) -> None:
        self._date = date
        self._date_learnt_at = _seconds_of_day(time)

    def _enter_epoch(self, time: dt.time | None) -> _Epoch:
        if time is None or time != self._epoch.time:
            self._epoch = _Epoch(time=time)
        return self._epoch

    def _timestamp(self, time: dt.time | None) -> dt.datetime | None:
        date = self._date
        if time is None or date is None:
            return None
        drift = _seconds_of_day(time) - self._date_learnt_at
        if drift < -_HALF_DAY_S:
            date += _ONE_DAY
        elif drift > _HALF_DAY_S:
            date -= _ONE_DAY
        return dt.datetime.combine(date, time, tzinfo=dt.UTC)

    def _fix(
        self, source: str, talker: str, valid: bool, time: dt.time | None,
        lat: float | None, lon: float | None, quality: int | None,
    ) -> Fix:
        timestamp = self._timestamp(time)
        if not valid:
            return Fix(source=source, valid=False, time=timestamp, fix_quality=quality, talker=talker)
        epoch = self._epoch
        return Fix(
            source=source, valid=True, time=timestamp, lat=lat, lon=lon,
            altitude_m=epoch.altitude_m, hdop=epoch.hdop, satellites=epoch.satellites,
            speed_kmh=epoch.speed_kmh, course_deg=epoch.course_deg, fix_quality=quality, talker=talker,
        )


class FixDecoder:
    """Bytes in, fixes out: an :class:`NmeaReader` feeding a :class:`FixAssembler` (still sans-I/O)."""

    def __init__(
        self, max_sentence_bytes: int = DEFAULT_MAX_SENTENCE_BYTES, *, allow_missing_checksum: bool = False
    ) -> None:
        self.reader = NmeaReader(max_sentence_bytes, allow_missing_checksum=allow_missing_checksum)
        self.assembler = FixAssembler()

    def feed(self, data: bytes | bytearray) -> list[Fix]:
        """The fixes (valid or not) completed by these bytes, in stream order."""
        self.reader.feed(data)
        return self._drain()

    def feed_eof(self) -> list[Fix]:
        self.reader.feed_eof()
        return self._drain()

    def _drain(self) -> list[Fix]:
        push = self.assembler.push
        fixes = []
        for sentence in self.reader:
            if sentence.kind in _FIX_INPUTS:  # skip the call for GSV, GSA, proprietary ... (most sentences)
                fix = push(sentence)
                if fix is not None:
                    fixes.append(fix)
        return fixes
