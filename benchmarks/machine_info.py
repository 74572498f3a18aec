"""Machine description and peak-FLOP/s estimate shared by the training benchmarks.

Standard library only: it is imported both from the project's venv
(`benchmarks/train_throughput.py`) and from DeepCTR's separate venv
(`benchmarks/deepctr/din_benchmark.py`).

Peak FLOP/s of the CPU is an *estimate*:

    peak = cores x GHz x FLOPs/cycle/core

with FLOPs/cycle/core = 64 for fp32 by default, i.e. two 512-bit FMA units
(2 units x 16 fp32 lanes x 2 FLOPs per FMA), the figure for AVX-512 server cores with two
FMA ports. GHz is the `cpu MHz` that /proc/cpuinfo reports (the base clock a VM sees; turbo
is not counted). Both are overridable (`--flops-per-cycle`, `--ghz`) because neither can be
read reliably from inside a VM. Note that AMD Zen 4 executes AVX-512 on 256-bit units
(32 fp32 FLOPs/cycle/core), so on such a CPU the default halves the share of peak.
"""
import json
import os
import platform
import subprocess
from typing import Dict, Optional

DEFAULT_FLOPS_PER_CYCLE = 64  # fp32, 2 x AVX-512 FMA per cycle per core


def _cpuinfo() -> Dict[str, str]:
    info: Dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" not in line:
                    if info:
                        break  # first processor block only
                    continue
                key, value = line.split(":", 1)
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def _gpus() -> Optional[str]:
    """GPUs visible to nvidia-smi, or None. (TensorFlow's own view is added by the caller.)"""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [n.strip() for n in out.stdout.splitlines() if n.strip()]
    return ", ".join(names) if out.returncode == 0 and names else None


def cpu_snapshot() -> Dict[str, float]:
    """Busy CPU seconds of the whole machine (/proc/stat) and of this process, and the clock.

    `contention(a, b)` of two snapshots tells how much of the machine OTHER processes used in
    between: the benchmark's numbers are only meaningful when that is near 0.
    """
    busy = steal = 0.0
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        hz = float(os.sysconf("SC_CLK_TCK"))
        # user nice system idle iowait irq softirq steal ...
        busy = (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / hz
        steal = (fields[7] if len(fields) > 7 else 0.0) / hz
    except (OSError, ValueError, IndexError):
        pass
    t = os.times()
    return {"busy": busy, "steal": steal, "own": t.user + t.system, "wall": t.elapsed}


def contention(a: Dict[str, float], b: Dict[str, float]) -> Dict[str, float]:
    """Shares of the machine (0..1 of all CPUs) between snapshots a and b."""
    wall = max(b["wall"] - a["wall"], 1e-9)
    cap = wall * cpu_count()
    own = (b["own"] - a["own"]) / cap
    busy = (b["busy"] - a["busy"]) / cap
    return {"own_cpu_share": round(own, 3), "other_cpu_share": round(max(busy - own, 0.0), 3),
            "steal_share": round((b["steal"] - a["steal"]) / cap, 3)}


def wait_for_idle(max_share: float = 0.1, window_s: float = 5.0, timeout_s: float = 600.0,
                  log=print) -> float:
    """Waits until other processes use <= max_share of the CPUs over a window; returns it."""
    import time
    deadline = time.time() + timeout_s
    while True:
        a = cpu_snapshot()
        time.sleep(window_s)
        share = contention(a, cpu_snapshot())["other_cpu_share"]
        if share <= max_share or time.time() > deadline:
            if share > max_share:
                log("warning: machine still busy (other processes use %.0f %% of the CPUs)"
                    % (100 * share))
            return share
        log("waiting for an idle machine: other processes use %.0f %% of the CPUs"
            % (100 * share))


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (non-Linux)
        return os.cpu_count() or 1


def describe(ghz: Optional[float] = None,
             flops_per_cycle: float = DEFAULT_FLOPS_PER_CYCLE) -> Dict[str, object]:
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    mhz = float(info.get("cpu MHz", "0") or 0)
    ghz = ghz if ghz else (mhz / 1000.0 if mhz else None)
    cores = cpu_count()
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gib = round(int(line.split()[1]) / 1024.0 / 1024.0, 1)
                    break
    except OSError:
        pass
    peak = cores * ghz * 1e9 * flops_per_cycle if ghz else None
    return {
        "cpu_model": info.get("model name", platform.processor() or "unknown"),
        "cpu_family_model": "%s/%s" % (info.get("cpu family", "?"), info.get("model", "?")),
        "cpu_count": cores,
        "ghz": round(ghz, 3) if ghz else None,
        "avx512f": "avx512f" in flags,
        "fma": "fma" in flags,
        "mem_gib": mem_gib,
        "gpu": _gpus(),
        "flops_per_cycle_per_core": flops_per_cycle,
        "peak_flops": peak,
        "peak_assumption": (
            "%d cores x %.2f GHz (/proc/cpuinfo 'cpu MHz') x %g fp32 FLOPs/cycle "
            "(2 x AVX-512 FMA)" % (cores, ghz or 0.0, flops_per_cycle)),
        "python": platform.python_version(),
        "loadavg_1min_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def one_line(m: Dict[str, object]) -> str:
    peak = m.get("peak_flops")
    return "%s (family/model %s), %d CPUs @ %s GHz, AVX-512: %s, %s GiB RAM, GPU: %s; " \
           "peak estimate %s GFLOP/s" % (
               m["cpu_model"], m["cpu_family_model"], m["cpu_count"], m["ghz"],
               "yes" if m["avx512f"] else "no", m["mem_gib"], m["gpu"] or "none",
               "%.0f" % (peak / 1e9) if peak else "?")


if __name__ == "__main__":
    print(json.dumps(describe(), indent=2))
