"""Children for the sandbox tests that misbehave the way a native parser might (bytes -> bytes). Kept apart from
the test module so that the child imports nothing heavy."""

from __future__ import annotations

import os
import time

MB = 1024**2


def sleep_forever(data: bytes) -> bytes:
    time.sleep(600)
    return data


def allocate(data: bytes) -> bytes:
    """Allocate int(data) MB; returns the size allocated."""
    return str(len(bytearray(int(data) * MB))).encode()


def abort(data: bytes) -> bytes:
    os.abort()
