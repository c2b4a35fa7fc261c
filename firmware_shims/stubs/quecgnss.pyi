"""QuecPython built-in GNSS (EC200U, EC800M/G class), from the public API description (the calls we use)."""

def init() -> int:
    """Initialise GNSS; also turns it on. 0 ok, -1 failure."""

def get_state() -> int:
    """0 off, 1 GNSS firmware updating, 2 positioning."""

def gnssEnable(opt: int) -> int:
    """1 on, 0 off; returns 0 ok, -1 failure."""

def read(size: int) -> tuple[int, bytes]:
    """``(nbytes, data)`` with raw NMEA text."""

def configSet(config_type: int, config_value: int) -> int: ...
def configGet(config_type: int) -> int: ...
