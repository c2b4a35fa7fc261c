"""NMEA 0183 core (pure): framing and checksums, typed decoders, fix assembly, capture files.

::

    reader = NmeaReader()                 # or FixDecoder() for bytes -> Fix directly
    reader.feed(chunk)                    # any chunking; garbage and binary are counted and skipped
    for sentence in reader:               # Sentence(talker, kind, fields, proprietary)
        value = decode(sentence)          # Gga | Rmc | Gns | Gsa | Gsv | Vtg | Zda | Proprietary | Unknown
        fix = assembler.push(sentence)    # agent.model.Fix or None
"""

from agent.nmea.capture import CaptureFilter
from agent.nmea.checksum import nmea_checksum, with_checksum
from agent.nmea.fixes import FixAssembler, FixDecoder
from agent.nmea.reader import (
    DECODED_TYPES,
    DEFAULT_MAX_SENTENCE_BYTES,
    NEED_DATA,
    NmeaReader,
    ReaderCounters,
    Sentence,
)
from agent.nmea.sentences import (
    Decoded,
    Gga,
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
