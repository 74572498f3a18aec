"""PeakMemory: a child process's allocation counts in the tree's peak; reset starts afresh."""
import logging
import subprocess
import sys
import time

import psutil
import pytest

from pipeline.console import ConsoleFormatter
from pipeline.memory import PeakMemory, format_bytes, tree_rss

MB = 10 ** 6
# A child that holds 300 MB of touched memory until its stdin closes.
_HOLDER = ("import sys; block = bytearray(300 * 10**6); block[::4096] = b'x' * len(block[::4096]);"
           " print('ready', flush=True); sys.stdin.read()")


def _start_holder():
    child = subprocess.Popen([sys.executable, "-c", _HOLDER], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def _stop(child):
    child.stdin.close()
    child.wait(timeout=30)


def test_tree_rss_is_this_process_plus_children():
    me = psutil.Process()
    alone = tree_rss(me)
    assert alone >= me.memory_info().rss * 0.9
    child = _start_holder()
    try:
        with_child = tree_rss(me)
        child_rss = psutil.Process(child.pid).memory_info().rss
        assert child_rss > 300 * MB
        assert with_child >= alone + child_rss * 0.9
    finally:
        _stop(child)


def test_peak_keeps_a_gone_childs_memory_until_reset():
    with PeakMemory(interval=0.05) as memory:
        before = memory.peak()
        child = _start_holder()
        time.sleep(0.3)  # several samples while the child holds its memory
        _stop(child)
        # The child has exited: its 300 MB are no longer resident, but the peak keeps them.
        assert tree_rss(psutil.Process()) < before + 150 * MB
        assert memory.peak() >= before + 300 * MB
        memory.reset()
        assert memory.peak() < before + 150 * MB


def test_invalid_interval_is_refused():
    with pytest.raises(ValueError, match="interval"):
        PeakMemory(interval=0)


def test_format_bytes():
    assert format_bytes(3_734_344_000) == "3.7 GB"
    assert format_bytes(850 * MB) == "850 MB"


def _absl(message, created):
    record = logging.LogRecord("absl", logging.INFO, __file__, 1, message, None, None)
    record.created = created
    return record


class _FixedMemory:
    def __init__(self):
        self.resets = 0

    def reset(self):
        self.resets += 1

    def peak(self):
        return 2_100_000_000


def test_component_lines_carry_time_and_peak():
    memory = _FixedMemory()
    formatter = ConsoleFormatter(memory)
    started = formatter.format(_absl("Component Transform is running.", 1000.0))
    finished = formatter.format(_absl("Component Transform is finished.", 1177.4))
    assert started.endswith(" Transform started") and memory.resets == 1
    assert finished.endswith(" Transform finished (177 s, peak 2.1 GB)")
    plain = ConsoleFormatter()
    plain.format(_absl("Component Trainer is running.", 0.0))
    assert plain.format(_absl("Component Trainer is finished.", 5.0)).endswith(
        " Trainer finished (5 s)")
