"""NMEA 0183 core (pure): framing and checksums, typed decoders, fix assembly, capture files.

::

    reader = NmeaReader()                 # max_sentence_bytes=256, allow_missing_checksum=False, kinds=None
    reader.feed(chunk)                    # any chunking; garbage and binary are counted and skipped
    for sentence in reader:               # Sentence(talker, kind, body, proprietary); .fields splits the body
        value = decode(sentence)          # Gga | Rmc | Gns | Gll | Gsa | Gsv | Vtg | Zda | Proprietary | Unknown
        fixes = assembler.push(sentence)  # FixAssembler: list of agent.model.Fix, one per epoch
                                          # (Fix.mode and validity: agent.nmea.modes)
    reader.feed_eof(); assembler.flush()  # end of input: the open sentence and epoch are completed
    reader.next_event()                   # a Sentence, or NEED_DATA (the one sentinel, agent.at's)
    reader.counters                       # accepted, bad_checksum, missing_checksum, malformed,
                                          # garbage_bytes, proprietary, unknown

    decoder = FixDecoder()                # both in one: decoder.feed(chunk) -> list[Fix]; decoder.feed_eof()
    CaptureFilter().feed(raw)             # gpsd .log files: drops '#' lines and Delay-Cookie bytes
"""

from agent.at.events import NEED_DATA
from agent.nmea.capture import CaptureFilter
from agent.nmea.checksum import nmea_checksum, with_checksum
from agent.nmea.fixes import FixAssembler, FixDecoder
from agent.nmea.reader import (
    DECODED_TYPES,
    DEFAULT_MAX_SENTENCE_BYTES,
    NmeaReader,
    ReaderCounters,
    Sentence,
)
from agent.nmea.sentences import (
    Decoded,
    Gga,
    Gll,
    Gns,
    Gsa,
    Gsv,
    Proprietary,
    Rmc,
    SatelliteInView,
    Unknown,
    Vtg,
    Zda,
    decode,
)

__all__ = [
    "DECODED_TYPES",
    "DEFAULT_MAX_SENTENCE_BYTES",
    "NEED_DATA",
    "CaptureFilter",
    "Decoded",
    "FixAssembler",
    "FixDecoder",
    "Gga",
    "Gll",
    "Gns",
    "Gsa",
    "Gsv",
    "NmeaReader",
    "Proprietary",
    "ReaderCounters",
    "Rmc",
    "SatelliteInView",
    "Sentence",
    "Unknown",
    "Vtg",
    "Zda",
    "decode",
    "nmea_checksum",
    "with_checksum",
]
