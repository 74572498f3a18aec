"""Diagnostics of DUMN's user memories (§3.4): do the slots stay distinct, do reads differ?

A memory whose slots collapse to one vector (every user reads the same "long-term
interest") satisfies eq. 8-12 and still switches UMN off; these figures show it. They are
computed from `model(features, return_aux=True)` on a batch of examples and reported by the
quality benchmark (benchmarks/quality.py) and logged to TensorBoard during training
(`memory_diagnostics_callback`).

Per memory (name as in `DumnModel.memories`):

* `slot_cosine`: mean pairwise cosine similarity between the m slots (off-diagonal mean);
  1.0 = every slot the same vector. Slots of (near) zero norm count as cosine 0.
* per channel x reading / writing it:
  - `read_entropy`, `write_entropy`: mean entropy of the addressing weights w (nats);
    log(m) is uniform addressing (5.55 for m = 256);
  - `read_max_weight`, `write_max_weight`: mean of the largest weight per example;
  - `read_std`: the spread of read vectors r across users, the mean over the Z dimensions of
    the standard deviation over examples, and that divided by the root mean square of r per
    dimension (`read_std_relative`: 0 = every user reads the same vector, 1 = reads spread
    around zero), and the mean pairwise cosine between the reads of different
    examples (`read_cosine`; 1.0 = every user reads the same thing).

For the run report, 2-D views in the style of the paper's Fig. 3-5: `projections` (each
channel's short-term interest raw and purified; several users' long-term reads) and, from the
callback, `trajectory` (a few impressions' long-term reads through training, and how spread
the long- and short-term interests are across the batch at each step).
"""
import math
import os
from typing import Dict

import numpy as np


