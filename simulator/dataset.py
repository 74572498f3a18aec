"""Writes a simulated dataset in the canonical layout of SPEC §3, plus its ground truth.

Layout of the output folder:

    users.csv                        user_id + profile fields (about 5% of users have no row)
    items.csv                        item_id, cate_id, brand_id, price
    events-SSSSS-of-NNNNN.csv        user_id, item_id, cate_id, brand_id, timestamp, feedback, pid
    ground_truth.csv                 one row per impression: user_id, timestamp, item_id, pid,
                                     click_probability, label, noise
    simulation.json                  the configuration and the report

Events are written one shard of users at a time, time-ordered within the shard.
"""
import logging
import os
import time
from typing import Callable, Optional

import numpy as np

from simulator import csv_writer as cw
from simulator.config import SimConfig
from simulator.generate import (FEEDBACK_NAMES, NOISE_NAMES, PIDS, PROFILE_FIELDS, World,
                                build_world, iterate_shards, shard_bounds)
from simulator.report import ReportBuilder, SimulationReport, save_report

logger = logging.getLogger(__name__)

EVENT_COLUMNS = ("user_id", "item_id", "cate_id", "brand_id", "timestamp", "feedback", "pid")
GROUND_TRUTH_FILE = "ground_truth.csv"
REPORT_FILE = "simulation.json"


def _write_catalogue(world: World, out_dir: str) -> None:
    num_items = len(world.item_category)
    items = cw.format_csv([
        ("item_id", cw.id_column(np.arange(1, num_items + 1))),
        ("cate_id", cw.id_column(world.item_category + 1)),
        ("brand_id", cw.id_column(world.item_brand + 1, empty_below=1)),
        ("price", cw.float_column(world.item_price, decimals=2)),
    ])
    with open(os.path.join(out_dir, "items.csv"), "wb") as f:
        f.write(items)
    with_profile = np.flatnonzero(world.user_has_profile)
    profile = world.user_profile[with_profile]
    users = cw.format_csv(
        [("user_id", cw.id_column(with_profile + 1))]
        + [(name, cw.id_column(profile[:, i], empty_below=0))
           for i, name in enumerate(PROFILE_FIELDS)])
    with open(os.path.join(out_dir, "users.csv"), "wb") as f:
        f.write(users)


def write_dataset(config: SimConfig, out_dir: str,
                  progress: Optional[Callable[[str], None]] = None) -> SimulationReport:
    """Simulates `config` into `out_dir` (created if needed) and returns the report."""
    progress = progress or logger.info
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):
        if name.startswith("events") and name.endswith(".csv"):
            raise FileExistsError(
                "%s already holds event files (%s); choose an empty folder so that old and new "
                "events are not mixed" % (out_dir, name))
    started = time.time()
    world = build_world(config)
    _write_catalogue(world, out_dir)
    report = ReportBuilder(config.num_users, config.num_items, config.eval_start_timestamp)
    num_shards = len(shard_bounds(config))
    events_written = 0
    with open(os.path.join(out_dir, GROUND_TRUTH_FILE), "wb") as truth_file:
        for index, events, truth in iterate_shards(config, world):
            shard_name = "events-%05d-of-%05d.csv" % (index, num_shards)
            with open(os.path.join(out_dir, shard_name), "wb") as f:
                f.write(cw.format_csv([
                    ("user_id", cw.id_column(events.user + 1)),
                    ("item_id", cw.id_column(events.item + 1, empty_below=1)),
                    ("cate_id", cw.id_column(events.category + 1)),
                    ("brand_id", cw.id_column(events.brand + 1, empty_below=1)),
                    ("timestamp", cw.id_column(events.timestamp)),
                    ("feedback", cw.word_column(events.feedback, FEEDBACK_NAMES)),
                    ("pid", cw.word_column(events.pid, PIDS)),
                ]))
            truth_file.write(cw.format_csv([
                ("user_id", cw.id_column(truth.user + 1)),
                ("timestamp", cw.id_column(truth.timestamp)),
                ("item_id", cw.id_column(truth.item + 1)),
                ("pid", cw.word_column(truth.pid, PIDS)),
                ("click_probability", cw.float_column(truth.click_probability)),
                ("label", cw.id_column(truth.label)),
                ("noise", cw.word_column(truth.noise, NOISE_NAMES)),
            ], header=index == 0))
            report.add(events, truth)
            events_written += len(events.user)
            elapsed = time.time() - started
            progress("shard %d/%d written: %d events so far, %.0f events/s"
                     % (index + 1, num_shards, events_written, events_written / max(elapsed, 1e-9)))
    result = report.build()
    save_report(result, config.to_dict(), os.path.join(out_dir, REPORT_FILE))
    return result
