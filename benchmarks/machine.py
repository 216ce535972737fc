"""What a measurement depends on besides the code: the CPU, its usable cores, whether oneDNN is on, the device,
and the peak memory of this process."""

from __future__ import annotations

import platform
import resource
import sys

from vgg_helpers.runtime import describe_device, describe_onednn, usable_cores


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what Python's ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def machine_line() -> str:
    """The CPU, its usable cores and oneDNN: what a CPU's training speed depends on, in one line."""
    return f"{cpu_model()}, {usable_cores()} usable cores, {describe_onednn()}; {describe_device()}"


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (10⁶ bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6  # bytes on macOS, KiB on Linux
