"""Peak resident memory of a local run, per component.

A local run is one process (the orchestrator; the Trainer and the Pusher run in it) plus the
Beam DirectRunner's worker processes that ExampleGen, StatisticsGen, Transform and the
Evaluator start and stop. `PeakMemory` samples the resident set size (RSS) of this process
and all its descendants every `interval` seconds in a daemon thread and keeps the largest
sum since the last `reset`, so the console can print each component's peak next to its
time. RSS sums count memory shared between processes (shared libraries) once per process,
so the figure is an upper bound of what the run needs (a container's memory accounting counts
shared pages once). Samples every 0.2 s miss shorter spikes.
"""
import threading
from typing import Optional

import psutil


def tree_rss(process: psutil.Process) -> int:
    """Bytes resident in `process` and every descendant alive now (vanishing ones count 0)."""
    total = 0
    try:
        members = [process] + process.children(recursive=True)
    except psutil.Error:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:  # exited between the listing and the read
            pass
    return total


class PeakMemory:
    """Context manager: samples this process tree's RSS; `peak()` since the last `reset()`."""

    def __init__(self, interval: float = 0.2, pid: Optional[int] = None):
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds, got %r" % interval)
        self.interval = interval
        self._process = psutil.Process(pid)
        self._lock = threading.Lock()
        self._peak = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def sample(self) -> int:
        """Takes one sample now (the thread does this every `interval`); returns it."""
        rss = tree_rss(self._process)
        with self._lock:
            self._peak = max(self._peak, rss)
        return rss

    def reset(self) -> None:
        """Starts a new window: the peak becomes the current RSS."""
        rss = tree_rss(self._process)
        with self._lock:
            self._peak = rss

    def peak(self) -> int:
        """The largest sampled RSS (bytes) since the last reset, this moment included."""
        self.sample()
        with self._lock:
            return self._peak

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> "PeakMemory":
        """Resets and starts the sampling thread; returns self."""
        self.reset()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops the sampling thread (the last peak stays readable)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "PeakMemory":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def format_bytes(n: int) -> str:
    """'3.1 GB' / '850 MB' (decimal units: 1 GB = 10^9 bytes)."""
    if n >= 1e9:
        return "%.1f GB" % (n / 1e9)
    return "%.0f MB" % (n / 1e6)
