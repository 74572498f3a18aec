"""Simulator throughput and peak memory at a target number of events.

Each size runs in a fresh child process, so its peak resident memory (ru_maxrss) is its own.
The time includes building the world, simulating and writing every file; not the imports.

    .venv/bin/python benchmarks/simulate_throughput.py --events 1000000,10000000
"""
import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

# Events per user per simulated day with the default activity settings, measured on the
# default dataset (184,047 events from 3,000 users over 8 days).
EVENTS_PER_USER_DAY = 184047 / 3000 / 8


def run_one(target_events: int, out_dir: str, seed: int) -> dict:
    from simulator.config import SimConfig
    from simulator.dataset import write_dataset

    days = 8
    num_users = max(100, int(round(target_events / (EVENTS_PER_USER_DAY * days))))
    config = SimConfig(seed=seed, num_users=num_users, num_items=max(4000, num_users // 2),
                       num_categories=500, num_brands=5000, days=days, users_per_shard=10000)
    started = time.perf_counter()
    report = write_dataset(config, out_dir, progress=lambda message: None)
    elapsed = time.perf_counter() - started
    size = sum(os.path.getsize(os.path.join(out_dir, n)) for n in os.listdir(out_dir))
    return {
        "target_events": target_events,
        "events": report.events,
        "impressions": report.impressions,
        "users": num_users,
        "items": config.num_items,
        "seconds": round(elapsed, 2),
        "events_per_second": round(report.events / elapsed),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "bytes_written": size,
        "oracle_auc": round(report.oracle_auc, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", default="1000000,10000000",
                        help="comma-separated target event counts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_one(args.child, args.out, args.seed)))
        return 0

    print("machine: %s, %d CPUs, Python %s" % (platform.processor() or platform.machine(),
                                              os.cpu_count(), platform.python_version()))
    print("%12s %12s %10s %9s %14s %13s %10s" % ("target", "events", "users", "seconds",
                                                 "events/s", "peak RSS MiB", "MiB out"))
    for target in (int(x) for x in args.events.split(",")):
        scratch = tempfile.mkdtemp(prefix="dumn-sim-bench-", dir=args.out)
        try:
            output = subprocess.run(
                [sys.executable, __file__, "--child", str(target), "--out",
                 os.path.join(scratch, "data"), "--seed", str(args.seed)],
                check=True, capture_output=True, text=True).stdout
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        row = json.loads(output.strip().splitlines()[-1])
        print("%12d %12d %10d %9.1f %14d %13d %10.0f" % (
            row["target_events"], row["events"], row["users"], row["seconds"],
            row["events_per_second"], row["peak_rss_mib"], row["bytes_written"] / 2 ** 20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
