"""Privacy guard for QuecPython modules: GNSS stays off from power-on while the user's switch is off.

Strategy: everything the guard decides lives here, written for the MicroPython subset that QuecPython firmware
runs (no f-strings, no annotations, no dataclasses; types are comments, ``typing`` is only read by mypy).
The QuecPython modules (``quecgnss``, ``modem``, ``sim``, ``uos``, ``ujson``) and the serial channel are
passed in, never imported, so the same code runs under CPython with fakes (``privacy_guard_fakes``) and on
the module (``main.py`` wires the real ones).

Pieces, from the bottom up:

* ``cbor_encode``: a tiny deterministic CBOR encoder for the status map (maps with text keys, ints, text,
  bool, null), shortest form, keys in the order of cbor2's canonical encoder (length first, then bytes).
* ``LineReader`` and ``parse_request``: the line protocol, bytes in, requests out, bounded buffer.
* ``SwitchStore``: the persisted switch, a small JSON record under ``/usr`` written atomically (temp file and
  rename) with a backup copy; a torn or corrupt copy loses to the other; if both are bad the switch is off.
* ``Guard``: the switch state machine. ``boot()`` reads the switch and, if it is off, turns GNSS off before
  anything else; ``tick()`` re-checks GNSS and serves at most a few requests, so each tick is bounded work.

Wire protocol (version 1), one ASCII line per message, requests end with LF, CR or CR LF::

    request   PG <seq> VER | PG <seq> STATUS | PG <seq> SET ON | PG <seq> SET OFF
    reply     PG <seq> VER <protocol> <guard version>
              PG <seq> ST <lower-case hex of the CBOR status map>
              PG <seq> ERR <reason>

``seq`` is 1..999999 (no leading zeros), chosen by the host and echoed back, so the host can drop stale
replies; ``0`` answers lines too broken to carry one. Replies end with CR LF.
"""

VERSION = "1.0.0"
PROTOCOL = 1

MAX_REQUEST_LINE = 64  # the longest valid request is 20 bytes; anything far longer is noise
READ_CHUNK = 128  # bytes taken from the channel per tick
MAX_REQUESTS_PER_TICK = 4
MAX_CBOR_DEPTH = 4

GNSS_OFF = 0
GNSS_UPDATING = 1  # firmware update: no positions, and cutting it short could brick the receiver

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    class GnssApi(Protocol):
        def get_state(self) -> int: ...
        def gnssEnable(self, opt: int) -> int: ...

    class ModemApi(Protocol):
        def getDevModel(self) -> Any: ...

    class SimApi(Protocol):
        def getStatus(self) -> int: ...

    class FsApi(Protocol):
        def rename(self, old: str, new: str) -> None: ...
        def remove(self, path: str) -> None: ...
        def stat(self, path: str) -> Any: ...

    class JsonApi(Protocol):
        def loads(self, __text: str) -> Any: ...  # dunder names: positional-only, as mypy reads it
        def dumps(self, __value: Any) -> str: ...

    class FileLike(Protocol):
        def read(self) -> Any: ...
        def write(self, data: Any) -> Any: ...
        def close(self) -> None: ...

    class Channel(Protocol):
        def any(self) -> int: ...
        def read(self, size: int) -> bytes | None: ...
        def write(self, data: bytes) -> Any: ...

    Opener = Callable[[str, str], FileLike]


# --- CBOR (RFC 8949, deterministic encoding) ----------------------------------------------------------------

_MAJOR_UINT = 0
_MAJOR_NEGINT = 1
_MAJOR_TEXT = 3
_MAJOR_MAP = 5
_FALSE = 0xF4
_TRUE = 0xF5
_NULL = 0xF6


def cbor_encode(value):
    # type: (Any) -> bytes
    """Encode ``value`` (a map with text keys, int, text, bool or None) in deterministic CBOR.

    Raises ValueError for anything else (floats, bytes, lists, non-text keys, integers outside 64 bits).
    """
    out = bytearray()
    _encode_item(out, value, 0)
    return bytes(out)


