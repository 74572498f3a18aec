"""Training throughput (examples/s) of our DUMN and DIN, and of DeepCTR 0.9.4's DIN (issue 3).

    .venv/bin/python benchmarks/train_throughput.py --models dumn,din --vocab taobao,small \
        --steps 10 --repeats 5 --warmup 5 --deepctr --wait-idle 900 --retries 3 \
        --json-out /tmp/train_throughput.json

(the command of record in docs/benchmarks.md; about 3 minutes on an idle 2-core machine).

Each configuration trains `warmup + repeats x steps` steps in one `model.fit` over an
in-memory tf.data dataset of pre-generated random batches (`models.testing_utils.
random_features`, cached and cycled), so input generation is not timed. The warm-up steps
(tracing, first touches of the tables and optimizer slots) are excluded; the median of the
`repeats` timed windows is reported: examples/s = batch x steps / wall time of the window.
Every row also states which share of the CPUs other processes used during its timed steps
(/proc/stat); on a shared machine `--wait-idle` waits for an idle machine first and
`--retries` re-times a row that a neighbour disturbed (more than `--max-other-cpu`).

Shapes (issue 3): batch 256, T = 100 for the item/category/brand histories, E = 16, K
triplet samples per feedback type (DUMN). Vocabulary presets:

    taobao  0.8M items, 13k categories, 100k brands, 1.14M users (the public Taobao data)
    small   10k entries in each of those tables
    builtin not a preset: the training examples and vocabularies of a pipeline run
            (--pipeline-root, default output/), transformed and ordered as the Trainer
            does; their histories are as long as the data's (the like and dislike ones
            short), not uniform in [0, T]

Models: DUMN at the paper's hyper-parameters (`ModelConfig()` defaults: T=100, E=16, FFN 512,
m=256, Z=64, Adam lr 0.005 as the model's own LazyAdam), and our DIN with attention MLP
(80, 40) and DNN (200, 80). `--deepctr` also runs DeepCTR 0.9.4's DIN with the same shapes
and vocabularies in DeepCTR's own venv (`benchmarks/deepctr/setup_env.sh`, created if
missing) as a subprocess, and prints every row in one table.

FLOPs per example: the forward pass of the training step (triplet loss and memory write
included), counted on the traced graph by `benchmarks/flops.py`; one training step is taken
as 3x the forward FLOPs. Share of peak = 3 x forward FLOPs x examples/s / peak, with the CPU
peak estimated by `benchmarks/machine_info.py` (cores x GHz x 64 fp32 FLOPs/cycle, stated).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import legacy_keras  # noqa: E402,F401  (Keras 2 before TensorFlow loads)

import keras_timing  # noqa: E402
import machine_info  # noqa: E402

VOCABS = {
    "taobao": {"item": 800_000, "cate": 13_000, "brand": 100_000, "user": 1_140_000},
    "small": {"item": 10_000, "cate": 10_000, "brand": 10_000, "user": 10_000},
}
# The public Taobao data's user profile (user_profile.csv), rows incl. padding/OOV: only
# with --profile-fields (DeepCTR's DIN is given the user id alone, as ours by default).
TAOBAO_PROFILE_FIELDS = {
    "cms_segid": 99, "cms_group_id": 15, "final_gender_code": 4, "age_level": 9,
    "pvalue_level": 6, "shopping_level": 5, "occupation": 4, "new_user_class_level": 7,
}
PID_VOCAB = 4  # 0 (none), the two pids, one OOV bucket
# Not a preset: the real transformed examples (and vocabularies) of a pipeline run,
# `--pipeline-root`; histories as long as the data's, not uniform in [0, T].
REAL_DATA = "builtin"
def model_label(kind):
    return "%s (ours)" % kind.upper()


def _config(model_name, vocab_name, args, real_sizes=None):
    """ModelConfig of a row: a preset's vocabularies, or a pipeline run's (`real_sizes`, from
    its Transform artifact: `vocabulary_sizes`, profile fields included)."""
    from models.config import ModelConfig

    if real_sizes is not None:
        values = dict(model=model_name, max_seq_len=args.seq_len,
                      embedding_dim=args.embedding_dim, **real_sizes)
    else:
        v = VOCABS[vocab_name]
        values = dict(
            model=model_name,
            item_vocab_size=v["item"], cate_vocab_size=v["cate"], brand_vocab_size=v["brand"],
            user_vocab_size=v["user"], pid_vocab_size=PID_VOCAB,
            user_fields=TAOBAO_PROFILE_FIELDS if args.profile_fields else {},
            max_seq_len=args.seq_len, embedding_dim=args.embedding_dim,
        )
    if args.samples is not None:
        values["num_triplet_samples"] = args.samples
    if args.optimizer:
        values["optimizer"] = args.optimizer
    return ModelConfig(**values)


def real_batches(pipeline_root, n_examples, seed):
    """(features, labels, vocabulary sizes): `n_examples` transformed training examples of
    the newest Transform run under `pipeline_root`, loaded and drawn as the Trainer draws them
    (models/trainer.py's split_columns: Transform's output when it was materialised, else the
    ExampleGen's raw examples through the transform graph; the canonical order of
    models/example_order.py, then a permutation seeded with `seed`)."""
    import glob

    import numpy as np
    import tensorflow_transform as tft

    from quality import latest_artifact

    from models import example_order, preprocessing, trainer

    pipeline = os.path.join(pipeline_root, "pipeline")
    graph = latest_artifact(pipeline, "Transform", "transform_graph")
    tft_output = tft.TFTransformOutput(graph)
    # The same Transform execution (artifact folders are named by its id) materialised
    # examples, or only analysed: then the ExampleGen's raw examples are the input.
    transformed = os.path.join(pipeline, "Transform", "transformed_examples",
                               os.path.basename(graph))
    materialized = os.path.isdir(transformed)
    examples = (transformed if materialized
                else latest_artifact(pipeline, "FeedbackExampleGen", "examples"))
    files = glob.glob(os.path.join(examples, "Split-train", "*"))
    loaded = trainer.split_columns(files, tft_output, materialized)
    if loaded is None:
        raise SystemExit("the training split of %s does not fit in memory" % examples)
    columns, labels = example_order.sorted_columns(*loaded)
    if len(labels) < n_examples:
        raise SystemExit("%s holds %d training examples, fewer than the %d needed"
                         % (examples, len(labels), n_examples))
    pick = np.random.default_rng(seed).permutation(len(labels))[:n_examples]
    x = {name: value[pick].astype(np.int64) if value.dtype == np.int32 else value[pick]
         for name, value in columns.items()
         if name != preprocessing.HISTORY_BUCKET}  # the Evaluator's slice, not a model input
    return x, labels[pick], preprocessing.vocabulary_sizes(tft_output)


def _build(config):
    """Our model for `config`, through the model factory when there is one."""
    try:
        from models.model_factory import build_model
    except ImportError:
        build_model = None
    if build_model is not None:
        return build_model(config)
    # Older commits (before/after measurements) had no factory and models/dumn.py, din.py.
    if config.model == "dumn":
        from models.dumn import build_dumn
        return build_dumn(config)
    from models.din import build_din
    return build_din(config)


def run_ours(model_name, vocab_name, args):
    import numpy as np
    import tensorflow as tf

    from models import features as F
    from models.testing_utils import random_features

    tf.keras.backend.clear_session()
    tf.random.set_seed(args.seed)
    idle = None
    n_batches = max(1, min(args.distinct_batches, args.warmup + args.steps * args.repeats))
    if vocab_name == REAL_DATA:
        x, y, sizes = real_batches(args.pipeline_root, args.batch_size * n_batches, args.seed)
        config = _config(model_name, vocab_name, args, real_sizes=sizes)
        y = y.astype(np.float32)
    else:
        config = _config(model_name, vocab_name, args)
        sizes = VOCABS[vocab_name]
        x = random_features(config, args.batch_size * n_batches, seed=args.seed)
        y = x.pop(F.LABEL).astype(np.float32)
    for f in F.FEEDBACK_TYPES:  # analysis-only feature, not a model input
        x.pop(F.full_length(f), None)
    t = time.perf_counter()
    model = _build(config)
    if not getattr(model, "_is_compiled", False):
        model.compile()  # the model's own optimizer: make_optimizer(config), lr 0.005
    build_s = time.perf_counter() - t
    ds = (tf.data.Dataset.from_tensor_slices((x, y))
          .batch(args.batch_size, drop_remainder=True).cache().repeat().prefetch(2))
    for _ in ds.take(n_batches):  # fill the cache before anything is timed
        pass
    one = {k: tf.constant(v[:args.batch_size]) for k, v in x.items()}
    model(one, training=False)  # create the variables
    flops = None
    if not args.no_flops:
        import flops as flops_lib
        flops = flops_lib.forward_flops_per_example(model, one)
    if args.wait_idle > 0:
        idle = machine_info.wait_for_idle(args.max_other_cpu, timeout_s=args.wait_idle)
    timing = keras_timing.timed_fit_when_idle(
        model, ds, args.batch_size, args.steps, args.warmup, args.repeats, args.max_other_cpu,
        args.retries, args.wait_idle, started=time.perf_counter())
    optimizer = model.optimizer
    return {
        "library": "dumn-tfx (this repo)",
        "tensorflow": tf.__version__,
        "model": model_label(model_name),
        "vocab": vocab_name,
        "vocab_sizes": sizes,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "embedding_dim": args.embedding_dim,
        "triplet_samples": config.num_triplet_samples if model_name == "dumn" else None,
        "optimizer": "%s(lr=%g)" % (type(optimizer).__name__,
                                    float(tf.keras.backend.get_value(optimizer.learning_rate))),
        "steps": args.steps,
        "repeats": args.repeats,
        "warmup_steps": args.warmup,
        **timing,
        "forward_flops_per_example": flops["per_example"] if flops else None,
        "forward_flops_by_op": ({k: v / args.batch_size for k, v in flops["by_type"].items()}
                                if flops else None),
        "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "build_s": build_s,
        "other_cpu_share_before": idle,
        "config": config.to_dict(),
    }


def code_version():
    """git HEAD, and a digest of models/*.py (the model code may be uncommitted)."""
    import hashlib
    out = {"git_head": None, "models_sha256": None, "models_dirty": None}
    try:
        out["git_head"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                         capture_output=True, text=True).stdout.strip() or None
        status = subprocess.run(["git", "status", "--porcelain", "models"], cwd=ROOT,
                                capture_output=True, text=True).stdout
        out["models_dirty"] = bool(status.strip())
    except OSError:
        pass
    digest = hashlib.sha256()
    models_dir = os.path.join(ROOT, "models")
    for name in sorted(os.listdir(models_dir)):
        if name.endswith(".py"):
            with open(os.path.join(models_dir, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    out["models_sha256"] = digest.hexdigest()[:16]
    return out


def _deepctr_python(args):
    if args.deepctr_python:
        return args.deepctr_python
    setup = os.path.join(HERE, "deepctr", "setup_env.sh")
    out = subprocess.run(["bash", setup], check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip().splitlines()[-1]


def run_deepctr(vocabs, args):
    """DeepCTR's DIN in its own venv; returns its rows (same shapes, same vocab presets)."""
    python = _deepctr_python(args)
    out_json = args.json_out + ".deepctr.json" if args.json_out else "/tmp/_deepctr_din.json"
    cmd = [python, os.path.join(HERE, "deepctr", "din_benchmark.py"),
           "--vocab", ",".join(vocabs), "--steps", str(args.steps),
           "--repeats", str(args.repeats), "--warmup", str(args.warmup),
           "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len),
           "--embedding-dim", str(args.embedding_dim), "--seed", str(args.seed),
           "--distinct-batches", str(args.distinct_batches), "--json-out", out_json,
           "--wait-idle", str(args.wait_idle), "--retries", str(args.retries),
           "--max-other-cpu", str(args.max_other_cpu)]
    if args.no_flops:
        cmd.append("--no-flops")
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)  # the DeepCTR script decides for its own TF
    print("[deepctr] " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)
    with open(out_json) as f:
        rows = json.load(f)["rows"]
    if not args.json_out:
        os.remove(out_json)
    return rows


def _fmt_flops(f):
    return "-" if not f else ("%.2f M" % (f / 1e6) if f < 1e9 else "%.2f G" % (f / 1e9))


def table(rows, machine):
    peak = machine.get("peak_flops")
    lines = ["| model | vocab | examples/s (median) | best window | ms/step | CPU ms/step | "
             "fwd FLOPs/example | train FLOP/s (3x fwd) | % of peak | optimizer | TF | "
             "other procs' CPU |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|"]
    for r in rows:
        fl = r.get("forward_flops_per_example")
        achieved = 3 * fl * r["examples_per_s"] if fl else None
        share = 100.0 * achieved / peak if achieved and peak else None
        r["train_flops_per_s"] = achieved
        r["percent_of_peak"] = share
        lines.append(("| %s | %s | %.0f | %.0f | %.1f | %.0f | %s | %s | %s | %s | %s "
                      "| %.0f %% |") % (
            r["model"], r["vocab"], r["examples_per_s"], r["examples_per_s_best"],
            r["ms_per_step"], r["cpu_ms_per_step"], _fmt_flops(fl),
            "%.1f G" % (achieved / 1e9) if achieved else "-",
            "%.2f %%" % share if share is not None else "-",
            r.get("optimizer", "Adam(lr=0.005), DeepCTR"), r["tensorflow"],
            100 * r.get("other_cpu_share", float("nan"))))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="dumn,din", help="comma-separated kinds of models/registry.py")
    p.add_argument("--vocab", default="taobao,small",
                   help="comma-separated vocabulary presets: %s; or %s = the real transformed "
                        "training examples of --pipeline-root" % (", ".join(VOCABS), REAL_DATA))
    p.add_argument("--pipeline-root", default=os.path.join(ROOT, "output"),
                   help="output root of a pipeline run, for --vocab %s (default: the main "
                        "job's, output/)" % REAL_DATA)
    p.add_argument("--steps", type=int, default=10, help="timed steps per window (default 10)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed windows per configuration; the median is reported (default 5)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seq-len", type=int, default=100, help="T (default 100)")
    p.add_argument("--embedding-dim", type=int, default=16, help="E (default 16)")
    p.add_argument("--samples", type=int, default=None,
                   help="K triplet samples per feedback type (default: ModelConfig's)")
    p.add_argument("--optimizer", choices=("lazy_adam", "adam"), default=None,
                   help="override ModelConfig.optimizer (default: the config's, LazyAdam)")
    p.add_argument("--profile-fields", action="store_true",
                   help="give our models the 8 Taobao user-profile fields too")
    p.add_argument("--distinct-batches", type=int, default=8,
                   help="pre-generated distinct batches, cycled (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-flops", action="store_true", help="skip the FLOPs count")
    p.add_argument("--ghz", type=float, default=None,
                   help="core clock for the peak estimate (default: /proc/cpuinfo cpu MHz)")
    p.add_argument("--flops-per-cycle", type=float,
                   default=machine_info.DEFAULT_FLOPS_PER_CYCLE,
                   help="fp32 FLOPs/cycle/core for the peak estimate (default 64: "
                        "2 x AVX-512 FMA)")
    p.add_argument("--deepctr", action="store_true",
                   help="also run DeepCTR 0.9.4's DIN in its own venv, in this run")
    p.add_argument("--deepctr-python", default=None,
                   help="python of DeepCTR's venv (default: made/found by "
                        "benchmarks/deepctr/setup_env.sh)")
    keras_timing.add_idle_arguments(p)
    p.add_argument("--json-out", default=None, help="write rows + machine as JSON here")
    args = p.parse_args(argv)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    vocabs = [v.strip() for v in args.vocab.split(",") if v.strip()]
    from models import registry

    for m in models:
        if m not in registry.kinds():
            p.error("unknown model %r (%s)" % (m, ", ".join(registry.kinds())))
    for v in vocabs:
        if v not in VOCABS and v != REAL_DATA:
            p.error("unknown vocab preset %r (%s, %s)" % (v, ", ".join(VOCABS), REAL_DATA))
    if args.deepctr and REAL_DATA in vocabs:
        p.error("--deepctr runs on the presets only (%s)" % ", ".join(VOCABS))
    if min(args.steps, args.repeats, args.warmup) < 1:
        p.error("--steps, --repeats and --warmup must be >= 1")

    import tensorflow as tf

    machine = machine_info.describe(args.ghz, args.flops_per_cycle)
    machine["tf_gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    version = code_version()
    print("machine: " + machine_info.one_line(machine), flush=True)
    print("code: git %s, models/*.py sha256 %s%s" % (
        version["git_head"], version["models_sha256"],
        " (uncommitted changes in models/)" if version["models_dirty"] else ""), flush=True)
    print("peak assumption: " + machine["peak_assumption"], flush=True)
    started = time.time()
    rows = []
    for vocab in vocabs:
        for m in models:
            row = run_ours(m, vocab, args)
            rows.append(row)
            print("%-12s %-7s %9.1f ex/s %8.1f ms/step  (windows %s; %d timed steps x batch %d;"
                  " fwd %s FLOPs/example; other processes used %.0f %% of the CPUs)" % (
                      row["model"], vocab, row["examples_per_s"], row["ms_per_step"],
                      "/".join("%.0f" % w for w in row["examples_per_s_windows"]),
                      row["timed_steps"], row["batch_size"],
                      _fmt_flops(row["forward_flops_per_example"]),
                      100 * row["other_cpu_share"]), flush=True)
    if args.deepctr:
        rows += run_deepctr(vocabs, args)
    print()
    print("Training throughput: batch %d, T=%d, E=%d, %d warm-up + %d x %d timed steps per row"
          % (args.batch_size, args.seq_len, args.embedding_dim, args.warmup, args.repeats,
             args.steps))
    print(table(rows, machine))
    print("machine: " + machine_info.one_line(machine))
    print("total wall time: %.0f s" % (time.time() - started))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"rows": rows, "machine": machine, "code": version, "argv": sys.argv,
                       "command": " ".join(sys.argv)}, f, indent=2, default=str)
        print("wrote " + args.json_out)


if __name__ == "__main__":
    main()
