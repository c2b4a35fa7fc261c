"""Fault knobs of the simulated module (fault classes F1-F15 of the test-rig notes that apply to a modem).

Rules are keyed by command: a key matches a command when it equals the command's text after ``AT``
(``+QGPS?``) or its name (``+QGPS`` matches ``+QGPS=1`` and ``+QGPS?`` but not ``+QGPSLOC=0``).
Each rule fires ``times`` times and is then spent.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Rule:
    key: str
    times: int
    value: float | int | str | None = None

    def matches(self, name: str, text: str) -> bool:
        key = self.key.upper().removeprefix("AT")
        return self.times > 0 and key in (name, text.upper())


@dataclass(slots=True)
class Faults:
    """Fault settings; change them at any time (under the modem's lock when threads are involved).

    ``chunk_max``: a read returns at most a seeded-random 1..chunk_max bytes (F1 fragmentation).
    ``coalesce_s``: output is held back and released only at multiples of this period, so several
    responses and bursts arrive in one read (F1 coalescing).
    ``garbage_at`` / ``garbage_nmea``: probability that seeded-random binary bytes are spliced in before a
    response on an AT channel / before a sentence on the NMEA channel (F3).
    ``hdop_outlier``: probability that a ``AT+QGPSLOC`` fix carries HDOP 500.0, the invalid value seen on an
    EC21 (reference 1.4: such fixes should be dropped).
    ``shuffle_lines``: the information lines of a line with several commands come in a seeded-random order,
    as an EC200A printed them (F14).
    ``stale_fix``: right after GNSS power-up, before the first real fix, ``AT+QGPSLOC`` returns an old
    fix (F7).
    """

    chunk_max: int | None = None
    coalesce_s: float = 0.0
    garbage_at: float = 0.0
    garbage_nmea: float = 0.0
    hdop_outlier: float = 0.0
    shuffle_lines: bool = False
    stale_fix: bool = False
    rules: dict[str, list[Rule]] = field(default_factory=dict)

    def drop(self, key: str, times: int = 1) -> None:
        """No response at all (the echo still comes) to the next ``times`` matching commands (F8)."""
        self._add("drop", Rule(key, times))

    def delay(self, key: str, seconds: float, times: int = 1) -> None:
        """The response to the next ``times`` matching commands comes ``seconds`` late (F8)."""
        self._add("delay", Rule(key, times, float(seconds)))

    def busy(self, key: str, code: int, times: int = 1) -> None:
        """The next ``times`` matching commands fail with ``+CME ERROR: code`` and change nothing (F10)."""
        self._add("busy", Rule(key, times, int(code)))

    def urc_inside(self, key: str, urc: str, times: int = 1) -> None:
        """Put the line ``urc`` between the information lines and the final result of a response (F11)."""
        self._add("urc", Rule(key, times, urc))

    def final(self, key: str, text: str, times: int = 1) -> None:
        """Replace the final result with ``text`` (``"COMMAND NOT SUPPORT"``), or leave it out when empty, as
        a Wavecom answered ``+CPIN: READY`` with no OK (F9)."""
        self._add("final", Rule(key, times, text))

    def clear(self) -> None:
        self.chunk_max = None
        self.coalesce_s = 0.0
        self.garbage_at = 0.0
        self.garbage_nmea = 0.0
        self.hdop_outlier = 0.0
        self.shuffle_lines = False
        self.stale_fix = False
        self.rules.clear()

    def take(self, kind: str, name: str, text: str) -> Rule | None:
        """The first live rule of ``kind`` matching the command, spending one of its times."""
        for rule in self.rules.get(kind, []):
            if rule.matches(name, text):
                rule.times -= 1
                return rule
        return None

    def _add(self, kind: str, rule: Rule) -> None:
        if rule.times < 1:
            raise ValueError("a fault rule needs times >= 1")
        self.rules.setdefault(kind, []).append(rule)
