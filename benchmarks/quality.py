"""Quality benchmark: every registered model and the paper's ablations on ONE Transform
output, same budget.

    .venv/bin/python benchmarks/quality.py --output-root output \
        --variants models,-UMN,-FP,-TL,IF --seeds 1,2,3 --budgets main,converge \
        --markdown docs/quality.md

Variants: `models` = every model of models/registry.py (each under its kind, e.g. `deepfm`;
the default), a kind, a key of models.config.ABLATIONS (DUMN, DIN, -FP, ...) or a
`--define`d one.

Data: the latest FeedbackExampleGen examples and Transform graph under
`<output-root>/pipeline` (the main job's; or `--examples` / `--transform-graph`). The raw
examples go through the Transform graph (`TFTransformOutput.transform_features_layer()`,
exactly what the Trainer and the served model see), so one pipeline run serves every
variant. The train split is cut by time: its last `--validation-days` day(s) are the
validation slice, used for early stopping and model selection; the rest trains. The eval
split is only ever scored, after training. With simulator truth (`ground_truth.csv` next to
the data, found through the pipeline's data root or `--truth`), the oracle AUC (the true
click probabilities on the observed eval labels) is computed on the same eval examples and
each model is reported as its share of the oracle's lift over 0.5:
(AUC - 0.5) / (oracle AUC - 0.5).

Budgets (identical for every variant):

* `main`: the main job's, `--steps` (default pipeline/config.py's train_steps) of
  batch `--batch-size` (256) on the training part, no early stopping, the final weights;
* `converge`: up to `--max-steps` (default 2000); the validation AUC is computed every
  `--eval-every` steps and training stops after `--patience` evaluations without a gain;
  the weights (memories included) of the best validation AUC are scored.

Reported per variant over the seeds: eval AUC (mean +- std over seeds, exact AUC over the
whole eval split), logloss, share of the oracle's lift, steps trained, train time and
examples/s, and for models with a user memory the diagnostics of models/diagnostics.py
(slot cosine, read spread) after training. Tables follow the paper's layout: Table 1
(models), 2 (FP/UMN ablations), 4 (PAIR fusion), 5 (triplet loss), 6 (feedback).
`--markdown FILE` writes them with the exact command; `--json-out` keeps every run.
"""
import argparse
import glob
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import legacy_keras  # noqa: E402,F401  (Keras 2 before TensorFlow loads)

import numpy as np  # noqa: E402

SECONDS_PER_DAY = 86400
# Table 1's row order (the paper's), for the registered models that are in it; models not
# in the paper follow, then DUMN.
PAPER_MODEL_ORDER = ("wide_deep", "pnn", "deepfm", "din", "dien", "dsin", "autoint", "dmt",
                     "dfn")


def model_variants():
    """Every registered kind, in Table 1's order, DUMN last."""
    from models import registry

    kinds = [k for k in registry.kinds() if k != "dumn"]
    ordered = [k for k in PAPER_MODEL_ORDER if k in kinds]
    return ordered + [k for k in kinds if k not in ordered] + ["dumn"]


def umn_variants():
    """{'<KIND>+UMN': kind} for every model that takes the UMN plug-in (Table 3)."""
    from models import registry

    return {k.upper() + "+UMN": k for k in registry.kinds()
            if getattr(registry.model_class(k), "SUPPORTS_UMN", False)}


# The paper's tables (§4) and the variants each shows, in its row order.
TABLES = (
    ("Table 1: models", ("DIN", "DUMN")),
    ("Table 3: UMN as a plug-in", ("autoint", "AUTOINT+UMN", "dfn", "DFN+UMN")),
    ("Table 2: feature purification and user memory", ("-FP", "-UMN", "+UMN1", "DUMN")),
    ("Table 4: fusion of long- and short-term interest (PAIR)",
     ("CONCAT", "CROSS", "FFN", "ATTE", "DUMN")),
    ("Table 5: triplet loss", ("-TL", "RS", "DUMN")),
    ("Table 6: feedback types", ("IF", "AF", "AF_TAGGED", "DUMN")),
)


def latest_artifact(pipeline_root: str, component: str, output: str) -> str:
    """The newest artifact folder of a component's output (highest execution id)."""
    candidates = glob.glob(os.path.join(pipeline_root, component, output, "*"))
    candidates = [c for c in candidates if os.path.basename(c).isdigit()]
    if not candidates:
        raise SystemExit("error: no %s/%s under %s; run the main job first "
                         "(bash scripts/main.sh)" % (component, output, pipeline_root))
    return max(candidates, key=lambda c: int(os.path.basename(c)))


