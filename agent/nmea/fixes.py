"""From checked sentences to :class:`agent.model.Fix` values: one fix per epoch.

A receiver reports each epoch (one time of day) in several sentences: Quectel EC25 sends GGA, VTG, RMC, GSA,
GSV; the EG25-G adds GNS; an L76K sends GGA, GLL, GSA, GSV, RMC, VTG, ZDA. :class:`FixAssembler` merges the
position sentences of an epoch (GGA, RMC, GNS) and VTG into one ``Fix``: the position of the latest valid
position sentence (``source`` names it), altitude, HDOP, satellites and quality from GGA/GNS, speed and course
from RMC, else VTG.

When is an epoch complete? Like gpsd, the assembler learns the receiver's cycle: the last position sentence
type of an epoch is its *ender*, and once known, the fix is emitted as soon as the ender arrives. Before that
(the first epoch) and whenever the pattern changes, an epoch is emitted when the next one starts. A new epoch
starts when the time of day changes or a position sentence type repeats. :meth:`FixAssembler.flush` emits the
epoch in progress (end of input).

The date comes from the latest RMC or ZDA and then follows the stream: a time of day more than 12 hours before
the previous one is the next day (the midnight roll-over between an RMC and the next GGA), more than 12 hours
after it the previous day.

A "no fix" epoch (GGA quality 0, RMC status V, GNS mode all N, or coordinates missing, in every position
sentence) gives ``valid=False`` and carries no position and nothing derived from one. A sentence whose fields
cannot be read is dropped and counted in ``undecodable``; the position it might carry is never guessed. VTG
and ZDA are decoded only when they can add something (a VTG when the epoch's RMC has no speed or course; a ZDA
whose date fields changed), so an unreadable one is counted only then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from agent.errors import NmeaError
from agent.model import Fix
from agent.nmea.reader import DEFAULT_MAX_SENTENCE_BYTES, NmeaReader, Sentence
from agent.nmea.sentences import KNOTS_TO_KMH, decode_gga, decode_gns, decode_rmc, decode_vtg, decode_zda

POSITION_KINDS = frozenset({"GGA", "RMC", "GNS"})
FIX_INPUTS = POSITION_KINDS | {"VTG", "ZDA"}  # what FixAssembler.push reads; it ignores every other sentence
_HALF_DAY_S = 43_200.0
_ONE_DAY = dt.timedelta(days=1)
_new = tuple.__new__


def _seconds_of_day(time: dt.time) -> float:
    return time.hour * 3600 + time.minute * 60 + time.second + time.microsecond / 1e6


class _Epoch:
    """What the sentences of one epoch said so far. A plain class whose defaults live on the class: a receiver
    starts an epoch every second or faster, and this makes starting one two attribute stores."""

    emitted: bool = False
    source: str = ""
    talker: str = ""
    valid: bool = False
    lat: float | None = None
    lon: float | None = None
    altitude_m: float | None = None
    hdop: float | None = None
    satellites: int | None = None
    quality: int | None = None
    speed_kmh: float | None = None
    course_deg: float | None = None
    vtg: Sentence | None = None  # decoded only if the fix needs its speed or course

    def __init__(self, time: dt.time | None = None) -> None:
        self.time = time
        self.kinds: list[str] = []  # position sentence types seen, in order


class FixAssembler:
    """Sentences in, one ``Fix`` per epoch out; see the module docstring for the rules."""

    def __init__(self) -> None:
        self.undecodable = 0
        self._epoch = _Epoch()
        self._ender: str | None = None  # the receiver's last position sentence type per epoch, once learnt
        self._date: dt.date | None = None  # the UTC date at time of day self._anchor
        self._anchor = dt.time()
        self._anchor_s = 0.0  # self._anchor in seconds of the day
        self._zda_date_fields: list[str] | None = None

    def push(self, sentence: Sentence) -> list[Fix]:
        """Take one sentence; return the fixes it completes (usually none or one)."""
        return self.push_all((sentence,))

    def push_all(self, sentences: Iterable[Sentence]) -> list[Fix]:
        """:meth:`push` each of ``sentences`` in turn; return all the fixes they complete, in order."""
        fixes: list[Fix] = []
        for sentence in sentences:
            kind = sentence.kind
            if sentence.proprietary or kind not in FIX_INPUTS:
                continue
            try:
                if kind == "VTG":
                    self._epoch.vtg = sentence  # VTG has no time of its own: it belongs to the epoch in progress
                elif kind == "ZDA":
                    self._from_zda(sentence)
                else:
                    self._from_position(sentence, fixes)
            except NmeaError:
                self.undecodable += 1
        return fixes

    def flush(self) -> list[Fix]:
        """The epoch in progress, if not emitted yet (call at the end of input)."""
        epoch, self._epoch = self._epoch, _Epoch()
        if epoch.kinds and not epoch.emitted:
            return [self._fix(epoch)]
        return []

    # -- per sentence type ---------------------------------------------------------------------------------

    def _from_position(self, sentence: Sentence, fixes: list[Fix]) -> None:
        kind = sentence.kind
        if kind == "GGA":
            gga = decode_gga(sentence)
            time, valid = gga.time, bool(gga.quality) and gga.lat is not None and gga.lon is not None
        elif kind == "RMC":
            rmc = decode_rmc(sentence)
            time, valid = rmc.time, rmc.status == "A" and rmc.lat is not None and rmc.lon is not None
            if rmc.date is not None and time is not None:
                self._learn_date(rmc.date, time)
        else:
            gns = decode_gns(sentence)
            time, valid = gns.time, bool(gns.mode.strip("N")) and gns.lat is not None and gns.lon is not None
        epoch = self._epoch
        if time != epoch.time or kind in epoch.kinds:
            self._close_epoch(time, fixes)
            epoch = self._epoch
        epoch.kinds.append(kind)
        if not epoch.source:
            epoch.source, epoch.talker = kind, sentence.talker
        if valid:
            epoch.valid, epoch.source, epoch.talker = True, kind, sentence.talker
            if kind == "GGA":
                epoch.lat, epoch.lon = gga.lat, gga.lon
                epoch.altitude_m, epoch.hdop, epoch.satellites, epoch.quality = (
                    gga.altitude_m, gga.hdop, gga.satellites, gga.quality)
            elif kind == "RMC":
                epoch.lat, epoch.lon = rmc.lat, rmc.lon
                if rmc.speed_knots is not None:
                    epoch.speed_kmh = rmc.speed_knots * KNOTS_TO_KMH
                if rmc.course_deg is not None:
                    epoch.course_deg = rmc.course_deg
            else:
                epoch.lat, epoch.lon = gns.lat, gns.lon
                epoch.altitude_m, epoch.hdop, epoch.satellites = gns.altitude_m, gns.hdop, gns.satellites
        elif kind == "GGA" and epoch.quality is None:
            epoch.quality = gga.quality
        if kind == self._ender and not epoch.emitted:
            epoch.emitted = True
            fixes.append(self._fix(epoch))

    def _close_epoch(self, time: dt.time | None, fixes: list[Fix]) -> None:
        """Start a new epoch at ``time``; add the old one's fix to ``fixes`` if it was not emitted yet."""
        old, self._epoch = self._epoch, _Epoch(time)
        if not old.kinds:
            return
        self._ender = old.kinds[-1]
        if not old.emitted:
            fixes.append(self._fix(old))

    def _from_zda(self, sentence: Sentence) -> None:
        # Receivers repeat ZDA every epoch with the same date, and the date follows the time of day by itself
        # (see _timestamp), so a ZDA whose date fields did not change has nothing to teach.
        date_fields = sentence.body.split(",")[2:5]
        if date_fields == self._zda_date_fields:
            return
        zda = decode_zda(sentence)
        self._zda_date_fields = date_fields
        if zda.date is not None and zda.time is not None:
            self._learn_date(zda.date, zda.time)

    # -- helpers -------------------------------------------------------------------------------------------

    def _learn_date(self, date: dt.date, time: dt.time) -> None:
        if date != self._date:
            self._zda_date_fields = None
        self._date, self._anchor, self._anchor_s = date, time, _seconds_of_day(time)

    def _timestamp(self, time: dt.time | None) -> dt.datetime | None:
        """The date follows the stream: a time of day more than 12 h before the last one is the next day."""
        date = self._date
        if time is None or date is None:
            return None
        if time != self._anchor:
            seconds = _seconds_of_day(time)
            drift = seconds - self._anchor_s
            try:
                if drift < -_HALF_DAY_S:
                    date += _ONE_DAY
                elif drift > _HALF_DAY_S:
                    date -= _ONE_DAY
            except OverflowError:  # past 9999-12-31 or before 0001-01-01: a bogus date; wait for a real one
                self._date = None
                return None
            self._date, self._anchor, self._anchor_s = date, time, seconds
        return dt.datetime.combine(date, time, tzinfo=dt.UTC)

    def _apply_vtg(self, epoch: _Epoch) -> None:
        """Decode the epoch's VTG into the speed and course its RMC did not give."""
        sentence, epoch.vtg = epoch.vtg, None
        if sentence is None:
            return
        try:
            vtg = decode_vtg(sentence)
        except NmeaError:
            self.undecodable += 1
            return
        if vtg.mode == "N":  # NMEA 2.3+: data not valid
            return
        speed = vtg.speed_kmh
        if speed is None and vtg.speed_knots is not None:
            speed = vtg.speed_knots * KNOTS_TO_KMH
        if epoch.speed_kmh is None:
            epoch.speed_kmh = speed
        if epoch.course_deg is None:
            epoch.course_deg = vtg.course_true_deg

    def _fix(self, epoch: _Epoch) -> Fix:
        timestamp = self._timestamp(epoch.time)
        if not epoch.valid:
            return Fix(epoch.source, False, timestamp, fix_quality=epoch.quality, talker=epoch.talker)
        if epoch.vtg is not None and (epoch.speed_kmh is None or epoch.course_deg is None):
            self._apply_vtg(epoch)
        # Fix(...) runs a Python-level __new__ taking every field by name; this is the same tuple, built directly
        return _new(Fix, (epoch.source, True, timestamp, epoch.lat, epoch.lon, epoch.altitude_m, epoch.hdop,
                          epoch.satellites, epoch.speed_kmh, epoch.course_deg, epoch.quality, epoch.talker))


class FixDecoder:
    """Bytes in, fixes out: an :class:`NmeaReader` feeding a :class:`FixAssembler` (still sans-I/O)."""

    def __init__(
        self, max_sentence_bytes: int = DEFAULT_MAX_SENTENCE_BYTES, *, allow_missing_checksum: bool = False
    ) -> None:
        self.reader = NmeaReader(
            max_sentence_bytes, allow_missing_checksum=allow_missing_checksum, kinds=FIX_INPUTS
        )
        self.assembler = FixAssembler()

    def feed(self, data: bytes | bytearray) -> list[Fix]:
        """The fixes (valid or not) completed by these bytes, in stream order."""
        self.reader.feed(data)
        return self._drain()

    def feed_eof(self) -> list[Fix]:
        """End of input: the sentence and the epoch still open are completed."""
        self.reader.feed_eof()
        return self._drain() + self.assembler.flush()

    def _drain(self) -> list[Fix]:
        return self.assembler.push_all(self.reader.take_all())
