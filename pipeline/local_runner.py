"""`dumn-pipeline`: runs the whole DUMN pipeline locally (LocalDagRunner, SQLite metadata).

With no --data, the built-in simulated dataset is generated first (once) and used; the run
then prints the eval AUC next to the simulator's oracle AUC, the blessing and the push path.

    dumn-pipeline                                   # simulated data, defaults
    dumn-pipeline --data /data/taobao --layout tianchi --train-steps 20000 \
        --beam-arg=--direct_running_mode=multi_processing --beam-arg=--direct_num_workers=2
"""
import argparse
import contextlib
import dataclasses
import logging
import os
import sys
import time
from typing import Dict

import legacy_keras  # noqa: F401  (before TensorFlow)

from pipeline.config import (REPO_ROOT, PipelineConfig, knob_default, knob_flag, knob_kind,
                             knobs, parse_key_value, split_comma_list)

logger = logging.getLogger("dumn-pipeline")
# Exit code of a run whose model was not blessed, with --fail-if-not-blessed (1 = a data or
# configuration error, 2 = bad flags).
NOT_BLESSED_EXIT_CODE = 3


def build_parser() -> argparse.ArgumentParser:
    from models import registry

    p = argparse.ArgumentParser(
        prog="dumn-pipeline", description=__doc__,
        epilog="models (--model; models/registry.py, one module each in models/zoo/):\n"
               + "\n".join("  %-10s %s" % (k, registry.summary(k)) for k in registry.kinds())
               + "\n\nA model's own settings are --model-override KEY=VALUE with its keys "
                 "(e.g. din_hidden_units=[200,80]); see docs/model.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="folder of logs (canonical or Tianchi layout); default: the "
                                  "built-in simulated dataset, generated on first use")
    p.add_argument("--output-root", default=os.path.join(REPO_ROOT, "output"),
                   help="pipeline root, metadata and pushed models go under this folder")
    knob_arguments = p.add_argument_group(
        "pipeline knobs", "the same knobs as dumn-kubeflow's (declared once, in "
                          "pipeline/config.py's PipelineConfig)")
    for field in knobs():
        add_knob_argument(knob_arguments, field)
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


def add_knob_argument(parser, field) -> None:
    """The flag of one PipelineConfig knob; its value lands in args.<field name>, None when
    the flag is not given (the field's default then applies)."""
    spec = field.metadata["knob"]
    kind, _ = knob_kind(field)
    default = knob_default(field)
    help_text = spec.help
    if kind == "list" and default:
        help_text += " (default: %s)" % " ".join(default)
    elif kind == "bool":
        help_text += " (default: %s)" % ("on" if default else "off")
    elif kind != "dict" and default is not None:
        help_text += " (default: %s)" % (default,)
    kwargs = dict(dest=field.name, default=None, help=help_text)
    if spec.metavar:
        kwargs["metavar"] = spec.metavar
    if kind == "bool":
        kwargs["action"] = argparse.BooleanOptionalAction
    elif kind == "list" and spec.comma_list:
        kwargs["type"] = split_comma_list
    elif kind in ("list", "dict"):
        kwargs["action"] = "append"
    else:
        kwargs["type"] = {"int": int, "float": float, "str": str}[kind]
        kwargs["choices"] = spec.choices
    parser.add_argument(knob_flag(field), *spec.aliases, **kwargs)


def config_from_args(args) -> PipelineConfig:
    root = os.path.abspath(args.output_root)
    data = os.path.abspath(args.data) if args.data else os.path.join(root, "data", "simulated")
    kwargs = dict(pipeline_root=os.path.join(root, "pipeline"), data_root=data,
                  serving_model_dir=os.path.join(root, "serving_model"))
    for field in knobs():
        value = getattr(args, field.name)
        if value is None:
            continue                                  # the field's default
        if knob_kind(field)[0] == "dict":
            value = dict(parse_key_value(item, knob_flag(field)) for item in value)
        kwargs[field.name] = value
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


def is_direct_runner(beam_args) -> bool:
    """Whether `beam_args` select Beam's DirectRunner (also when they name no runner)."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    runner = PipelineOptions(flags=list(beam_args)).view_as(StandardOptions).runner
    return runner in (None, "DirectRunner", "direct", "SwitchingDirectRunner")


@contextlib.contextmanager
def no_tfx_sdist_for_direct_runner():
    """Inside: TFX's Beam executors do not package TFX for a DirectRunner.

    Every Beam component's executor (ExampleGen, StatisticsGen, Transform, Evaluator) calls
    `tfx.utils.dependency_utils.make_beam_dependency_flags`, which copies the installed TFX
    (49 MB) into a new temporary folder, builds an sdist of it and adds `--extra_package` so
    that remote workers (Dataflow, Flink) can import TFX: 2-3 s per component, and 4 copies
    left in the temporary folder by every run. The DirectRunner's workers are this machine's
    processes with this environment and never install it. Other runners still get it.
    """
    from tfx.utils import dependency_utils
    original = dependency_utils.make_beam_dependency_flags

    def flags(beam_pipeline_args):
        if is_direct_runner(beam_pipeline_args):
            return list(beam_pipeline_args)
        return original(beam_pipeline_args)

    dependency_utils.make_beam_dependency_flags = flags
    try:
        yield
    finally:
        dependency_utils.make_beam_dependency_flags = original


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
    with no_tfx_sdist_for_direct_runner():
        tfx.orchestration.LocalDagRunner().run(dag)
    result = read_run_result(metadata_path, started_ms)
    result.report_path = write_run_report(os.path.dirname(metadata_path))
    return result, metadata_path


def write_run_report(output_root: str):
    """The HTML report of the run that just ended (the latest in the metadata), or None
    with a warning when it cannot be built: the model is trained, evaluated and pushed all
    the same, and `dumn-report` can build the report again."""
    from pipeline.report.render import write_report
    try:
        return write_report(output_root)
    except Exception as error:  # noqa: BLE001 (a report must not fail a finished run)
        logger.warning("the run report could not be written (%s: %s); the traceback is in "
                       "the log; `dumn-report %s` tries again", type(error).__name__, error,
                       output_root, exc_info=True)
        return None


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
    # The simulator's oracle is of click probabilities: the CTR task's only.
    console.say(result.format(oracle_auc(config.data_root) if config.task == "ctr" else None))
    if log_path:
        console.say("full log: %s" % log_path)
    if args.fail_if_not_blessed and not result.blessed:
        console.error("error: the model was not blessed (--fail-if-not-blessed)")
        return NOT_BLESSED_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
