"""Peak resident memory of this process, per stage and for the whole run (issue 24: each stage's peak).

On Linux the kernel keeps the peak (VmHWM in /proc/self/status) and lets a process reset it (writing 5 to
/proc/self/clear_refs, Linux 4.0+), so each stage's figure is its own: the most this process held while the
stage ran, what earlier stages left resident included. Elsewhere only the process's lifetime peak is known
(`resource.getrusage`), so a stage's figure is the run's peak so far, an upper bound, and says so (`scope`).

Only this process is counted: under torchrun each rank measures itself and rank 0 records its own. The reset
also lowers what `getrusage` and `/usr/bin/time` report for the process afterwards: the run's peak across every
stage is results.json's `peak_rss_gb` (`run_peak_gb`).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")
_seen_kb = 0  # the largest peak read before a reset, so the run's peak survives the per-stage resets


def _hwm_kb() -> int | None:
    """VmHWM in kB, or None where /proc does not give it."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _lifetime_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, kB on Linux


def reset_peak() -> bool:
    """Start a new peak (the run's peak so far is kept). False where the platform cannot reset it."""
    global _seen_kb
    now = _hwm_kb()
    _seen_kb = max(_seen_kb, now if now is not None else _lifetime_kb())
    if now is None:
        return False
    try:
        _CLEAR.write_text("5")
    except OSError:
        return False
    return True


def peak(since_reset: bool) -> dict:
    """{"peak_rss_gb": ..., "scope": "stage" | "process"}: the peak since `reset_peak` (when it reset), else
    the process's lifetime peak."""
    now = _hwm_kb()
    if since_reset and now is not None:
        return {"peak_rss_gb": round(now / 2**20, 2), "scope": "stage"}
    return {"peak_rss_gb": round(max(_lifetime_kb(), _seen_kb, now or 0) / 2**20, 2), "scope": "process"}


def run_peak_gb() -> float:
    """The largest resident size this process has had, across every reset."""
    now = _hwm_kb()
    return round(max(_seen_kb, now if now is not None else _lifetime_kb()) / 2**20, 2)
