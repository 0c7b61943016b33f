"""The allocator setting made at each boundary of work: blocks a batch allocates and frees
stay in the process instead of being mapped, unmapped and faulted in again at every call."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

TRIAL = """
import ctypes, json, sys
from driftrank.experiments.threads import keep_freed_memory

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks",
                                               "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
took = keep_freed_memory() if sys.argv[1] == "tuned" else None
size = 24 << 20  # under glibc's 32 MB ceiling for the mmap threshold
before = libc.mallinfo2()
block = libc.malloc(size)
during = libc.mallinfo2()
libc.free(block)
after = libc.mallinfo2()
print(json.dumps({"took": took, "mapped": during.hblkhd - before.hblkhd >= size,
                  "kept": after.arena - before.arena >= size}))
"""


def _trial(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", TRIAL, mode], capture_output=True, text=True,
                         timeout=60, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt and mallinfo2 are glibc's")
def test_freed_blocks_stay_in_the_heap_once_work_starts():
    control = _trial("control")  # a fresh process with glibc's defaults
    assert control == {"took": None, "mapped": True, "kept": False}
    tuned = _trial("tuned")
    assert tuned == {"took": True, "mapped": False, "kept": True}