def exact_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted half (the simulator's, which its oracle uses)."""
    from simulator.report import roc_auc

    return roc_auc(scores, labels)


def logloss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    y = labels.astype(np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


class Split:
    """Transformed features of one split as numpy arrays, plus label, timestamp, user."""

    def __init__(self, features, labels, timestamps, raw_users):
        self.features = features
        self.labels = labels
        self.timestamps = timestamps
        self.raw_users = raw_users

    def __len__(self):
        return len(self.labels)

    def take(self, index: np.ndarray) -> "Split":
        return Split({k: v[index] for k, v in self.features.items()}, self.labels[index],
                     self.timestamps[index], self.raw_users[index])


def load_split(examples_dir: str, split: str, tft_output, model_inputs, batch: int = 2048):
    """Raw ExampleGen examples of `split` through the Transform graph -> Split."""
    import tensorflow as tf

    from models import features as F
    from models.raw_features import TIMESTAMP

    files = sorted(glob.glob(os.path.join(examples_dir, "Split-%s" % split, "*")))
    if not files:
        raise SystemExit("error: no Split-%s files under %s" % (split, examples_dir))
    raw_spec = tft_output.raw_feature_spec()
    layer = tft_output.transform_features_layer()
    columns = {name: [] for name in model_inputs}
    labels, timestamps, users = [], [], []
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch)
    for serialized in dataset:
        raw = tf.io.parse_example(serialized, raw_spec)
        transformed = layer(raw)
        for name in model_inputs:
            value = transformed[name].numpy()
            columns[name].append(value.astype(np.int32) if value.dtype == np.int64 else value)
        labels.append(transformed[F.LABEL].numpy())
        timestamps.append(tf.sparse.to_dense(raw[TIMESTAMP]).numpy()[:, 0])
        users.append(tf.sparse.to_dense(raw[F.USER_ID]).numpy()[:, 0])
    features = {name: np.concatenate(parts) for name, parts in columns.items()}
    labels, timestamps, users = (np.concatenate(labels).astype(np.int64),
                                 np.concatenate(timestamps), np.concatenate(users))
    # A canonical order (time, user, target, label), not the files': Beam writes the
    # examples in a different order on every pipeline run, and the seeded shuffle of
    # `batches` permutes positions, so without this the same seed trained on other batches
    # after a rerun (one seed moved by 0.02 AUC). Ties are examples with the same key.
    order = np.lexsort((labels, features[F.ITEM_ID], users, timestamps))
    return Split({name: value[order] for name, value in features.items()}, labels[order],
                 timestamps[order], users[order])


def attach_truth(split: Split, truth_csv: str):
    """Simulator truth p(click) per example (joined on user id and timestamp); None if absent."""
    if not truth_csv or not os.path.exists(truth_csv):
        return None
    import csv

    wanted = {(u.decode() if isinstance(u, bytes) else str(u), int(t))
              for u, t in zip(split.raw_users, split.timestamps)}
    truth = {}
    with open(truth_csv, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["user_id"], int(row["timestamp"]))
            if key in wanted:
                truth[key] = float(row["click_probability"])
    keys = [(u.decode() if isinstance(u, bytes) else str(u), int(t))
            for u, t in zip(split.raw_users, split.timestamps)]
    if not all(k in truth for k in keys):
        missing = sum(k not in truth for k in keys)
        print("warning: %d of %d eval examples have no ground truth; no oracle" % (
            missing, len(keys)), flush=True)
        return None
    return np.array([truth[k] for k in keys])


def batches(split: Split, batch_size: int, seed: int, shuffle: bool, repeat: bool):
    """A tf.data.Dataset of (features, label) batches drawn from the in-memory split (the
    Trainer's own in-memory batching, models/example_order.py)."""
    from models import example_order

    return example_order.batches(split.features, split.labels, batch_size, seed, shuffle,
                                 repeat)


def predict(model, split: Split, batch_size: int = 1024) -> np.ndarray:
    """Click probabilities of the whole split, in order."""
    scores = [model.predict_on_batch(features)
              for features, _ in batches(split, batch_size, 0, shuffle=False, repeat=False)]
    return np.concatenate(scores).reshape(-1)


def train_variant(variant: str, seed: int, budget: str, data, args) -> dict:
    """Trains one variant under one budget; returns its figures."""
    import tensorflow as tf

    from models.config import ModelConfig
    from models.diagnostics import memory_diagnostics
    from models.model_factory import build_compiled_model

    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(seed)
    overrides = dict(data["config_values"], seed=seed)
    overrides.update(args.override)
    base, settings = data["variants"][variant]
    overrides.update(settings)
    config = ModelConfig.for_ablation(base, **overrides)
    model = build_compiled_model(config)
    iterator = iter(batches(data["train"], args.batch_size, seed, shuffle=True, repeat=True))
    # Variables from one batch of the same stream (a separate generator, same first batch).
    first_features, _ = next(iter(batches(data["train"], args.batch_size, seed, True, True)))
    model.build_for_training(first_features)

    steps_done, best_auc, best_weights, best_step, stale = 0, -1.0, None, 0, 0
    curve = []
    max_steps = args.steps if budget == "main" else args.max_steps
    chunk = args.steps if budget == "main" else args.eval_every
    started = time.perf_counter()
    train_seconds = 0.0
    while steps_done < max_steps:
        n = min(chunk, max_steps - steps_done)
        t0 = time.perf_counter()
        model.fit(iterator, steps_per_epoch=n, epochs=1, verbose=0)
        train_seconds += time.perf_counter() - t0
        steps_done += n
        if budget == "converge":
            val_auc = exact_auc(data["validation"].labels, predict(model, data["validation"]))
            curve.append((steps_done, round(val_auc, 5)))
            if args.verbose:
                print("    %s seed %d step %d validation AUC %.4f" % (
                    variant, seed, steps_done, val_auc), flush=True)
            if val_auc > best_auc + args.min_delta:
                best_auc, best_weights, best_step, stale = val_auc, model.get_weights(), \
                    steps_done, 0
            else:
                stale += 1
                if stale >= args.patience:
                    break
    if budget == "converge" and best_weights is not None:
        model.set_weights(best_weights)
    else:
        best_step = steps_done
    eval_scores = predict(model, data["eval"])
    result = {
        "variant": variant, "seed": seed, "budget": budget,
        "eval_auc": exact_auc(data["eval"].labels, eval_scores),
        "eval_logloss": logloss(data["eval"].labels, eval_scores),
        "validation_auc": (best_auc if budget == "converge"
                           else exact_auc(data["validation"].labels,
                                          predict(model, data["validation"]))),
        "steps": steps_done, "best_step": best_step, "train_seconds": train_seconds,
        "examples_per_second": steps_done * args.batch_size / max(train_seconds, 1e-9),
        "wall_seconds": time.perf_counter() - started, "curve": curve,
        "config": config.to_dict(),
    }
    if data.get("oracle") is not None:
        result["oracle_share"] = (result["eval_auc"] - 0.5) / (data["oracle"] - 0.5)
    sample = data["eval"].take(np.arange(min(len(data["eval"]), 2048)))
    diag_features = {k: tf.constant(v.astype(np.int64) if v.dtype == np.int32 else v)
                     for k, v in sample.features.items()}
    result["memory"] = memory_diagnostics(model, diag_features)
    return result


def summarise(runs):
    """{(variant, budget): aggregate} over seeds."""
    groups = {}
    for run in runs:
        groups.setdefault((run["variant"], run["budget"]), []).append(run)
    summary = {}
    for key, group in groups.items():
        auc = np.array([r["eval_auc"] for r in group])
        summary[key] = {
            "n": len(group), "auc_mean": float(auc.mean()),
            "auc_std": float(auc.std(ddof=1)) if len(group) > 1 else 0.0,
            "logloss": float(np.mean([r["eval_logloss"] for r in group])),
            "oracle_share": (float(np.mean([r["oracle_share"] for r in group]))
                             if "oracle_share" in group[0] else None),
            "steps": float(np.mean([r["best_step"] for r in group])),
            "train_seconds": float(np.mean([r["train_seconds"] for r in group])),
            "examples_per_second": float(np.mean([r["examples_per_second"] for r in group])),
            "slot_cosine_max": max([max([m["slot_cosine"] for m in r["memory"].values()],
                                        default=float("nan")) for r in group]),
            "read_std_min": min([min([v for m in r["memory"].values() for k, v in m.items()
                                      if k.endswith("read_std_relative")], default=float("nan"))
                                 for r in group]),
        }
    return summary


def format_tables(summary, budgets, oracle, title=None) -> str:
    """The paper's tables of the variants in `summary`; `title`: one table of every variant
    under that title instead (e.g. Table 7, the dislike task)."""
    lines = []
    tables = TABLES if title is None else (
        (title, tuple(dict.fromkeys(v for v, _ in summary))),)
    for budget in budgets:
        label = {"main": "main job's budget", "converge": "to convergence"}[budget]
        for title, variants in tables:
            rows = [v for v in variants if (v, budget) in summary]
            if tables is TABLES and title.startswith("Table 1"):
                # the models, then every variant not in a table
                rows = [v for v in model_variants() if (v, budget) in summary] + rows
                rows += [v for (v, b) in summary if b == budget and v not in rows
                         and not any(v in vs for _, vs in TABLES)]
            if not rows:
                continue
            lines.append("**%s, %s**" % (title, label))
            lines.append("")
            lines.append("| model | eval AUC (mean ± std) | seeds | logloss | share of oracle lift "
                         "| steps | train s | examples/s | max slot cosine | min read std (rel.) |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for v in rows:
                s = summary[(v, budget)]
                share = "%.1f%%" % (100 * s["oracle_share"]) if s["oracle_share"] is not None \
                    else "n/a"
                cos = "n/a" if np.isnan(s["slot_cosine_max"]) else "%.3f" % s["slot_cosine_max"]
                spread = "n/a" if np.isnan(s["read_std_min"]) else "%.3f" % s["read_std_min"]
                lines.append("| %s | %.4f ± %.4f | %d | %.4f | %s | %.0f | %.0f | %.0f | %s | %s |" % (
                    v, s["auc_mean"], s["auc_std"], s["n"], s["logloss"], share, s["steps"],
                    s["train_seconds"], s["examples_per_second"], cos, spread))
            lines.append("")
    if oracle is not None:
        lines.append("Oracle AUC on the same eval examples: %.4f." % oracle)
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-root", default=os.path.join(ROOT, "output"),
                   help="the main job's output folder (its pipeline/ holds the artifacts)")
    p.add_argument("--examples", help="a FeedbackExampleGen examples artifact folder")
    p.add_argument("--transform-graph", help="a Transform transform_graph artifact folder")
    p.add_argument("--truth", help="simulator ground_truth.csv (default: found next to the "
                                   "built-in dataset)")
    p.add_argument("--variants", default="models",
                   help="comma-separated: 'models' (every registered model), model kinds "
                        "(models/registry.py), keys of models.config.ABLATIONS (DUMN, DIN, -FP, "
                        "...) or --define'd names (default: models)")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--budgets", default="main,converge")
    from pipeline.config import PipelineConfig

    p.add_argument("--steps", type=int, default=PipelineConfig().train_steps,
                   help="the main budget's steps (default: the main job's train_steps)")
    p.add_argument("--max-steps", type=int, default=2000, help="step cap when converging")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--min-delta", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--validation-days", type=float, default=1.0,
                   help="last days of the train split held out for validation")
    p.add_argument("--define", action="append", default=[], metavar="NAME=BASE+JSON",
                   help="an extra variant: a key of ABLATIONS with settings on top, e.g. "
                        "'DUMN-mlp=DUMN+{\"target_attention\": \"mlp\"}' (repeatable)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=JSON",
                   help="a ModelConfig setting applied to every variant (repeatable)")
    p.add_argument("--json-out")
    p.add_argument("--title", help="one table of every variant under this title instead of "
                                   "the paper's tables (e.g. 'Table 7: dislike prediction')")
    p.add_argument("--no-oracle", action="store_true",
                   help="no oracle AUC (the simulator's truth is of clicks: other tasks)")
    p.add_argument("--tables-from", nargs="+", metavar="JSON",
                   help="print (and --markdown) the tables of earlier --json-out files, "
                        "merged, without training")
    p.add_argument("--markdown", help="write the tables and the command to this file")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    overrides = {}
    for item in args.override:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    args.override = overrides
    return args


