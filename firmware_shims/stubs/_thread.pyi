"""QuecPython ``_thread``: only what ``main.py`` uses."""

from collections.abc import Callable
from typing import Any

def start_new_thread(function: Callable[..., Any], args: tuple[Any, ...]) -> int: ...
