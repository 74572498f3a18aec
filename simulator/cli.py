"""`dumn-simulate`: writes a simulated Taobao-style feedback log with ground truth.

Examples:
    dumn-simulate --out data/simulated --report
    dumn-simulate --out /tmp/big --num-users 100000 --days 8 --report
    dumn-simulate --show-report data/simulated
"""
import argparse
import dataclasses
import json
import logging
import os
import sys
import time

from simulator.config import SimConfig
from simulator.dataset import REPORT_FILE, write_dataset
from simulator.report import SimulationReport

logger = logging.getLogger("dumn-simulate")

_HELP = {
    "num_users": "number of users",
    "num_items": "number of items",
    "num_categories": "number of categories",
    "num_brands": "number of brands",
    "days": "number of simulated days",
    "eval_days": "last days that form the eval split (used by the report's oracle AUC)",
    "start_timestamp": "Unix time of the first day's midnight (default 2017-05-06, UTC+8)",
    "users_per_shard": "users simulated at a time; one events file each (bounds memory)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dumn-simulate",
        description="Simulate Taobao-style feedback logs (click, unclick, like, dislike) in the "
                    "canonical layout, with each impression's true click probability.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default="data/simulated",
                        help="output folder (must not already hold events files)")
    parser.add_argument("--report", action="store_true",
                        help="print the dataset report (events by type, users, items, click "
                             "rate, oracle AUC on the eval split)")
    parser.add_argument("--show-report", metavar="DIR",
                        help="print the report of an already simulated folder and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    group = parser.add_argument_group("generative model")
    for field in dataclasses.fields(SimConfig):
        flag = "--" + field.name.replace("_", "-")
        group.add_argument(flag, dest=field.name, type=type(field.default), default=field.default,
                           help=_HELP.get(field.name, field.name.replace("_", " ")))
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    if args.show_report:
        path = os.path.join(args.show_report, REPORT_FILE)
        if not os.path.exists(path):
            print("error: %s not found; is %s a simulated dataset?" % (path, args.show_report),
                  file=sys.stderr)
            return 2
        with open(path) as f:
            print(SimulationReport(**json.load(f)["report"]).format())
        return 0
    try:
        config = SimConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SimConfig)})
    except ValueError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    started = time.time()
    logger.info("simulating %d users x %d days (after %d days of browsing) into %s",
                config.num_users, config.days, config.prior_days, args.out)
    try:
        report = write_dataset(config, args.out, progress=logger.info)
    except FileExistsError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    elapsed = time.time() - started
    logger.info("wrote %d events in %.1f s (%.0f events/s) to %s",
                report.events, elapsed, report.events / max(elapsed, 1e-9), args.out)
    if args.report:
        print(report.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
