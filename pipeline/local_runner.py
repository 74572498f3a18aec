"""`dumn-pipeline`: runs the whole DUMN pipeline locally (LocalDagRunner, SQLite metadata).

With no --data, the built-in simulated dataset is generated first (once) and used; the run
then prints the eval AUC next to the simulator's oracle AUC, the blessing and the push path.

    dumn-pipeline                                   # simulated data, defaults
    dumn-pipeline --data /data/taobao --layout tianchi --train-steps 20000 \
        --beam-arg=--direct_running_mode=multi_processing --beam-arg=--direct_num_workers=2
"""
import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from typing import Dict

import legacy_keras  # noqa: F401  (before TensorFlow)

from pipeline.config import REPO_ROOT, PipelineConfig

logger = logging.getLogger("dumn-pipeline")
# Exit code of a run whose model was not blessed, with --fail-if-not-blessed (1 = a data or
# configuration error, 2 = bad flags).
NOT_BLESSED_EXIT_CODE = 3


def build_parser() -> argparse.ArgumentParser:
    d = PipelineConfig()
    p = argparse.ArgumentParser(
        prog="dumn-pipeline", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="folder of logs (canonical or Tianchi layout); default: the "
                                  "built-in simulated dataset, generated on first use")
    p.add_argument("--layout", default=d.layout, choices=["auto", "canonical", "tianchi"])
    p.add_argument("--output-root", default=os.path.join(REPO_ROOT, "output"),
                   help="pipeline root, metadata and pushed models go under this folder")
    p.add_argument("--pipeline-name", default=d.pipeline_name)
    p.add_argument("--model", default=d.model, choices=["dumn", "din"])
    p.add_argument("--max-seq-len", type=int, default=d.max_seq_len, help="T, events per history")
    p.add_argument("--num-samples", type=int, default=d.num_samples,
                   help="K, triplet samples per feedback type")
    p.add_argument("--eval-days", type=int, default=d.eval_days,
                   help="last days of impressions that form the eval split")
    p.add_argument("--train-steps", type=int, default=d.train_steps)
    p.add_argument("--eval-steps", type=int, default=d.eval_steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--auc-floor", type=float, default=d.auc_floor,
                   help="the Evaluator never blesses a model with a lower eval AUC")
    p.add_argument("--auc-max-regression", type=float, default=d.auc_max_regression,
                   help="allowed AUC drop below the latest blessed model")
    p.add_argument("--max-bad-row-fraction", type=float, default=d.max_bad_row_fraction)
    p.add_argument("--eval-start", type=int, default=None, metavar="TIMESTAMP",
                   help="first second (Unix time) of the eval split, instead of the last "
                        "--eval-days calendar days; for logs that span one day")
    p.add_argument("--eval-fraction", type=float, default=None, metavar="F",
                   help="the last F (0 < F < 1) of the impressions by time form the eval "
                        "split, instead of the last --eval-days calendar days")
    p.add_argument("--max-days-from-median", type=int, default=None, metavar="DAYS",
                   help="events further than DAYS from the logs' median time are bad rows "
                        "(timestamp_out_of_range); default: derived from the data, the larger "
                        "of 30 days and twice the span of the middle 80%% of event times")
    p.add_argument("--min-eval-examples", type=int, default=d.min_eval_examples,
                   help="stop the run when the eval split holds fewer examples")
    p.add_argument("--drop-duplicate-events", action="store_true",
                   help="drop exact repeats of an event (same fields, same second) instead of "
                        "keeping them as the log has them; counted in the summary either way")
    p.add_argument("--ignore-unknown-files", action="store_true",
                   help="run without log-like files (.csv, .gz, .bz2, ...) under --data whose "
                        "names match no file of the layout; without it such files fail the "
                        "run (they are listed in the log report either way)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--profile-fields", help="comma-separated profile columns of users.csv the "
                                            "schema should expect (default: the columns of "
                                            "users.csv for canonical logs, the public data's "
                                            "for the Tianchi layout)")
    p.add_argument("--pid-values", help="comma-separated pid values the schema should accept; "
                                        "'' (empty) accepts any pid (default: any for "
                                        "canonical logs, the public data's two for Tianchi)")
    p.add_argument("--model-override", action="append", default=[], metavar="KEY=VALUE",
                   help="a ModelConfig setting, e.g. --model-override orthogonal_mapping=false "
                        "(repeatable); the value is read as the setting's type (booleans: "
                        "true/false in any case; lists: [200,80] or 200,80) and the whole "
                        "model configuration is checked before the run starts")
    p.add_argument("--beam-arg", action="append", default=None, metavar="ARG",
                   help="a Beam pipeline argument for the data components (repeatable); "
                        "default: %s" % " ".join(d.beam_pipeline_args))
    p.add_argument("--verbose", action="store_true",
                   help="print every log line on the console (by default they go to "
                        "OUTPUT_ROOT/logs/<run id>.log and the console shows one line per "
                        "component, training progress, warnings and the summary), and on a "
                        "data or configuration error the whole traceback instead of one line")
    p.add_argument("--enable-cache", action="store_true",
                   help="reuse outputs of unchanged components (only when the data folder "
                        "has not changed since the last run)")
    p.add_argument("--fail-if-not-blessed", action="store_true",
                   help="exit with code %d when the Evaluator does not bless the model (for "
                        "schedulers); by default such a run ends with 0 and says why in its "
                        "summary" % NOT_BLESSED_EXIT_CODE)
    return p