def _append_head(out, major, number):
    # type: (bytearray, int, int) -> None
    if number < 24:
        out.append((major << 5) | number)
        return
    if number < 0x100:
        extra, size = 24, 1
    elif number < 0x10000:
        extra, size = 25, 2
    elif number >> 32 == 0:
        extra, size = 26, 4
    elif number >> 64 == 0:  # shifts, not a 2**64 literal: some ports have no integers that wide
        extra, size = 27, 8
    else:
        raise ValueError("integer does not fit in 64 bits")
    out.append((major << 5) | extra)
    shift = (size - 1) * 8
    while shift >= 0:
        out.append((number >> shift) & 0xFF)
        shift -= 8


def _encode_item(out, value, depth):
    # type: (bytearray, Any, int) -> None
    # True/False before int: bool is a kind of int in CPython and in MicroPython.
    if value is None:
        out.append(_NULL)
    elif value is True:
        out.append(_TRUE)
    elif value is False:
        out.append(_FALSE)
    elif isinstance(value, int):
        if value >= 0:
            _append_head(out, _MAJOR_UINT, value)
        else:
            _append_head(out, _MAJOR_NEGINT, -1 - value)
    elif isinstance(value, str):
        _append_text(out, value)
    elif isinstance(value, dict):
        _encode_map(out, value, depth)
    else:
        raise ValueError("type not allowed in a status map")


def _append_text(out, text):
    # type: (bytearray, str) -> None
    data = text.encode()
    _append_head(out, _MAJOR_TEXT, len(data))
    out.extend(data)


def _map_key_order(pair):
    # type: (tuple[bytes, Any]) -> tuple[int, bytes]
    return (len(pair[0]), pair[0])


def _encode_map(out, mapping, depth):
    # type: (bytearray, dict[Any, Any], int) -> None
    if depth >= MAX_CBOR_DEPTH:
        raise ValueError("maps nested too deeply")
    pairs = []  # type: list[tuple[bytes, Any]]
    for key in mapping:
        if not isinstance(key, str):
            raise ValueError("map keys must be text")
        key_head = bytearray()
        _append_text(key_head, key)
        pairs.append((bytes(key_head), mapping[key]))
    pairs.sort(key=_map_key_order)
    _append_head(out, _MAJOR_MAP, len(pairs))
    for encoded_key, item in pairs:
        out.extend(encoded_key)
        _encode_item(out, item, depth + 1)


_HEX_DIGITS = "0123456789abcdef"


def to_hex(data):
    # type: (bytes) -> str
    """Lower-case hex; written out because ``bytes.hex`` is missing from some firmware builds."""
    return "".join([_HEX_DIGITS[byte >> 4] + _HEX_DIGITS[byte & 0x0F] for byte in data])


# --- line protocol ------------------------------------------------------------------------------------------

TOO_LONG = b"\x00too-long"  # sentinel from LineReader: a line over the limit was dropped


class LineReader:
    """Splits a byte stream into lines at CR or LF; empty lines are skipped.

    The buffer never holds more than ``max_line`` bytes of an unfinished line: a longer one is dropped and
    reported once, as ``TOO_LONG``, when its terminator arrives.
    """

    def __init__(self, max_line=MAX_REQUEST_LINE):
        # type: (int) -> None
        self._max_line = max_line
        self._buffer = b""
        self._skipping = False

    def pending(self):
        # type: () -> int
        return len(self._buffer)

    def feed(self, data):
        # type: (bytes) -> None
        self._buffer = self._buffer + bytes(data)

    def next_line(self):
        # type: () -> bytes | None
        """The next complete line, ``TOO_LONG`` for a dropped line, or None when more bytes are needed."""
        while True:
            end = _first_terminator(self._buffer)
            if end < 0:
                if len(self._buffer) > self._max_line:
                    self._buffer = b""
                    self._skipping = True
                return None
            line = self._buffer[:end]
            self._buffer = self._buffer[end + 1:]
            if self._skipping or len(line) > self._max_line:
                self._skipping = False
                return TOO_LONG
            if line:
                return line


