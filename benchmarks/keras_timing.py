"""Timing of Keras `fit` steps, shared by the project's and DeepCTR's training benchmarks.

`timed_fit` runs `warmup + repeats * steps` steps in ONE `model.fit` call over an in-memory
dataset, records the wall clock at the end of every step (the callback takes the loss as a
NumPy value, which waits for the step to finish, so no step overlaps the next one's timing),
and splits the steps after the warm-up into `repeats` windows of `steps` steps each. For each
window examples/s = batch x steps / window's wall time; the median window is reported, with
the spread. Warm-up steps (graph tracing, first touches of tables and optimizer slots) are
excluded. It also reports which share of the machine's CPUs other processes used during the
timed steps (from /proc/stat), since a busy neighbour invalidates the rate. Works with TF 2.15
and TF 2.16 + tf_keras.
"""
import statistics
import time
from typing import Dict, List

import machine_info


def add_idle_arguments(parser) -> None:
    """The command-line flags of `timed_fit_when_idle`, shared by both training benchmarks."""
    parser.add_argument("--max-other-cpu", type=float, default=0.1, metavar="SHARE",
                        help="retry the timing when other processes used more than this share "
                             "of the CPUs during it (default 0.1)")
    parser.add_argument("--retries", type=int, default=3,
                        help="how often to retry a timing spoiled by other processes "
                             "(default 3)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each configuration wait up to SECONDS until other "
                             "processes use <= --max-other-cpu of the CPUs (shared machines); "
                             "0 = do not wait")


def timed_fit(model, dataset, batch_size: int, steps: int, warmup: int,
              repeats: int = 1) -> Dict[str, object]:
    import tensorflow as tf

    if warmup < 1 or steps < 1 or repeats < 1:
        raise ValueError("warmup, steps and repeats must be >= 1")
    ends: List[float] = []
    losses: List[float] = []
    snaps: List[Dict[str, float]] = []

    class StepClock(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._supports_tf_logs = False  # logs arrive as numpy: each step is synced

        def on_train_batch_end(self, batch, logs=None):
            losses.append(float((logs or {}).get("loss", float("nan"))))
            ends.append(time.perf_counter())
            if batch == warmup - 1 or batch == total - 1:
                snaps.append(machine_info.cpu_snapshot())

    total = warmup + steps * repeats
    model.fit(dataset, steps_per_epoch=total, epochs=1, verbose=0, callbacks=[StepClock()])
    if len(ends) != total:
        raise RuntimeError("expected %d step callbacks, got %d" % (total, len(ends)))
    windows = []
    for r in range(repeats):
        t0 = ends[warmup - 1 + r * steps]
        t1 = ends[warmup - 1 + (r + 1) * steps]
        windows.append(batch_size * steps / (t1 - t0))
    step_ms = [1000.0 * (b - a) for a, b in zip(ends[warmup - 1:-1], ends[warmup:])]
    med = statistics.median(windows)
    return {
        "examples_per_s": med,
        "examples_per_s_windows": windows,
        "examples_per_s_best": max(windows),
        "ms_per_step": 1000.0 * batch_size / med,
        "step_ms_median": statistics.median(step_ms),
        "step_ms_p90": sorted(step_ms)[int(0.9 * (len(step_ms) - 1))],
        "timed_steps": steps * repeats,
        "timed_seconds": ends[-1] - ends[warmup - 1],
        "first_step_s": ends[0],  # absolute; made relative by the caller if wanted
        "final_loss": losses[-1],
        # Shares of all CPUs during the timed steps: this process, and everything else (the
        # figures are only clean when other_cpu_share is ~0).
        **machine_info.contention(snaps[0], snaps[-1]),
        # CPU time this process spent per timed step (all threads): less sensitive to busy
        # neighbours than wall time, though not immune (shared caches, memory bandwidth).
        "cpu_ms_per_step": 1000.0 * (snaps[-1]["own"] - snaps[0]["own"]) / (steps * repeats),
    }


def timed_fit_when_idle(model, dataset, batch_size: int, steps: int, warmup: int, repeats: int,
                        max_other_cpu: float, retries: int, wait_idle_s: float,
                        started: float) -> Dict:
    """`timed_fit`, timed again while other processes used more than `max_other_cpu` of the
    CPUs (a busy neighbour invalidates the rate), up to `retries` times on the same, already
    warm model. `first_step_s` is measured from `started` (time.perf_counter())."""
    timing = timed_fit(model, dataset, batch_size, steps, warmup, repeats)
    timing["first_step_s"] -= started
    attempts = 1
    while timing["other_cpu_share"] > max_other_cpu and attempts <= retries:
        print("  other processes used %.0f %% of the CPUs during the timed steps: retrying"
              % (100 * timing["other_cpu_share"]), flush=True)
        machine_info.wait_for_idle(max_other_cpu, timeout_s=max(wait_idle_s, 60.0))
        first = timing["first_step_s"]
        timing = timed_fit(model, dataset, batch_size, steps, 1, repeats)
        timing["first_step_s"] = first
        attempts += 1
    timing["attempts"] = attempts
    return timing