def load_data(args) -> dict:
    import tensorflow_transform as tft

    from models import features as F
    from models.preprocessing import vocabulary_sizes

    pipeline_root = os.path.join(args.output_root, "pipeline")
    examples = args.examples or latest_artifact(pipeline_root, "FeedbackExampleGen", "examples")
    graph = args.transform_graph or latest_artifact(pipeline_root, "Transform",
                                                    "transform_graph")
    tft_output = tft.TFTransformOutput(graph)
    sizes = vocabulary_sizes(tft_output, {})
    user_fields = sizes["user_fields"]
    model_inputs = F.input_names(user_fields, samples=True)
    started = time.perf_counter()
    train = load_split(examples, "train", tft_output, model_inputs)
    evaluation = load_split(examples, "eval", tft_output, model_inputs)
    cut = train.timestamps.max() - args.validation_days * SECONDS_PER_DAY
    validation_mask = train.timestamps > cut
    truth = args.truth or os.path.join(args.output_root, "data", "simulated", "ground_truth.csv")
    truth_p = None if args.no_oracle else attach_truth(evaluation, truth)
    data = {
        "train": train.take(np.flatnonzero(~validation_mask)),
        "validation": train.take(np.flatnonzero(validation_mask)),
        "eval": evaluation,
        "config_values": sizes,
        "oracle": exact_auc(evaluation.labels, truth_p) if truth_p is not None else None,
        "examples": examples, "transform_graph": graph,
    }
    print("data: %d train, %d validation (train split after %d), %d eval examples; oracle AUC "
          "%s; loaded in %.0f s from %s" % (
              len(data["train"]), len(data["validation"]), cut, len(evaluation),
              "%.4f" % data["oracle"] if data["oracle"] is not None else "n/a",
              time.perf_counter() - started, examples), flush=True)
    return data


