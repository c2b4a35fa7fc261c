"""``/usr/main.py``: the firmware runs this at boot. Wires the real QuecPython modules into the privacy guard.

Order matters: the switch is read and GNSS turned off (when the switch is off) before anything else runs, then
the guard's loop starts in its own thread and, if present, the integrator's application (``/usr/app.py``) is
imported. If the guard itself cannot start, GNSS is turned off and kept off (fail closed). A module without
built-in GNSS (no ``quecgnss``) has nothing to guard and goes straight to the application.
"""

import _thread
import sys

import utime

GUARD_UART_NUMBER = 3  # UART.UART3 is the USB CDC port on EC200U/EC600U/EC800M; BG95M3 needs another one
GUARD_BAUDRATE = 115200
TICK_MS = 200
FALLBACK_CHECK_MS = 1000

TYPE_CHECKING = False
if TYPE_CHECKING:
    from privacy_guard import GnssApi  # noqa: F401  (named in type comments only)

if "/usr" not in sys.path:
    sys.path.append("/usr")


def keep_gnss_off(gnss):
    # type: (GnssApi) -> None
    """The fallback when the guard cannot start: the switch is unknown, so GNSS stays off."""
    while True:
        try:
            if gnss.get_state() != 0:
                gnss.gnssEnable(0)
        except Exception:
            pass  # nothing better to do than try again next time
        utime.sleep_ms(FALLBACK_CHECK_MS)


def start_guard(gnss):
    # type: (GnssApi) -> None
    import modem
    import privacy_guard
    import sim
    import ujson
    import uos
    from machine import UART

    store = privacy_guard.SwitchStore(uos, open, ujson)
    channel = UART(GUARD_UART_NUMBER, GUARD_BAUDRATE, 8, 0, 1, 0)
    guard = privacy_guard.Guard(gnss, store, channel, modem, sim)
    guard.boot()
    _thread.start_new_thread(privacy_guard.run, (guard, utime.sleep_ms, TICK_MS))


def boot():
    # type: () -> None
    try:
        import quecgnss
    except ImportError:
        return  # no built-in GNSS on this module
    try:
        start_guard(quecgnss)
    except Exception:
        try:
            quecgnss.gnssEnable(0)
        finally:
            _thread.start_new_thread(keep_gnss_off, (quecgnss,))


boot()

try:
    __import__("app")  # the integrator's own application, if any
except ImportError:
    pass
