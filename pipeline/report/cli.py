"""`dumn-report`: (re)builds the offline HTML report of a past pipeline run.

    dumn-report output                    # the latest run under ./output
    dumn-report output --run 20261204-012005
    dumn-report output --list             # the runs recorded there

The report is OUTPUT_ROOT/report/<run id>/index.html (self-contained: open it from disk in
any browser), with report.json beside it. dumn-pipeline writes it after every run.
"""
import argparse
import logging
import sys

import legacy_keras  # noqa: F401  (before TensorFlow)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dumn-report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output_root", metavar="OUTPUT_ROOT",
                   help="the --output-root of dumn-pipeline (holds metadata.sqlite)")
    p.add_argument("--run", metavar="RUN_ID",
                   help="the run: its report folder name (YYYYMMDD-HHMMSS) or TFX's "
                        "pipeline-run id; default: the latest run")
    p.add_argument("--list", action="store_true", help="list the recorded runs and exit")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from pipeline.report.collect import find_run, folder_id, list_runs
    from pipeline.report.render import write_report
    try:
        if args.list:
            find_run(args.output_root)              # a clear error when there is no run
            for name in list_runs(args.output_root):
                print("%s  (TFX run %s)" % (folder_id(name), name))
            return 0
        path = write_report(args.output_root, args.run)
    except ValueError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    print("report: %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
