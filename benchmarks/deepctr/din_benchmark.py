"""Training throughput of DeepCTR 0.9.4's DIN, the reference of issue 3 item 5.

Runs in DeepCTR's own virtual environment (made by `benchmarks/deepctr/setup_env.sh`),
not in the project's: DeepCTR is not a dependency of the project.

    benchmarks/deepctr/.venv/bin/python benchmarks/deepctr/din_benchmark.py \
        --vocab taobao,small --steps 10 --repeats 5 --warmup 5

(`benchmarks/train_throughput.py --deepctr` runs it with the same settings as our models).

Model: DIN(dnn_feature_columns, history_feature_list, att_hidden_size=(80, 40),
dnn_hidden_units=(200, 80)) with DeepCTR's other defaults (Dice attention activation,
l2_reg_embedding=1e-6), Adam lr 0.005, binary cross-entropy. Inputs: user id, the target
item's item/category/brand ids and T-long histories of item/category/brand ids sharing the
target's tables (DeepCTR's `hist_*` convention, padding 0 masked), E=16 for every field.
Data: random ids, pre-generated in memory (a cached tf.data dataset of distinct batches,
repeated), so input generation is not timed; the first `--warmup` steps (tracing, first
touches of the tables) are not timed; then `--repeats` windows of `--steps` steps are timed
(benchmarks/keras_timing.py) and the median examples/s = batch x steps / window time is
reported, with the share of the CPUs that other processes used meanwhile.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # benchmarks/ for machine_info, flops

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _tf_minor():
    from importlib.metadata import PackageNotFoundError, version
    for dist in ("tensorflow", "tensorflow-cpu", "tensorflow-intel"):
        try:
            major, minor = version(dist).split(".")[:2]
            return int(major), int(minor)
        except (PackageNotFoundError, ValueError):
            continue
    return None


# TF >= 2.16 defaults to Keras 3, which DeepCTR does not support: select Keras 2 (tf-keras)
# there. TF <= 2.15 ships Keras 2 and fails if asked for tf-keras it does not have.
if (_tf_minor() or (0, 0)) >= (2, 16):
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

import keras_timing  # noqa: E402
import machine_info  # noqa: E402

VOCABS = {
    # Taobao scale (issue 3): 0.8M items, 13k categories, 100k brands, 1.14M users.
    "taobao": {"item": 800_000, "cate": 13_000, "brand": 100_000, "user": 1_140_000},
    "small": {"item": 10_000, "cate": 10_000, "brand": 10_000, "user": 10_000},
}


def make_batches(vocab, batch_size, seq_len, n_batches, seed):
    rng = np.random.default_rng(seed)
    n = batch_size * n_batches
    x = {
        "user": rng.integers(1, vocab["user"], n),
        "item_id": rng.integers(1, vocab["item"], n),
        "cate_id": rng.integers(1, vocab["cate"], n),
        "brand_id": rng.integers(1, vocab["brand"], n),
    }
    lengths = rng.integers(1, seq_len + 1, n)
    pad = np.arange(seq_len)[None, :] >= lengths[:, None]
    for part, key in (("item", "item_id"), ("cate", "cate_id"), ("brand", "brand_id")):
        h = rng.integers(1, vocab[part], (n, seq_len))
        h[pad] = 0
        x["hist_" + key] = h
    x["seq_length"] = lengths
    x = {k: v.astype(np.int32) for k, v in x.items()}
    y = rng.integers(0, 2, n).astype(np.float32)
    return x, y


def build(vocab, emb_dim, seq_len, lr):
    import tensorflow as tf
    from deepctr.feature_column import SparseFeat, VarLenSparseFeat
    from deepctr.models import DIN

    cols = [
        SparseFeat("user", vocab["user"], embedding_dim=emb_dim),
        SparseFeat("item_id", vocab["item"], embedding_dim=emb_dim),
        SparseFeat("cate_id", vocab["cate"], embedding_dim=emb_dim),
        SparseFeat("brand_id", vocab["brand"], embedding_dim=emb_dim),
    ]
    for part, key in (("item", "item_id"), ("cate", "cate_id"), ("brand", "brand_id")):
        cols.append(VarLenSparseFeat(
            SparseFeat("hist_" + key, vocabulary_size=vocab[part], embedding_dim=emb_dim,
                       embedding_name=key),
            maxlen=seq_len, length_name="seq_length"))
    model = DIN(cols, ["item_id", "cate_id", "brand_id"],
                att_hidden_size=(80, 40), dnn_hidden_units=(200, 80))
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=lr),
                  loss="binary_crossentropy")
    return model


def run_one(vocab_name, args):
    import tensorflow as tf

    vocab = VOCABS[vocab_name]
    tf.keras.backend.clear_session()
    tf.random.set_seed(args.seed)
    n_batches = max(1, min(args.distinct_batches, args.warmup + args.steps))
    x, y = make_batches(vocab, args.batch_size, args.seq_len, n_batches, args.seed)
    t = time.perf_counter()
    model = build(vocab, args.embedding_dim, args.seq_len, args.lr)
    build_s = time.perf_counter() - t
    ds = (tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size, drop_remainder=True)
          .cache().repeat().prefetch(2))
    for _ in ds.take(n_batches):  # fill the cache before anything is timed
        pass
    flops = None
    if not args.no_flops:
        import flops as flops_lib
        one = {k: tf.constant(v[:args.batch_size]) for k, v in x.items()}
        flops = flops_lib.forward_flops_per_example(model, one)["per_example"]
    if args.wait_idle > 0:
        machine_info.wait_for_idle(args.max_other_cpu, timeout_s=args.wait_idle)
    timing = keras_timing.timed_fit_when_idle(
        model, ds, args.batch_size, args.steps, args.warmup, args.repeats, args.max_other_cpu,
        args.retries, args.wait_idle, started=time.perf_counter())
    params = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return {
        "library": "deepctr %s" % _version("deepctr"),
        "optimizer": "Adam(lr=%g) (tf.keras)" % args.lr,
        "tensorflow": tf.__version__,
        "model": "DeepCTR DIN",
        "vocab": vocab_name,
        "vocab_sizes": vocab,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "embedding_dim": args.embedding_dim,
        "steps": args.steps,
        "repeats": args.repeats,
        "warmup_steps": args.warmup,
        **timing,
        "forward_flops_per_example": flops,
        "trainable_params": params,
        "build_s": build_s,
    }


def _version(dist):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:  # noqa: BLE001
        return "?"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", default="taobao,small",
                   help="comma-separated presets among %s" % ",".join(VOCABS))
    p.add_argument("--steps", type=int, default=10, help="timed steps per window (default 10)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (>= 1)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed windows of --steps steps; the median is reported (default 5)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seq-len", type=int, default=100, help="T, history length")
    p.add_argument("--embedding-dim", type=int, default=16, help="E")
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--distinct-batches", type=int, default=8,
                   help="pre-generated distinct batches, cycled")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-flops", action="store_true", help="skip the FLOPs count")
    keras_timing.add_idle_arguments(p)
    p.add_argument("--json-out", help="write the results (list of rows + machine) here")
    args = p.parse_args(argv)
    if args.warmup < 1:
        p.error("--warmup must be >= 1")

    import tensorflow as tf
    machine = machine_info.describe()
    machine["tf_gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    rows = []
    for name in [v.strip() for v in args.vocab.split(",") if v.strip()]:
        if name not in VOCABS:
            p.error("unknown vocab preset %r" % name)
        row = run_one(name, args)
        rows.append(row)
        print("%-12s %-7s %9.1f ex/s %8.1f ms/step  (windows %s; %d steps x batch %d, T=%d, "
              "E=%d, %s, TF %s; other processes used %.0f %% of the CPUs)"
              % (row["model"], name, row["examples_per_s"], row["ms_per_step"],
                 "/".join("%.0f" % w for w in row["examples_per_s_windows"]), row["timed_steps"],
                 row["batch_size"], row["seq_len"], row["embedding_dim"], row["library"],
                 row["tensorflow"], 100 * row["other_cpu_share"]), flush=True)
    print("machine: " + machine_info.one_line(machine))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"rows": rows, "machine": machine}, f, indent=2)


if __name__ == "__main__":
    main()
