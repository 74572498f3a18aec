"""The Beam data-plane race of beam_fixes.py, reproduced deterministically, with and without the fix."""
import threading
import time

import pytest
from apache_beam.runners.worker import data_plane

import beam_fixes


def _deliver_with_a_write_during_flush(stream_class) -> bytes:
    """Writes 'first'; while the periodic flush is between get() and _clear(), another thread
    writes 'late'. Returns every byte the stream handed on (flushes and close)."""
    delivered = []
    raced = threading.Event()

    def on_flush(data: bytes) -> None:
        if data:
            delivered.append(data)
        if data and not raced.is_set():
            raced.set()
            writer = threading.Thread(target=stream.write, args=(b"late",))
            writer.start()
            # Unfixed, the write lands now and the flush's _clear() then discards it; fixed,
            # the writer waits for the flush to finish.
            writer.join(timeout=0.3)

    stream = stream_class(on_flush, flush_callback=on_flush, time_flush_threshold_ms=1)
    stream.write(b"first")
    deadline = time.time() + 5
    while not raced.is_set() and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(0.4)  # let the delayed writer finish
    stream.close()
    return b"".join(delivered)


class _UnfixedStream(data_plane.TimeBasedBufferingClosableOutputStream):
    write = data_plane.OutputStream.write


def test_the_unfixed_stream_loses_a_write_that_falls_inside_a_flush():
    assert _deliver_with_a_write_during_flush(_UnfixedStream) == b"first"


def test_the_fixed_stream_delivers_every_byte():
    assert beam_fixes.is_applied()
    out = _deliver_with_a_write_during_flush(data_plane.TimeBasedBufferingClosableOutputStream)
    assert out == b"firstlate"


def test_many_concurrent_flushes_lose_nothing():
    """The stress version: 2,000 writes of 10 kB against a 1 ms periodic flush."""
    delivered = []

    def on_flush(data):
        if data:
            delivered.append(data)
            time.sleep(0.0002)  # a gRPC hand-off gives other threads the interpreter

    stream = data_plane.TimeBasedBufferingClosableOutputStream(
        on_flush, flush_callback=on_flush, time_flush_threshold_ms=1)
    chunk = b"x" * 10_000
    for _ in range(2000):
        stream.write(chunk)
    stream.close()
    assert sum(map(len, delivered)) == 2000 * len(chunk)


@pytest.mark.parametrize("args", [
    ["--direct_running_mode=multi_threading"],
    ["--runner=DirectRunner", "--direct_running_mode", "multi_threading"],
])
def test_multi_threading_mode_is_refused(args):
    with pytest.raises(beam_fixes.UnsafeBeamArgsError, match="multi_processing"):
        beam_fixes.check_beam_args(args)


@pytest.mark.parametrize("args", [
    None, [], ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    ["--direct_running_mode=in_memory"],
])
def test_safe_modes_pass(args):
    beam_fixes.check_beam_args(args)


def test_every_beam_running_package_applies_the_fix():
    import subprocess
    import sys
    code = ("import {m}; from apache_beam.runners.worker import data_plane as d; "
            "print(getattr(d.TimeBasedBufferingClosableOutputStream, '_dumn_locked_write', False))")
    for module in ("components", "pipeline", "models.preprocessing"):
        out = subprocess.run([sys.executable, "-c", code.format(m=module)], capture_output=True,
                             text=True, check=True).stdout.strip()
        assert out == "True", module