def parse_overrides(items):
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError("--model-override expects KEY=VALUE, got %r" % item)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def config_from_args(args) -> PipelineConfig:
    root = os.path.abspath(args.output_root)
    data = os.path.abspath(args.data) if args.data else os.path.join(root, "data", "simulated")
    kwargs = dict(
        pipeline_name=args.pipeline_name, pipeline_root=os.path.join(root, "pipeline"),
        data_root=data, layout=args.layout,
        serving_model_dir=os.path.join(root, "serving_model"), max_seq_len=args.max_seq_len,
        num_samples=args.num_samples, eval_days=args.eval_days, train_steps=args.train_steps,
        eval_steps=args.eval_steps, batch_size=args.batch_size, model=args.model,
        auc_floor=args.auc_floor, auc_max_regression=args.auc_max_regression,
        max_bad_row_fraction=args.max_bad_row_fraction, seed=args.seed,
        ignore_unknown_files=args.ignore_unknown_files,
        eval_start_timestamp=args.eval_start, eval_fraction=args.eval_fraction,
        max_days_from_median=args.max_days_from_median,
        min_eval_examples=args.min_eval_examples,
        drop_duplicate_events=args.drop_duplicate_events,
        model_overrides=parse_overrides(args.model_override),
        schema_profile_fields=(args.profile_fields.split(",")
                               if args.profile_fields is not None else None),
        schema_pid_values=([v for v in args.pid_values.split(",") if v]
                           if args.pid_values is not None else None))
    if args.beam_arg is not None:
        kwargs["beam_pipeline_args"] = args.beam_arg
    return PipelineConfig(**kwargs)


def ensure_simulated_data(data_root: str) -> None:
    """Simulates the built-in dataset into data_root unless it holds one made with today's
    default SimConfig (a folder simulated by an older version is simulated again, so that
    the data always matches the code and the README's figures)."""
    import json

    from simulator.config import SimConfig
    from simulator.dataset import REPORT_FILE, write_dataset
    report_path = os.path.join(data_root, REPORT_FILE)
    if os.path.exists(report_path):
        with open(report_path) as f:
            stored = json.load(f).get("config")
        if stored == SimConfig().to_dict():
            return
        logger.warning("%s was simulated with other settings than today's defaults: "
                       "simulating the built-in dataset again", data_root)
        for name in os.listdir(data_root):
            path = os.path.join(data_root, name)
            if os.path.isfile(path):
                os.remove(path)
    logger.info("no --data given: simulating the built-in dataset into %s", data_root)
    report = write_dataset(SimConfig(), data_root, progress=logger.info)
    print(report.format(), flush=True)


def run(config: PipelineConfig, enable_cache: bool = False):
    """Runs the pipeline with LocalDagRunner; returns (RunResult, metadata path)."""
    from tfx import v1 as tfx
    from pipeline.pipeline import create_pipeline
    from pipeline.results import cancel_dead_executions, read_run_result

    metadata_path = os.path.join(os.path.dirname(config.pipeline_root), "metadata.sqlite")
    os.makedirs(os.path.dirname(metadata_path), exist_ok=True)
    dead = cancel_dead_executions(metadata_path)
    if dead:
        logger.warning("an earlier run was stopped before it finished: %s left RUNNING in %s, "
                       "now marked CANCELED", ", ".join(dead), metadata_path)
    started_ms = int(time.time() * 1000)
    dag = create_pipeline(
        config, enable_cache=enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path))
    tfx.orchestration.LocalDagRunner().run(dag)
    return read_run_result(metadata_path, started_ms), metadata_path


