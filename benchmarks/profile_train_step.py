"""Where a training step of our DUMN / DIN spends its time (tf.profiler, CPU).

    .venv/bin/python benchmarks/profile_train_step.py --model dumn --vocab small --steps 5

Trains `--warmup` steps, then traces `--steps` steps with `tf.profiler.experimental`, reads
the XSpace the profiler wrote (tensorflow.tsl xplane_pb2) and sums the self time of every
TensorFlow op (the events named "op_name:OpType" on the tf_Compute threads) by

* component: forward / backward (ops under `gradient_tape/`) x the model's layer scope
  (e.g. feature_purification/attention_click, memory_click, pair, prediction_head,
  triplet_loss, embedding), and the optimizer's update (ops under the optimizer's name);
* op type (Einsum, MatMul, Softmax, SelectV2, ...);
* single op (top N).

Op time is summed over the compute threads (with 2 cores, two ops may run at once), so the
shares are of total op time, not of wall time; the wall time per step is printed beside them.
The profiler adds some overhead; use benchmarks/train_throughput.py for rates.
"""
import argparse
import collections
import glob
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import legacy_keras  # noqa: E402,F401


def _component(op_name: str, model_name: str, optimizer_name: str) -> str:
    backward = op_name.startswith("gradient_tape/")
    name = op_name[len("gradient_tape/"):] if backward else op_name
    if name.startswith(optimizer_name + "/") or name.startswith("Adam/") or \
            name.startswith("LazyAdam/"):
        return "optimizer update"
    parts = name.split("/")
    if parts and parts[0] == model_name:
        parts = parts[1:]
    if not parts:
        return ("backward: " if backward else "forward: ") + "(top)"
    scope = parts[0]
    if scope == "feature_purification" and len(parts) > 1 and parts[1].startswith("attention"):
        scope = "attention (" + parts[1][len("attention_"):] + ")" if "_" in parts[1] else parts[1]
    elif len(parts) == 1:
        scope = "(model top level)"
    scope = re.sub(r"_\d+$", "", scope)
    return ("backward: " if backward else "forward: ") + scope


def parse_xspace(logdir, model_name, optimizer_name):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise RuntimeError("the profiler wrote no .xplane.pb under %s" % logdir)
    xs = xplane_pb2.XSpace()
    with open(paths[0], "rb") as f:
        xs.ParseFromString(f.read())
    by_op = collections.Counter()
    for plane in xs.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for e in line.events:
                n = plane.event_metadata[e.metadata_id].name
                if ":" in n and "::" not in n:
                    by_op[n] += e.duration_ps / 1e9  # ms
    by_component = collections.Counter()
    by_type = collections.Counter()
    for n, ms in by_op.items():
        op_name, op_type = n.rsplit(":", 1)
        by_component[_component(op_name, model_name, optimizer_name)] += ms
        by_type[op_type.lstrip("_").replace("Mkl", "").replace("Fused", "Fused")] += ms
    return by_op, by_component, by_type


def _print(title, counter, steps, total, top=None):
    print("\n%s (ms per step, share of op time)" % title)
    for name, ms in counter.most_common(top):
        print("  %8.2f  %5.1f %%  %s" % (ms / steps, 100.0 * ms / total, name))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    from models import registry

    p.add_argument("--model", default="dumn", choices=registry.kinds())
    p.add_argument("--vocab", default="small", choices=("taobao", "small", "builtin"),
                   help="a vocabulary preset of train_throughput.py, or builtin: the real "
                        "transformed examples of --pipeline-root")
    p.add_argument("--pipeline-root", default=os.path.join(ROOT, "output"),
                   help="output root of a pipeline run, for --vocab builtin")
    p.add_argument("--steps", type=int, default=5, help="traced steps")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--optimizer", choices=("lazy_adam", "adam"), default=None)
    p.add_argument("--profile-fields", action="store_true")
    p.add_argument("--top", type=int, default=25, help="single ops listed")
    p.add_argument("--logdir", default=None, help="keep the trace here (TensorBoard)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    import train_throughput as tt
    from models import features as F
    from models.testing_utils import random_features

    if args.vocab == tt.REAL_DATA:
        x, y, sizes = tt.real_batches(args.pipeline_root, args.batch_size * 4, args.seed)
        config = tt._config(args.model, args.vocab, args, real_sizes=sizes)
        y = y.astype(np.float32)
    else:
        config = tt._config(args.model, args.vocab, args)
        x = random_features(config, args.batch_size * 4, seed=args.seed)
        y = x.pop(F.LABEL).astype(np.float32)
    for f in F.FEEDBACK_TYPES:
        x.pop(F.full_length(f), None)
    model = tt._build(config)
    if not getattr(model, "_is_compiled", False):
        model.compile()
    ds = (tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size, drop_remainder=True)
          .cache().repeat().prefetch(2))
    model.fit(ds, steps_per_epoch=args.warmup, verbose=0)
    logdir = args.logdir or tempfile.mkdtemp(prefix="dumn_profile_")
    tf.profiler.experimental.start(logdir)
    t = time.perf_counter()
    model.fit(ds, steps_per_epoch=args.steps, verbose=0)
    wall = time.perf_counter() - t
    tf.profiler.experimental.stop()
    by_op, by_component, by_type = parse_xspace(logdir, model.name, model.optimizer.name)
    if not args.logdir:
        shutil.rmtree(logdir, ignore_errors=True)
    total = sum(by_op.values())
    print("%s, vocab %s, batch %d, T=%d: %.1f ms wall per step while tracing, %.1f ms op time "
          "per step (summed over threads), %d ops per step"
          % (args.model, args.vocab, args.batch_size, args.seq_len, 1000 * wall / args.steps,
             total / args.steps, len(by_op)))
    _print("By component", by_component, args.steps, total)
    _print("By op type", by_type, args.steps, total, 20)
    _print("Top single ops", by_op, args.steps, total, args.top)


if __name__ == "__main__":
    main()
