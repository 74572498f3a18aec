"""Warm start: a new model initialised from a pushed one (continuous training, `--warm-start`).

The base model is the SavedModel a previous run exported (models/trainer.py), found by TFX's
`base_model` input (the latest blessed model, through the pipeline's Resolver). Its
`model_variables` (every variable the forward pass reads, the user memories included) are
copied into the new model by name. Embedding tables need more than a copy: each run's
Transform builds its own vocabularies, ordered by frequency, so a new day of data moves ids
to other rows and adds new ones. Their rows are matched by id through the two vocabulary
files (the base model's assets and the new Transform output): row 0 (no id) and the OOV
buckets carry over as they are, a known id takes its old row, a new id keeps its fresh
initialisation. A variable the base model lacks or holds in another shape (another
architecture or setting) keeps its initialisation and is reported.
"""
import dataclasses
import logging
import os
from typing import Dict, List

import numpy as np
import tensorflow as tf

from models import export as model_export
from models import preprocessing


@dataclasses.dataclass
class WarmStart:
    base_model: str
    copied: List[str] = dataclasses.field(default_factory=list)
    # table variable -> (ids found in the base model, ids in the new vocabulary)
    remapped: Dict[str, tuple] = dataclasses.field(default_factory=dict)
    skipped: Dict[str, str] = dataclasses.field(default_factory=dict)   # variable -> why

    def describe(self) -> str:
        matched = sum(found for found, _ in self.remapped.values())
        total = sum(n for _, n in self.remapped.values())
        text = ("warm start from %s: %d variables copied, %d embedding tables remapped by id "
                "(%d of %d ids known to the base model)" % (
                    self.base_model, len(self.copied), len(self.remapped), matched, total))
        if self.skipped:
            text += "; %d left at their initial values: %s" % (len(self.skipped), "; ".join(
                "%s (%s)" % item for item in sorted(self.skipped.items())))
        return text


def embedding_vocabularies(model) -> Dict[str, str]:
    """{embedding table variable name: the Transform vocabulary its rows index}."""
    embedding = model.embedding
    tables = {preprocessing.ITEM_PART_VOCABULARIES[part]: getattr(embedding, part + "_table")
              for part in ("item", "cate", "brand")}
    tables[preprocessing.USER_VOCABULARY] = embedding.user_table
    tables[preprocessing.PID_VOCABULARY] = embedding.pid_table
    tables.update(embedding.field_tables)        # profile fields: vocabulary = feature name
    out = {layer.embeddings.name: vocabulary for vocabulary, layer in tables.items()}
    # The model's own id-indexed tables (e.g. the wide part's weights), same vocabularies.
    names = {part: preprocessing.ITEM_PART_VOCABULARIES[part] for part in ("item", "cate",
                                                                           "brand")}
    names.update(user=preprocessing.USER_VOCABULARY, pid=preprocessing.PID_VOCABULARY)
    for key, layer in model.id_tables().items():
        out[layer.embeddings.name] = names.get(key, key)  # a profile field: its name
    return out


def _read_vocabulary(path: str) -> List[bytes]:
    with tf.io.gfile.GFile(path, "rb") as f:
        return [line.rstrip(b"\n") for line in f]


def remap_rows(old: np.ndarray, old_ids: List[bytes], new: np.ndarray,
               new_ids: List[bytes], num_oov_buckets: int) -> tuple:
    """`new` (its fresh rows) with the rows of `old` moved to where the same id sits now.

    Rows: 0 = no id, 1..V = the vocabulary in file order, then the OOV buckets (preprocessing
    `_lookup`). Returns (rows, ids found in the old vocabulary).
    """
    rows = new.copy()
    rows[0] = old[0]
    old_index = {token: i for i, token in enumerate(old_ids)}
    found = 0
    for j, token in enumerate(new_ids):
        i = old_index.get(token)
        if i is not None:
            rows[1 + j] = old[1 + i]
            found += 1
    if num_oov_buckets:
        rows[len(rows) - num_oov_buckets:] = old[len(old) - num_oov_buckets:]
    return rows, found


def warm_start(model, base_model_dir: str, tft_output, num_oov_buckets: int) -> WarmStart:
    """Copies the base model's variables into the built `model` (see the module docstring)."""
    loaded = tf.saved_model.load(base_model_dir)
    base = {v.name: v for v in getattr(loaded, "model_variables", [])}
    report = WarmStart(base_model=base_model_dir)
    if not base:
        raise ValueError("%s holds no model_variables: not a model this project exported"
                         % base_model_dir)
    tables = embedding_vocabularies(model)
    excluded = model.warm_start_excluded()
    assets = os.path.join(base_model_dir, "assets")
    for variable in model_export.model_variables(model):
        name = variable.name
        if name in excluded:
            report.skipped[name] = excluded[name]
            continue
        if name not in base:
            report.skipped[name] = "not in the base model"
            continue
        old = base[name].numpy()
        if name in tables:
            vocabulary = tables[name]
            old_path = os.path.join(assets, vocabulary)
            if not tf.io.gfile.exists(old_path) or old.shape[1:] != tuple(variable.shape[1:]):
                report.skipped[name] = ("no vocabulary %s in the base model" % vocabulary
                                        if not tf.io.gfile.exists(old_path)
                                        else "shape %s, now %s" % (old.shape, variable.shape))
                continue
            old_ids = _read_vocabulary(old_path)
            new_ids = _read_vocabulary(tft_output.vocabulary_file_by_name(vocabulary))
            if len(old) != 1 + len(old_ids) + num_oov_buckets:
                report.skipped[name] = "its rows do not match its vocabulary"
                continue
            rows, found = remap_rows(old, old_ids, variable.numpy(), new_ids, num_oov_buckets)
            variable.assign(rows)
            report.remapped[name] = (found, len(new_ids))
        elif old.shape == tuple(variable.shape):
            variable.assign(old)
            report.copied.append(name)
        else:
            report.skipped[name] = "shape %s, now %s" % (old.shape, tuple(variable.shape))
    if not report.copied and not report.remapped:
        logging.warning("run_fn: the base model %s shares no variable with this model (another "
                        "model kind or architecture): a cold start", base_model_dir)
    logging.info("run_fn: %s", report.describe())
    return report