def _mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """Mean cosine over the pairs i != j of the rows of `vectors` [n, d] (n >= 2)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.where(norms > 1e-12, vectors / np.maximum(norms, 1e-12), 0.0)
    n = len(unit)
    if n < 2:
        return float("nan")
    total = unit.sum(axis=0)
    # sum_{i,j} cos = |sum_i u_i|^2; remove the diagonal (|u_i|^2 = 1 for non-zero rows).
    diagonal = float(np.sum(unit * unit))
    return float((total @ total - diagonal) / (n * (n - 1)))


def _entropy(weights: np.ndarray) -> np.ndarray:
    w = np.clip(weights, 1e-30, 1.0)
    return -np.sum(weights * np.log(w), axis=-1)


def slot_cosine(memory: np.ndarray) -> float:
    """Mean pairwise cosine between the slots (rows) of one memory [m, Z]."""
    return _mean_pairwise_cosine(np.asarray(memory, dtype=np.float64))


def relative_spread(vectors: np.ndarray) -> float:
    """The mean over dimensions of the std across rows, divided by the mean root mean square
    per dimension: 0 = every row the same vector, 1 = rows spread around zero."""
    vectors = np.asarray(vectors, dtype=np.float64)
    return float(np.mean(vectors.std(axis=0))) / max(
        float(np.mean(np.sqrt(np.mean(vectors * vectors, axis=0)))), 1e-12)


def memory_diagnostics(model, features, out=None) -> Dict[str, Dict[str, float]]:
    """{memory name: {figure: value}} for a DUMN model on a batch of `features` (`out`: the
    model's `return_aux` output on them, when already computed).

    Empty for a model without memories (DIN, DUMN-UMN).
    """
    memories = model.memory_variables()
    if not memories:
        return {}
    if out is None:
        out = model(features, training=False, return_aux=True)
    report = {}
    for name, variable in memories.items():
        memory = variable.numpy()
        figures = {"slot_cosine": slot_cosine(memory), "slots": float(memory.shape[0]),
                   "uniform_entropy": math.log(memory.shape[0])}
        memory_out = out["memory"][name]
        for channel in memory_out["read"]:
            prefix = "" if name == channel else channel + "_"
            read = memory_out["read"][channel].numpy().astype(np.float64)
            w_read = memory_out["read_weights"][channel].numpy()
            w_write = memory_out["write_weights"][channel].numpy()
            figures[prefix + "read_entropy"] = float(np.mean(_entropy(w_read)))
            figures[prefix + "write_entropy"] = float(np.mean(_entropy(w_write)))
            figures[prefix + "read_max_weight"] = float(np.mean(w_read.max(axis=-1)))
            figures[prefix + "write_max_weight"] = float(np.mean(w_write.max(axis=-1)))
            figures[prefix + "read_std"] = float(np.mean(read.std(axis=0)))
            figures[prefix + "read_std_relative"] = relative_spread(read)
            figures[prefix + "read_cosine"] = _mean_pairwise_cosine(read[:512])
        report[name] = figures
    return report


# Most points per group in `projections` (the report draws each as an SVG circle).
MAX_POINTS_PER_GROUP = 300


def _pca_2d(blocks):
    """The rows of every array in `blocks` projected on the first two principal components
    of all of them together (one shared plane, so distances compare across blocks)."""
    stacked = np.concatenate(blocks, axis=0).astype(np.float64)
    centre = stacked.mean(axis=0)
    _, _, vt = np.linalg.svd(stacked - centre, full_matrices=False)
    basis = vt[:2].T if vt.shape[0] >= 2 else np.pad(vt.T, ((0, 0), (0, 2 - vt.shape[0])))
    return [(block.astype(np.float64) - centre) @ basis for block in blocks]


# What the Trainer writes into its ModelRun folder for the run report (pipeline/report):
# the Fig. 3/4 views (`projections`), the Fig. 5 view (the callback's `trajectory`) and the
# TensorBoard folder of the loss before training (cold or warm start).
PROJECTIONS_FILE = "projections.json"
TRAJECTORY_FILE = "trajectory.json"
START_LOG = "start"
TRAJECTORY_EXAMPLES = 6


def _channel(values: Dict, channel: str = "click"):
    return values.get(channel, next(iter(values.values()), None)) if values else None


def interest_snapshot(out, examples: int = TRAJECTORY_EXAMPLES):
    """From a `return_aux` output: the click memory's reads of the first `examples`
    examples, and the relative spread across the batch of the long-term reads and of the
    purified short-term interests (`relative_spread`). None without a memory."""
    read, short = _channel(out.get("long_term")), _channel(out.get("short_term"))
    if read is None or short is None:
        return None
    read, short = read.numpy(), short.numpy()
    return {"reads": read[:examples], "read_spread": relative_spread(read),
            "short_spread": relative_spread(short)}


def trajectory(snapshots) -> Dict[str, object]:
    """[(step, interest_snapshot)] -> the report's Fig. 5 view: each example's long-term
    read at every step on one PCA plane, and both spreads by step."""
    steps = [step for step, _ in snapshots]
    blocks = [snapshot["reads"] for _, snapshot in snapshots]
    planes = _pca_2d(blocks)
    points = {"impression %d" % (i + 1): [planes[s][i].round(4).tolist()
                                          for s in range(len(steps))]
              for i in range(blocks[0].shape[0])}
    return {"steps": steps, "points": points,
            "read_spread": [[s, snap["read_spread"]] for s, snap in snapshots],
            "short_spread": [[s, snap["short_spread"]] for s, snap in snapshots]}


def memory_diagnostics_callback(log_dir: str, features, every_steps: int = 100):
    """A Keras callback that writes `memory_diagnostics` on `features` to TensorBoard.

    Scalars `memory/<memory>/<figure>` under `log_dir`/memory, every `every_steps` training
    steps and at the end of training; nothing for a model without memories. At the end it
    also writes `trajectory` of the same snapshots to `log_dir`/TRAJECTORY_FILE.
    """
    import json

    import tensorflow as tf

    class MemoryDiagnosticsCallback(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._writer = None
            self._step = 0
            self._snapshots = []

        def _write(self, step):
            if not self.model.memory_variables():
                return
            out = self.model(features, training=False, return_aux=True)
            report = memory_diagnostics(self.model, features, out=out)
            snapshot = interest_snapshot(out)
            if snapshot is not None and (not self._snapshots or self._snapshots[-1][0] != step):
                self._snapshots.append((step, snapshot))
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(os.path.join(log_dir, "memory"))
            with self._writer.as_default():
                for name, figures in report.items():
                    for figure, value in figures.items():
                        tf.summary.scalar("memory/%s/%s" % (name, figure), value, step=step)
            self._writer.flush()

        def on_train_batch_end(self, batch, logs=None):
            self._step += 1
            if self._step % every_steps == 0:
                self._write(self._step)

        def on_train_end(self, logs=None):
            self._write(self._step)
            if self._snapshots:
                with tf.io.gfile.GFile(os.path.join(log_dir, TRAJECTORY_FILE), "w") as f:
                    json.dump(trajectory(self._snapshots), f)

    return MemoryDiagnosticsCallback()


def projections(model, features, user_ids, users: int = 6,
                min_impressions: int = 3) -> Dict[str, Dict[str, list]]:
    """2-D views in the style of the paper's Fig. 3 and 4, for the report.

    * `feedback` (Fig. 3): the short-term representations of each feedback channel before
      (f_x, 'click raw') and after purification (f^o_x, 'click purified'), of the examples
      whose channel holds at least one event, on one PCA plane;
    * `long_term` (Fig. 4): the long-term interest r read from the click memory for the
      `users` users with the most impressions (at least `min_impressions`) in `features`,
      on one PCA plane; empty for a model without memories.

    `user_ids` [B] labels the examples (the transformed user index). PCA, not the paper's
    unstated reduction: linear, deterministic, and distances along it are real distances.
    """
    out = model(features, training=False, return_aux=True)
    names, blocks = [], []
    for channel, raw in sorted(out.get("short_term_raw", {}).items()):
        raw = raw.numpy()
        purified = out["short_term"][channel].numpy()
        real = np.linalg.norm(raw, axis=1) > 1e-6          # an empty history pools to 0
        if not real.any():
            continue
        names += ["%s raw" % channel, "%s purified" % channel]
        blocks += [raw[real][:MAX_POINTS_PER_GROUP], purified[real][:MAX_POINTS_PER_GROUP]]
    result = {"feedback": {}, "long_term": {}}
    if blocks:
        for name, points in zip(names, _pca_2d(blocks)):
            result["feedback"][name] = points.round(4).tolist()
    read = _channel(out.get("long_term"))
    if read is not None:
        read = read.numpy()
        ids = np.asarray(user_ids).reshape(-1)
        chosen, counts = np.unique(ids, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        chosen = [chosen[i] for i in order[:users] if counts[i] >= min_impressions]
        if chosen:
            groups = [read[ids == user][:MAX_POINTS_PER_GROUP] for user in chosen]
            for user, points in zip(chosen, _pca_2d(groups)):
                result["long_term"]["user %s" % user] = points.round(4).tolist()
    return result