def _first_terminator(data):
    # type: (bytes) -> int
    cr = data.find(b"\r")
    lf = data.find(b"\n")
    if cr < 0:
        return lf
    if lf < 0:
        return cr
    return min(cr, lf)


class RequestError(Exception):
    """A request line that cannot be served; ``reason`` is the token sent back in ``ERR``."""

    def __init__(self, seq, reason):
        # type: (str, str) -> None
        Exception.__init__(self, reason)
        self.seq = seq
        self.reason = reason


VERBS = {"VER": 0, "STATUS": 0, "SET": 1}  # verb -> number of arguments
SWITCH_WORDS = {"ON": True, "OFF": False}


def parse_request(line):
    # type: (bytes) -> tuple[str, str, str | None]
    """``(seq, verb, argument)`` from one request line; raises RequestError with the reason to send back."""
    for byte in line:
        if byte < 0x20 or byte > 0x7E:
            raise RequestError("0", "bad-line")
    words = line.decode().split(" ")
    if len(words) < 3 or words[0] != "PG":
        raise RequestError("0", "bad-line")
    seq = words[1]
    if not _is_seq(seq):
        raise RequestError("0", "bad-line")
    verb = words[2]
    if verb not in VERBS:
        raise RequestError(seq, "unknown-verb")
    arguments = words[3:]
    if len(arguments) != VERBS[verb]:
        raise RequestError(seq, "bad-argument")
    if verb == "SET" and arguments[0] not in SWITCH_WORDS:
        raise RequestError(seq, "bad-argument")
    return seq, verb, (arguments[0] if arguments else None)


def _is_seq(text):
    # type: (str) -> bool
    # 1..999999 without leading zeros; 0 is reserved for replies to lines too broken to carry a seq.
    if not 1 <= len(text) <= 6 or text[0] == "0":
        return False
    return all(char in "0123456789" for char in text)


def reply_version(seq):
    # type: (str) -> bytes
    return "PG {} VER {} {}\r\n".format(seq, PROTOCOL, VERSION).encode()


def reply_status(seq, status):
    # type: (str, dict[str, Any]) -> bytes
    return "PG {} ST {}\r\n".format(seq, to_hex(cbor_encode(status))).encode()


def reply_error(seq, reason):
    # type: (str, str) -> bytes
    return "PG {} ERR {}\r\n".format(seq, reason).encode()


# --- persisted switch ---------------------------------------------------------------------------------------

SWITCH_PATH = "/usr/privacy_guard.json"
SOURCE_PRIMARY = "primary"
SOURCE_BACKUP = "backup"
SOURCE_NONE = "none"  # neither copy was usable: the switch is off (fail closed)
FILE_MISSING = "switch-file-missing"  # first boot after deployment: no copy written yet
FILE_DAMAGED = "switch-file-damaged"  # a copy was torn, corrupt, stale or lost; the other one (or off) won


def adler32(data):
    # type: (bytes) -> int
    """Adler-32, written out because ``binascii.crc32`` is optional in MicroPython builds."""
    low, high = 1, 0
    for byte in data:
        low = (low + byte) % 65521
        high = (high + low) % 65521
    return (high << 16) | low


def record_sum(on, gen):
    # type: (bool, int) -> int
    return adler32("privacy-guard/1 on={} gen={}".format(1 if on else 0, gen).encode())


def encode_record(json, on, gen):
    # type: (JsonApi, bool, int) -> str
    return json.dumps({"gen": gen, "on": on, "sum": record_sum(on, gen)})


def decode_record(json, text):
    # type: (JsonApi, Any) -> tuple[bool, int] | None
    """``(on, gen)`` from a record, or None for anything torn, corrupt or of the wrong shape."""
    try:
        if isinstance(text, bytes):
            text = text.decode()
        record = json.loads(text)
    except Exception:  # ValueError on CPython, various on MicroPython builds: all mean "unusable copy"
        return None
    if not isinstance(record, dict):
        return None
    on = record.get("on")
    gen = record.get("gen")
    if (on is not True and on is not False) or not isinstance(gen, int) or gen is True or gen is False:
        return None
    if gen < 0 or record.get("sum") != record_sum(on, gen):
        return None
    return on, gen


