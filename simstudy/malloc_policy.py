"""Worker processes keep the memory they free, so that each chunk reuses pages instead of faulting new ones in.

A chunk allocates its replicates' data, design matrices and statistics (several MB for a cell of 30 x 20)
and frees them at its end. glibc's malloc then gives the top of its heap back to the system (past its trim
threshold, 128 kB by default) and maps each array above its mmap threshold afresh, so the next chunk touches
new pages: 2.5 page faults per replicate of a 30 x 20 random-intercept study (``getrusage``), each a trip into
the kernel, which also zeroes the page. :func:`keep_freed_memory` raises the trim threshold to 1 GiB and the
mmap threshold to 32 MiB (the most glibc would raise it to by itself), after which the heap stays at its
high-water mark and is reused: no faults once the first chunk has run. Peak memory is unchanged (what is kept
is what the worker has already used); results are unaffected. glibc only; elsewhere nothing happens.
"""

from __future__ import annotations

import ctypes
import os

#: ``mallopt`` parameters (glibc's malloc.h) and the values set.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
TRIM_THRESHOLD = 1 << 30
MMAP_THRESHOLD = 32 << 20


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds in this process; True if set (False off glibc)."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
    except (AttributeError, ValueError, OSError):  # not a glibc system
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