def write_markdown(args, argv, tables) -> None:
    command = "benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    with open(args.markdown, "a") as f:
        f.write("\n```\n.venv/bin/python %s\n```\n\n%s\n" % (command, tables))


def main(argv=None) -> int:
    args = parse_args(argv)
    from models.config import ABLATIONS

    if args.tables_from:
        runs, oracle = [], None
        for path in args.tables_from:
            with open(path) as f:
                saved = json.load(f)
            runs += saved["runs"]
            oracle = saved.get("oracle") if oracle is None else oracle
        budgets = list(dict.fromkeys(r["budget"] for r in runs))
        tables = format_tables(summarise(runs), budgets, oracle, args.title)
        print(tables)
        if args.markdown:
            write_markdown(args, argv, tables)
        return 0
    known = {name: (name, {}) for name in ABLATIONS}
    for kind in model_variants():
        known.setdefault(kind, ("DUMN", {"model": kind}))
    for name, kind in umn_variants().items():
        known.setdefault(name, ("DUMN", {"model": kind, "umn_plugin": True}))
    for item in args.define:
        name, _, rest = item.partition("=")
        base, _, settings = rest.partition("+")
        if base not in ABLATIONS:
            print("error: --define %r: %r is not a key of ABLATIONS" % (item, base),
                  file=sys.stderr)
            return 2
        known[name] = (base, json.loads(settings) if settings else {})
    variants = []
    for v in args.variants.split(","):
        for name in (model_variants() if v == "models" else [v] if v else []):
            if name not in variants:
                variants.append(name)
    unknown = [v for v in variants if v not in known]
    if unknown:
        print("error: unknown variants %s; known: %s" % (unknown, ", ".join(known)),
              file=sys.stderr)
        return 2
    budgets = [b for b in args.budgets.split(",") if b]
    if any(b not in ("main", "converge") for b in budgets):
        print("error: --budgets takes main and/or converge", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    data = load_data(args)
    data["variants"] = known
    runs = []
    total = len(variants) * len(seeds) * len(budgets)
    for budget in budgets:
        for variant in variants:
            for seed in seeds:
                r = train_variant(variant, seed, budget, data, args)
                runs.append(r)
                memory = "; ".join("%s slot cos %.3f read std %.3f" % (
                    name, m["slot_cosine"],
                    min(v for k, v in m.items() if k.endswith("read_std_relative")))
                    for name, m in r["memory"].items())
                print("[%d/%d] %-6s %-8s seed %d: eval AUC %.4f  logloss %.4f  val AUC %.4f  "
                      "steps %d (best %d)  %.0f s  %.0f ex/s  %s" % (
                          len(runs), total, variant, budget, seed, r["eval_auc"],
                          r["eval_logloss"], r["validation_auc"], r["steps"], r["best_step"],
                          r["train_seconds"], r["examples_per_second"], memory), flush=True)
                if args.json_out:
                    with open(args.json_out, "w") as f:
                        json.dump({"runs": runs, "oracle": data["oracle"]}, f, indent=1)
    summary = summarise(runs)
    tables = format_tables(summary, budgets, data["oracle"], args.title)
    print("\n" + tables)
    if args.markdown:
        write_markdown(args, argv, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