def user_errors() -> tuple:
    """Exceptions that report a problem with the input or the settings (printed as one line;
    --verbose re-raises them), as opposed to bugs, which keep their traceback."""
    from components.anomalies_gate.component import DataAnomaliesError
    from components.feedback_example_gen.executor import BadRowsError, UnusableOutputError
    return (ValueError, BadRowsError, UnusableOutputError, DataAnomaliesError)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        datefmt="%H:%M:%S")
    try:
        config = config_from_args(args)
    except ValueError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    if args.data is not None and not os.path.isdir(config.data_root):
        print("error: --data %s is not a folder" % config.data_root, file=sys.stderr)
        return 2
    if args.verbose:
        return _run_and_report(args, config, _PlainConsole())
    # Quiet console: component, progress and warning lines here, everything else in the log.
    from pipeline.console import QuietConsole
    log_path = os.path.join(os.path.abspath(args.output_root), "logs",
                            time.strftime("%Y%m%d-%H%M%S") + ".log")
    with QuietConsole(log_path) as console:
        console.error("full log: %s" % log_path)
        return _run_and_report(args, config, console, log_path)


class _PlainConsole:
    """--verbose: everything on the console as it comes."""

    @staticmethod
    def say(text: str = "") -> None:
        print(text, flush=True)

    @staticmethod
    def error(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    @staticmethod
    def log_traceback() -> None:
        pass


def canonical_schema_defaults(config: PipelineConfig) -> Dict[str, object]:
    """Schema settings that follow the data, for canonical logs (one's own logs): the
    profile columns of users.csv (user_id left out) as `schema_profile_fields`, and any pid
    (`schema_pid_values=[]`: the Transform's pid vocabulary holds the values the data has),
    so that neither stops the run at the AnomaliesGate for differing from the public data.
    {} for the Tianchi layout (the curated schema is the public data's) or when the folder
    cannot be read (the ExampleGen will say what is wrong with it)."""
    from components.feedback_example_gen import beam_steps, readers
    try:
        files = beam_steps.discover(config.data_root, config.layout, ignore_unknown_files=True,
                                    check_archives=False, log_unread=False)
    except ValueError:
        return {}
    if files.layout != readers.CANONICAL:
        return {}
    defaults = {"schema_pid_values": []}
    if files.files.get("users"):
        defaults["schema_profile_fields"] = list(files.profile_fields)
    return defaults


def _run_and_report(args, config: PipelineConfig, console, log_path: str = None) -> int:
    if args.data is None:
        ensure_simulated_data(config.data_root)
    from pipeline.results import oracle_auc
    started = time.time()
    try:
        # Only what the flags left unset (--profile-fields, --pid-values).
        defaults = {name: value for name, value in canonical_schema_defaults(config).items()
                    if getattr(config, name) is None}
        if "schema_profile_fields" in defaults:
            logger.info("schema profile fields from users.csv: %s",
                        ", ".join(defaults["schema_profile_fields"]))
        if "schema_pid_values" in defaults:
            logger.info("schema pid: any value (canonical logs; --pid-values fixes a domain)")
        config = dataclasses.replace(config, **defaults)
        result, _ = run(config, enable_cache=args.enable_cache)
    except user_errors() as error:
        if args.verbose:
            raise
        # A problem with the data or the settings: one line that names it, not 20 frames
        # (those go to the log file).
        console.log_traceback()
        console.error("error: %s: %s" % (type(error).__name__, " ".join(str(error).split())))
        if log_path:
            console.error("full log: %s" % log_path)
        return 1
    console.say("\n=== DUMN pipeline finished in %.0f s ===" % (time.time() - started))
    console.say(result.format(oracle_auc(config.data_root)))
    if log_path:
        console.say("full log: %s" % log_path)
    if args.fail_if_not_blessed and not result.blessed:
        console.error("error: the model was not blessed (--fail-if-not-blessed)")
        return NOT_BLESSED_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
