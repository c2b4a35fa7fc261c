"""Fake QuecPython modules for running the privacy guard off the module (CPython tests, rigs, demos).

Each fake keeps its state in plain attributes that tests can read and change: the GNSS receiver's state and
every call made to it, the files on a fake ``/usr`` (with power cuts at any write step), the bytes on a UART.
Not deployed to modules; written in the same MicroPython subset as the guard so it compiles there too.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any  # noqa: F401  (used in type comments)

GNSS_OFF = 0
GNSS_POSITIONING = 2


class FakeGnss:
    """``quecgnss``. ``on_at_boot`` models ``autogps`` or a stale configuration: GNSS came on by itself."""

    def __init__(self, on_at_boot=False):
        # type: (bool) -> None
        self.state = GNSS_POSITIONING if on_at_boot else GNSS_OFF
        self.calls = []  # type: list[tuple[str, Any]]
        self.enable_result = 0
        self.ignore_disable = False  # the receiver refuses to stop (firmware bug)
        self.fail_state_reads = False

    def init(self):
        # type: () -> int
        self.calls.append(("init", None))
        self.state = GNSS_POSITIONING
        return 0

    def get_state(self):
        # type: () -> int
        self.calls.append(("get_state", None))
        if self.fail_state_reads:
            raise OSError(5)
        return self.state

    def gnssEnable(self, opt):
        # type: (int) -> int
        self.calls.append(("gnssEnable", opt))
        if opt == 0 and not self.ignore_disable:
            self.state = GNSS_OFF
        elif opt == 1:
            self.state = GNSS_POSITIONING
        return self.enable_result

    def read(self, size):
        # type: (int) -> tuple[int, bytes]
        self.calls.append(("read", size))
        return 0, b""  # the guard never reads positions; an empty read is all it could get

    def enable_calls(self):
        # type: () -> list[Any]
        return [argument for name, argument in self.calls if name == "gnssEnable"]


class FakeModem:
    """``modem``: records every getter called, so tests can prove identifiers are never read."""

    def __init__(self, model="EC200U", imei="861536030196001"):
        # type: (str | int, str) -> None
        self.model = model
        self.imei = imei
        self.calls = []  # type: list[str]

    def getDevModel(self):
        # type: () -> str | int
        self.calls.append("getDevModel")
        return self.model

    def getDevImei(self):
        # type: () -> str | int
        self.calls.append("getDevImei")
        return self.imei

    def getDevSN(self):
        # type: () -> str | int
        self.calls.append("getDevSN")
        return "D1Q20GA1200013"

    def getDevFwVersion(self):
        # type: () -> str | int
        self.calls.append("getDevFwVersion")
        return "EC200UCNAAR03A04M08"


class FakeSim:
    """``sim``: status 1 is ready; identifier getters record that they were called."""

    def __init__(self, status=1):
        # type: (int) -> None
        self.status = status
        self.calls = []  # type: list[str]

    def getStatus(self):
        # type: () -> int
        self.calls.append("getStatus")
        return self.status

    def getImsi(self):
        # type: () -> str | int
        self.calls.append("getImsi")
        return "460001234567890"

    def getIccid(self):
        # type: () -> str | int
        self.calls.append("getIccid")
        return "89860012345678901234"

    def getPhoneNumber(self):
        # type: () -> str | int
        self.calls.append("getPhoneNumber")
        return "+8613800000000"


class PowerCut(OSError):
    """Raised by FakeFs at the step chosen with ``cut_power_after``; files stay as they were then."""


class FakeFs:
    """``uos`` plus ``open`` over a dict of path -> bytes.

    ``cut_power_after = n`` lets n more mutating steps (a write, a close, a rename, a remove) complete; the
    next one fails with PowerCut (a write stops halfway, leaving a torn file), as does every step after it.
    ``fail_writes`` makes every write raise a plain OSError (a full or worn-out flash); ``fail_at_step`` fails
    just one step.
    """

    def __init__(self):
        # type: () -> None
        self.files = {}  # type: dict[str, bytes]
        self.cut_power_after = -1
        self.fail_writes = False
        self.rename_replaces = True  # False: the filesystem refuses to rename over an existing file
        self.fail_at_step = -1  # this one step (counted in ``steps``) fails with OSError; the rest succeed
        self.steps = 0

    def _step(self):
        # type: () -> None
        self.steps += 1
        if self.steps == self.fail_at_step:
            raise OSError(5)
        if self.cut_power_after == 0:
            raise PowerCut(5)
        if self.cut_power_after > 0:
            self.cut_power_after -= 1

    def open(self, path, mode="r"):
        # type: (str, str) -> FakeFile
        if "w" in mode:
            if self.fail_writes:
                raise OSError(28)
            self._step()
            self.files[path] = b""
        elif path not in self.files:
            raise OSError(2)
        return FakeFile(self, path, "w" in mode)

    def rename(self, old_path, new_path):
        # type: (str, str) -> None
        if old_path not in self.files:
            raise OSError(2)
        if new_path in self.files and not self.rename_replaces:
            raise OSError(17)
        self._step()
        self.files[new_path] = self.files.pop(old_path)

    def remove(self, path):
        # type: (str) -> None
        if path not in self.files:
            raise OSError(2)
        self._step()
        del self.files[path]

    def stat(self, path):
        # type: (str) -> tuple[int, ...]
        if path not in self.files:
            raise OSError(2)
        return (0x8000, 0, 0, 0, 0, 0, len(self.files[path]), 0, 0, 0)

    def listdir(self, path="/usr"):
        # type: (str) -> list[str]
        prefix = path.rstrip("/") + "/"
        return [name[len(prefix):] for name in self.files if name.startswith(prefix)]


class FakeFile:
    def __init__(self, fs, path, writable):
        # type: (FakeFs, str, bool) -> None
        self._fs = fs
        self._path = path
        self._writable = writable

    def read(self):
        # type: () -> str
        return self._fs.files[self._path].decode()

    def write(self, data):
        # type: (str | bytes) -> int
        raw = data.encode() if isinstance(data, str) else bytes(data)
        try:
            self._fs._step()
        except PowerCut:
            self._fs.files[self._path] = self._fs.files[self._path] + raw[:len(raw) // 2]
            raise
        self._fs.files[self._path] = self._fs.files[self._path] + raw
        return len(raw)

    def close(self):
        # type: () -> None
        if self._writable:
            self._fs._step()


class FakeUart:
    """``machine.UART``: ``host_send`` queues bytes for the guard, ``host_receive`` takes what it wrote."""

    def __init__(self):
        # type: () -> None
        self.incoming = b""
        self.outgoing = b""
        self.fail = False

    def any(self):
        # type: () -> int
        if self.fail:
            raise OSError(5)
        return len(self.incoming)

    def read(self, nbytes):
        # type: (int) -> bytes | None
        if not self.incoming:
            return None
        data, self.incoming = self.incoming[:nbytes], self.incoming[nbytes:]
        return data

    def write(self, data):
        # type: (bytes) -> int
        self.outgoing = self.outgoing + bytes(data)
        return len(data)

    def host_send(self, data):
        # type: (bytes) -> None
        self.incoming = self.incoming + data

    def host_receive(self):
        # type: () -> bytes
        data, self.outgoing = self.outgoing, b""
        return data


class FakeClock:
    """``utime``: time moves only when the guard sleeps."""

    def __init__(self):
        # type: () -> None
        self.now_ms = 0
        self.sleeps = 0

    def ticks_ms(self):
        # type: () -> int
        return self.now_ms

    def ticks_diff(self, new, old):
        # type: (int, int) -> int
        return new - old

    def sleep_ms(self, ms):
        # type: (int) -> None
        self.sleeps += 1
        self.now_ms += ms