class SwitchStore:
    """The user's switch on the module's flash: a primary JSON record and a backup copy of it.

    Each copy is written to a temporary file and renamed into place, primary first, so a power cut leaves at
    most one copy in doubt. Each record carries a generation number and a checksum; the newest valid one wins.
    """

    def __init__(self, fs, opener, json, path=SWITCH_PATH):
        # type: (FsApi, Opener, JsonApi, str) -> None
        self._fs = fs
        self._open = opener
        self._json = json
        self.path = path
        self.backup_path = path + ".bak"

    def load(self):
        # type: () -> tuple[bool, int, str, str | None]
        """``(on, gen, source, problem)``; ``problem`` is None when both copies are valid and agree."""
        primary = self._read(self.path)
        backup = self._read(self.backup_path)
        if primary is not None and (backup is None or primary[1] >= backup[1]):
            return primary[0], primary[1], SOURCE_PRIMARY, (None if primary == backup else FILE_DAMAGED)
        if backup is not None:
            return backup[0], backup[1], SOURCE_BACKUP, FILE_DAMAGED
        if self._exists(self.path) or self._exists(self.backup_path):
            return False, 0, SOURCE_NONE, FILE_DAMAGED
        return False, 0, SOURCE_NONE, FILE_MISSING

    def save(self, on, gen):
        # type: (bool, int) -> None
        """Write both copies; raises OSError (or the filesystem's own error) when flash refuses."""
        text = encode_record(self._json, on, gen)
        self._write_atomically(self.path, text)
        self._write_atomically(self.backup_path, text)

    def _read(self, path):
        # type: (str) -> tuple[bool, int] | None
        try:
            handle = self._open(path, "r")
            try:
                text = handle.read()
            finally:
                handle.close()
        except Exception:  # missing file or unreadable flash: this copy cannot be trusted
            return None
        return decode_record(self._json, text)

    def _exists(self, path):
        # type: (str) -> bool
        try:
            self._fs.stat(path)
        except Exception:
            return False
        return True

    def _write_atomically(self, path, text):
        # type: (str, str) -> None
        temporary = path + ".tmp"
        handle = self._open(temporary, "w")
        try:
            handle.write(text)
        finally:
            handle.close()
        try:
            self._fs.rename(temporary, path)
        except OSError:
            # Some filesystems refuse to rename over an existing file; the other copy covers this window.
            self._fs.remove(path)
            self._fs.rename(temporary, path)


# --- the guard ----------------------------------------------------------------------------------------------

