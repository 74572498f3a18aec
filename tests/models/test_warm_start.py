"""Warm start from an exported model: variables copied, embedding rows matched by id."""
import os

import numpy as np
import pytest
import tensorflow as tf

from models import features as F
from models import preprocessing
from models.export import export_saved_model
from models.model_factory import build_compiled_model
from models.testing_utils import as_tensors, random_features, tiny_config
from models.warm_start import embedding_vocabularies, remap_rows, warm_start

OOV = 2


def test_remap_rows_moves_known_ids_and_keeps_the_rest():
    old = np.arange(7 * 2, dtype=np.float32).reshape(7, 2)        # rows: 0, a, b, c, oov x2
    new = -np.ones((8, 2), dtype=np.float32)                      # rows: 0, c, d, a, b, oov x2
    rows, found = remap_rows(old, [b"a", b"b", b"c"], new, [b"c", b"d", b"a", b"b"], OOV)
    assert found == 3
    np.testing.assert_array_equal(rows[0], old[0])                # the no-id row
    np.testing.assert_array_equal(rows[1], old[3])                # c
    np.testing.assert_array_equal(rows[2], new[2])                # d: new, its fresh row
    np.testing.assert_array_equal(rows[3], old[1])                # a
    np.testing.assert_array_equal(rows[4], old[2])                # b
    np.testing.assert_array_equal(rows[6:], old[5:])              # the OOV buckets


class _TransformOutput:
    """The one method warm_start reads of a TFTransformOutput."""

    def __init__(self, folder):
        self.folder = folder

    def vocabulary_file_by_name(self, name):
        return os.path.join(self.folder, name)


def _write_vocabularies(folder, sizes, shift):
    """One vocabulary file per table: ids 'v<k>' in an order shifted by `shift` (a new day's
    frequencies), so the same id sits on another row."""
    os.makedirs(folder, exist_ok=True)
    files = {}
    for name, entries in sizes.items():
        ids = ["v%d" % ((k + shift) % entries) for k in range(entries)]
        with open(os.path.join(folder, name), "w") as f:
            f.write("".join(i + "\n" for i in ids))
        files[name] = ids
    return files


def _trained(config, seed):
    model = build_compiled_model(config)
    x = random_features(config, 16, seed=seed)
    y = x.pop(F.LABEL)
    model.build_for_training(as_tensors(x))
    model.train_step((as_tensors(x), tf.constant(y)))        # the memories move once
    return model, x


def test_warm_start_copies_weights_and_memories_and_matches_embedding_rows(tmp_path):
    config = tiny_config(seed=1)
    base, x = _trained(config, seed=1)
    path = export_saved_model(base, str(tmp_path / "base"))
    tables = embedding_vocabularies(base)
    assert set(tables.values()) == {preprocessing.ITEM_PART_VOCABULARIES["item"],
                                    preprocessing.ITEM_PART_VOCABULARIES["cate"],
                                    preprocessing.ITEM_PART_VOCABULARIES["brand"],
                                    preprocessing.USER_VOCABULARY, preprocessing.PID_VOCABULARY,
                                    "age_level", "gender"}
    sizes = {vocab: var.shape[0] - 1 - OOV for var in base.variables
             for name, vocab in tables.items() if var.name == name}
    old_ids = _write_vocabularies(os.path.join(path, "assets"), sizes, shift=0)
    new_ids = _write_vocabularies(str(tmp_path / "new"), sizes, shift=3)

    fresh = build_compiled_model(tiny_config(seed=2))
    fresh.build_for_training(as_tensors(x))
    before = {v.name: v.numpy() for v in fresh.variables}
    report = warm_start(fresh, path, _TransformOutput(str(tmp_path / "new")), OOV)
    assert report.skipped == {}
    assert set(report.remapped) == set(tables)
    base_values = {v.name: v.numpy() for v in base.variables}
    for variable in fresh.variables:
        name = variable.name
        if name in tables:
            old, ids_then, ids_now = base_values[name], old_ids[tables[name]], new_ids[tables[name]]
            got = variable.numpy()
            for j, token in enumerate(ids_now):                # same id, same vector
                np.testing.assert_array_equal(got[1 + j], old[1 + ids_then.index(token)])
            np.testing.assert_array_equal(got[-OOV:], old[-OOV:])
        elif name in report.copied:
            np.testing.assert_array_equal(variable.numpy(), base_values[name])
    for name, memory in fresh.memory_variables().items():      # memories included
        np.testing.assert_array_equal(memory.numpy(), base.memory_variables()[name].numpy())
        assert memory.name in report.copied
        assert not np.array_equal(memory.numpy(), before[memory.name])


def test_warm_start_reports_what_it_cannot_use(tmp_path):
    base, x = _trained(tiny_config(seed=1), seed=1)
    path = export_saved_model(base, str(tmp_path / "base"))
    wider = build_compiled_model(tiny_config(seed=2, ffn_units=24))
    wider.build_for_training(as_tensors(x))
    report = warm_start(wider, path, _TransformOutput(str(tmp_path / "none")), OOV)
    # No vocabulary files in the base model: tables keep their rows; the FFN changed shape.
    assert set(report.skipped) >= set(embedding_vocabularies(wider))
    assert any("shape" in why for why in report.skipped.values())
    assert report.copied, "the unchanged layers are still copied"
    with pytest.raises(ValueError, match="no model_variables"):
        tf.saved_model.save(tf.Module(), str(tmp_path / "empty"))
        warm_start(wider, str(tmp_path / "empty"), None, OOV)


def test_a_models_own_id_tables_move_with_their_ids_and_crosses_start_afresh(tmp_path):
    config = tiny_config(model="wide_deep", seed=1)
    base, x = _trained(config, seed=1)
    path = export_saved_model(base, str(tmp_path / "base"))
    tables = embedding_vocabularies(base)
    linear_item = base.linear.tables["item"].embeddings.name
    assert tables[linear_item] == preprocessing.ITEM_PART_VOCABULARIES["item"]
    sizes = {vocab: var.shape[0] - 1 - OOV for var in base.variables
             for name, vocab in tables.items() if var.name == name}
    old_ids = _write_vocabularies(os.path.join(path, "assets"), sizes, shift=0)
    new_ids = _write_vocabularies(str(tmp_path / "new"), sizes, shift=3)
    fresh = build_compiled_model(tiny_config(model="wide_deep", seed=2))
    fresh.build_for_training(as_tensors(x))
    cross = fresh.crosses["click"].weights_table.embeddings
    cross_before = cross.numpy()
    report = warm_start(fresh, path, _TransformOutput(str(tmp_path / "new")), OOV)
    assert linear_item in report.remapped
    assert report.skipped == {cross.name: "cross of cate ids, not remappable"}
    np.testing.assert_array_equal(cross.numpy(), cross_before)
    old = {v.name: v.numpy() for v in base.variables}[linear_item]
    got = fresh.linear.tables["item"].embeddings.numpy()
    vocab = preprocessing.ITEM_PART_VOCABULARIES["item"]
    assert np.any(old != 0)  # the base model's step moved some item weights
    for j, token in enumerate(new_ids[vocab]):
        np.testing.assert_array_equal(got[1 + j], old[1 + old_ids[vocab].index(token)])
