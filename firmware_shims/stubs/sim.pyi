"""QuecPython SIM access. Identifier getters return a string or -1, and only when ``getStatus() == 1``."""

def getStatus() -> int:
    """0 absent, 1 ready, 2 PIN required, ... 21 unknown."""
def getImsi() -> str | int:
    """Personal data: the guard never calls it."""
def getIccid() -> str | int:
    """Personal data: the guard never calls it."""
def getPhoneNumber() -> str | int:
    """Personal data: the guard never calls it."""