class Guard:
    """The switch state machine: fail closed until the switch is read, then keep GNSS off while it is off.

    ``on`` means GNSS is allowed, not forced: the guard never starts GNSS itself (``quecgnss.init()`` would).
    """

    def __init__(self, gnss, store, channel, modem=None, sim=None):
        # type: (GnssApi, SwitchStore, Channel | None, ModemApi | None, SimApi | None) -> None
        self._gnss = gnss
        self._store = store
        self._channel = channel
        self._modem = modem
        self._sim = sim
        self._reader = LineReader()
        self.on = False  # fail closed until boot() has read the switch
        self.persisted_on = False
        self.gen = 0
        self.source = SOURCE_NONE
        self.repairs = 0
        self.ticks = 0
        self.error = None  # type: str | None
        self.model = None  # type: str | None

    def boot(self):
        # type: () -> None
        """Read the switch and, if it is off, turn GNSS off before anything else."""
        on, gen, source, problem = self._store.load()
        self.on, self.persisted_on, self.gen, self.source = on, on, gen, source
        if not on:
            self.enforce_off()
        if problem is not None:
            self.error = problem  # reported in status until reboot, so the host can record an incident
            self._persist(on)  # heal: both copies valid again (GNSS is already off when it has to be)
        self.model = self._read_model()

    def tick(self):
        # type: () -> None
        """One bounded step: re-check GNSS, then serve at most ``MAX_REQUESTS_PER_TICK`` requests."""
        self.ticks += 1
        if not self.on:
            self.enforce_off()
        try:
            self._pump_channel()
        except Exception:  # a broken channel must not stop the enforcement above
            self.error = "channel-error"

    def enforce_off(self):
        # type: () -> None
        state = self._gnss_state()
        if state in (GNSS_OFF, GNSS_UPDATING):
            return
        if state is not None:
            self.repairs += 1
        try:
            self._gnss.gnssEnable(0)
        except Exception:
            self.error = "gnss-disable-failed"

    def set_switch(self, on):
        # type: (bool) -> bool
        """Apply and persist the switch; True once it is on flash. Off applies even if the write fails."""
        if not on:
            self.on = False
            self.enforce_off()
        if on == self.persisted_on and self.on == on:
            return True  # nothing new to write: spare the flash
        if not self._persist(on):
            if on:
                self._roll_back_to_off()
            return False
        self.on = on
        return True

    def _roll_back_to_off(self):
        # type: () -> None
        """A failed ON write may have reached one copy, which would win at the next boot: write OFF."""
        self._persist(False)
        self.error = "persist-failed"

    def status(self):
        # type: () -> dict[str, Any]
        return {
            "on": self.on,
            "sim": self._sim_status(),
            "gnss": self._gnss_state(),
            "error": self.error,
            "model": self.model,
            "proto": PROTOCOL,
            "ticks": self.ticks,
            "source": self.source,
            "repairs": self.repairs,
            "persisted": self.persisted_on == self.on,
        }

    def handle_line(self, line):
        # type: (bytes) -> bytes
        """The reply to one request line (or to ``TOO_LONG``)."""
        if line == TOO_LONG:
            return reply_error("0", "too-long")
        try:
            seq, verb, argument = parse_request(line)
        except RequestError as refused:
            return reply_error(refused.seq, refused.reason)
        if verb == "VER":
            return reply_version(seq)
        if verb == "SET" and not self.set_switch(SWITCH_WORDS[argument or ""]):
            return reply_error(seq, "persist-failed")
        return reply_status(seq, self.status())

    def _pump_channel(self):
        # type: () -> None
        channel = self._channel
        if channel is None:
            return
        if self._reader.pending() <= MAX_REQUEST_LINE:
            waiting = channel.any()
            if waiting > 0:
                data = channel.read(min(waiting, READ_CHUNK))
                if data:
                    self._reader.feed(data)
        for _ in range(MAX_REQUESTS_PER_TICK):
            line = self._reader.next_line()
            if line is None:
                return
            channel.write(self.handle_line(line))

    def _persist(self, on):
        # type: (bool) -> bool
        gen = self.gen + 1
        self.gen = gen  # used even if the write fails: it may be on flash in part, and gens never repeat
        try:
            self._store.save(on, gen)
        except Exception:  # OSError on flash; anything else is just as much a failed write
            self.error = "persist-failed"
            return False
        self.persisted_on = on
        if self.error == "persist-failed":
            self.error = None
        return True

    def _gnss_state(self):
        # type: () -> int | None
        try:
            state = self._gnss.get_state()
        except Exception:
            return None
        return state if isinstance(state, int) and state >= 0 else None

    def _read_model(self):
        # type: () -> str | None
        if self._modem is None:
            return None
        try:
            model = self._modem.getDevModel()
        except Exception:
            return None
        return model if isinstance(model, str) and len(model) <= 32 else None

    def _sim_status(self):
        # type: () -> int | None
        if self._sim is None:
            return None
        try:
            status = self._sim.getStatus()
        except Exception:
            return None
        return status if isinstance(status, int) else None


def run(guard, sleep_ms, tick_ms=200, max_ticks=-1):
    # type: (Guard, Callable[[int], Any], int, int) -> None
    """Tick forever (or ``max_ticks`` times); an unexpected error in a tick never ends the loop."""
    done = 0
    while max_ticks < 0 or done < max_ticks:
        try:
            guard.tick()
        except Exception:
            guard.error = "tick-failed"
        sleep_ms(tick_ms)
        done += 1
