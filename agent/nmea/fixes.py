"""From checked sentences to :class:`agent.model.Fix` values: one fix per epoch.

A receiver reports each epoch (one time of day) in several sentences: Quectel EC25 sends GGA, VTG, RMC, GSA,
GSV; the EG25-G adds GNS; an L76K sends GGA, GLL, GSA, GSV, RMC, VTG, ZDA; a multi-constellation receiver may
send a GGA per constellation (``$GPGGA``, ``$GLGGA``) beside the combined ``$GNGGA`` and one ``$GNRMC``.
:class:`FixAssembler` merges the position sentences of an epoch (GGA, RMC, GNS, GLL) and VTG into one ``Fix``:
the position of the latest valid position sentence (``source`` and ``talker`` name it), except that a
single-constellation talker never replaces the combined one (``GN``: the solution from every constellation);
altitude, HDOP, satellites and quality from GGA/GNS by the same rule; speed and course from RMC, else VTG.

When is an epoch complete? Like gpsd, the assembler learns the receiver's cycle: the last position sentence
address (talker and type, e.g. ``GNRMC``) of an epoch is its *ender*, and once known, the fix is emitted as
soon as the ender arrives. Before that (the first epoch), whenever the pattern changes, and while no date is
known (the date may come later in the same epoch: the first dated epoch keeps its date), an epoch is emitted
when the next one starts. A new epoch starts when the time of day changes or an address repeats: ``$GPGGA``
then ``$GLGGA`` at one time of day are one epoch. A sentence without a time of day (GLL before NMEA 2.0, a
receiver without a fix) belongs to the epoch in progress unless its address repeats.
:meth:`FixAssembler.flush` emits the epoch in progress (end of input).

The date comes from the latest RMC or ZDA and then follows the stream: a time of day more than 12 hours before
the previous one is the next day (the midnight roll-over between an RMC and the next GGA), more than 12 hours
after it the previous day.

The mode (``Fix.mode``, see :mod:`agent.nmea.modes`) comes from GGA's quality and the RMC/GLL/GNS mode
indicators of the talker whose position is used; when its sentences differ, the finest measured mode wins
(an NMEA 2.3 RMC has no letter for RTK and says D beside GGA quality 4). An epoch is a position
(``valid=True``) when at least one position sentence reports a measured fix with coordinates and none says
simulator or manual input. A simulated or manual epoch gives ``valid=False`` with that mode; any other epoch
without a position (GGA quality 0, RMC/GLL status V, GNS mode all N, or coordinates missing, in every position
sentence) gives ``valid=False`` and mode ``"invalid"``. Neither carries a position nor anything derived from
one. A VTG whose mode says its data is not measured (N, S, M) gives no speed or course.

A sentence whose fields cannot be read is dropped and counted in ``undecodable``; the position it might carry
is never guessed. VTG and ZDA are decoded only when they can add something (a VTG when the epoch's RMC has no
speed or course; a ZDA whose date fields changed), so an unreadable one is counted only then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from agent.errors import NmeaError
from agent.model import Fix
from agent.nmea import modes
from agent.nmea.reader import DEFAULT_MAX_SENTENCE_BYTES, NmeaReader, Sentence
from agent.nmea.sentences import (
    KNOTS_TO_KMH,
    Gga,
    Gll,
    Gns,
    Rmc,
    decode_gga,
    decode_gll,
    decode_gns,
    decode_rmc,
    decode_vtg,
    decode_zda,
)

POSITION_KINDS = frozenset({"GGA", "RMC", "GNS", "GLL"})
FIX_INPUTS = POSITION_KINDS | {"VTG", "ZDA"}  # what FixAssembler.push reads; it ignores every other sentence
COMBINED_TALKER = "GN"  # a solution from every constellation the receiver uses
_HALF_DAY_S = 43_200.0
_ONE_DAY = dt.timedelta(days=1)
_VTG_NOT_MEASURED = frozenset({"N", "S", "M"})


def _seconds_of_day(time: dt.time) -> float:
    return time.hour * 3600 + time.minute * 60 + time.second + time.microsecond / 1e6


def _replaces(current_talker: str, talker: str) -> bool:
    """Whether a sentence from ``talker`` may replace what one from ``current_talker`` said in this epoch:
    always, except a single-constellation talker after the combined one."""
    return talker == COMBINED_TALKER or current_talker != COMBINED_TALKER


class _Epoch:
    """What the sentences of one epoch said so far. A plain class whose defaults live on the class: a receiver
    starts an epoch every second or faster, and this makes starting one three attribute stores."""

    emitted: bool = False
    source: str = ""
    talker: str = ""  # the talker of the position sentence in use (of the first sentence while none is valid)
    valid: bool = False
    not_measured: str | None = None  # "simulator" or "manual" once a sentence said so
    lat: float | None = None
    lon: float | None = None
    details_talker: str = ""  # the talker of the GGA/GNS whose altitude, HDOP and satellites are in use
    altitude_m: float | None = None
    hdop: float | None = None
    satellites: int | None = None
    quality: int | None = None
    speed_kmh: float | None = None
    course_deg: float | None = None
    vtg: Sentence | None = None  # decoded only if the fix needs its speed or course

    def __init__(self, time: dt.time | None = None) -> None:
        self.time = time
        self.addresses: list[str] = []  # position sentence addresses seen, in order
        self.modes: dict[str, str | None] = {}  # per talker, the finest mode of its valid position sentences


class FixAssembler:
    """Sentences in, one ``Fix`` per epoch out; see the module docstring for the rules."""

    def __init__(self) -> None:
        self.undecodable = 0
        self._epoch = _Epoch()
        self._ender: str | None = None  # the receiver's last position sentence address per epoch, once learnt
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
        if epoch.addresses and not epoch.emitted:
            return [self._fix(epoch)]
        return []

    # -- per sentence type ---------------------------------------------------------------------------------

    def _from_position(self, sentence: Sentence, fixes: list[Fix]) -> None:
        decoded, mode = self._read_position(sentence)
        kind, talker = sentence.kind, sentence.talker
        address = talker + kind
        epoch = self._epoch_for(address, decoded.time, fixes)
        epoch.addresses.append(address)
        if not epoch.source:
            epoch.source, epoch.talker = kind, talker
        if mode in modes.NOT_MEASURED:
            epoch.not_measured = mode
        elif modes.is_position(mode) and decoded.lat is not None and decoded.lon is not None:
            self._take_position(epoch, kind, decoded, mode)
        if epoch.quality is None and isinstance(decoded, Gga):  # kept even without a fix: quality 0 says why
            epoch.quality = decoded.quality
        if address == self._ender and not epoch.emitted and self._date is not None:
            epoch.emitted = True
            fixes.append(self._fix(epoch))

    def _read_position(self, sentence: Sentence) -> tuple[Gga | Rmc | Gns | Gll, str | None]:
        """The decoded position sentence and the mode it reports; an RMC's date is learnt on the way."""
        kind = sentence.kind
        if kind == "GGA":
            gga = decode_gga(sentence)
            return gga, modes.quality_mode(gga.quality)
        if kind == "RMC":
            rmc = decode_rmc(sentence)
            if rmc.date is not None and rmc.time is not None:
                self._learn_date(rmc.date, rmc.time)
            return rmc, modes.status_mode(rmc.status, rmc.mode)
        if kind == "GNS":
            gns = decode_gns(sentence)
            return gns, modes.constellations_mode(gns.mode)
        gll = decode_gll(sentence)
        return gll, modes.status_mode(gll.status, gll.mode)

    def _take_position(self, epoch: _Epoch, kind: str, decoded: Gga | Rmc | Gns | Gll, mode: str | None) -> None:
        """Merge a sentence that reports a measured position into ``epoch`` (rules: module docstring)."""
        talker = decoded.talker
        epoch.modes[talker] = modes.finer(epoch.modes.get(talker), mode)
        replaces = not epoch.valid or _replaces(epoch.talker, talker)
        if replaces:
            epoch.valid, epoch.source, epoch.talker = True, kind, talker
            epoch.lat, epoch.lon = decoded.lat, decoded.lon
        if isinstance(decoded, Rmc):
            if decoded.speed_knots is not None and (replaces or epoch.speed_kmh is None):
                epoch.speed_kmh = decoded.speed_knots * KNOTS_TO_KMH
            if decoded.course_deg is not None and (replaces or epoch.course_deg is None):
                epoch.course_deg = decoded.course_deg
        elif isinstance(decoded, (Gga, Gns)) and _replaces(epoch.details_talker, talker):
            epoch.details_talker = talker
            epoch.altitude_m, epoch.hdop, epoch.satellites = decoded.altitude_m, decoded.hdop, decoded.satellites
            if isinstance(decoded, Gga):
                epoch.quality = decoded.quality

    def _epoch_for(self, address: str, time: dt.time | None, fixes: list[Fix]) -> _Epoch:
        """The epoch a position sentence from ``address`` at ``time`` belongs to, starting a new one if needed."""
        epoch = self._epoch
        same_time = time == epoch.time or (time is None and bool(epoch.addresses))
        if not same_time or address in epoch.addresses:
            self._close_epoch(time, fixes)
        return self._epoch

    def _close_epoch(self, time: dt.time | None, fixes: list[Fix]) -> None:
        """Start a new epoch at ``time``; add the old one's fix to ``fixes`` if it was not emitted yet."""
        old, self._epoch = self._epoch, _Epoch(time)
        if not old.addresses:
            return
        self._ender = old.addresses[-1]
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
        if vtg.mode in _VTG_NOT_MEASURED:  # NMEA 2.3+: not valid, simulated or typed in
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
        if not epoch.valid or epoch.not_measured:
            mode = epoch.not_measured or modes.INVALID
            return Fix(epoch.source, False, timestamp, fix_quality=epoch.quality, talker=epoch.talker, mode=mode)
        if epoch.vtg is not None and (epoch.speed_kmh is None or epoch.course_deg is None):
            self._apply_vtg(epoch)
        return Fix(epoch.source, True, timestamp, epoch.lat, epoch.lon, altitude_m=epoch.altitude_m,
                   hdop=epoch.hdop, satellites=epoch.satellites, speed_kmh=epoch.speed_kmh,
                   course_deg=epoch.course_deg, fix_quality=epoch.quality, talker=epoch.talker,
                   mode=epoch.modes[epoch.talker])


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
