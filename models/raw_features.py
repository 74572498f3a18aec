"""The raw feature spec: how to parse the feedback-history ExampleGen's tf.Examples.

What components/feedback_example_gen writes per impression (see the module docstring of
components/feedback_example_gen/history.py):

=================================  =======  =============================================
feature                            type     values
=================================  =======  =============================================
user_id, item_id, cate_id,         bytes    exactly one, possibly b'' (no value)
brand_id, pid, profile_<field>
price                              float    one, or ABSENT when the item has no price
timestamp, label                   int64    exactly one (label 0/1; absent when serving)
<f>_full_len                       int64    exactly one: all earlier events of type f
<f>_{item,cate,brand}_seq          bytes    0..T, the most recent T events, oldest first
<f>_{item,cate,brand}_samples      bytes    0..K triplet samples
merged_event_seq                   int64    0..T, the most recent T events of all types,
                                            oldest first, as references into the <f>_seq
=================================  =======  =============================================

Every feature is parsed as a `tf.io.VarLenFeature` (a SparseTensor [B, None]), the scalars
included. Why not FixedLenFeature([]) for the always-present scalars:

* it is what TensorFlow Transform derives from the curated schema (schema/schema.pbtxt has
  no `shape`, so `schema_utils.schema_as_feature_spec` gives VarLenFeature for every
  feature); parsing with this spec at serving time hands the Transform graph exactly the
  tensors it saw during analysis (components/curated_schema_gen/schema_test.py checks the two agree);
* a serving request that leaves out a feature (a price, a profile field) still parses; the
  Transform graph maps the missing value to 0 (no value) or, for the price, to the mean.
  Completeness of the training and eval data is TFDV's job (schema presence constraints).
"""
from typing import Dict, Iterable, Sequence

from feedback_contract import PROFILE_PREFIX, TIMESTAMP, profile_feature  # noqa: F401
from models import features as F

# The profile columns of the public Tianchi user_profile.csv, which the simulator copies.
# Datasets in the canonical layout may have any others (LogFiles.profile_fields).
TAOBAO_PROFILE_FIELDS = ("cms_segid", "cms_group_id", "final_gender_code", "age_level",
                         "pvalue_level", "shopping_level", "occupation", "new_user_class_level")


def profile_features(feature_names: Iterable[str]) -> list:
    """The profile features among `feature_names`, sorted (a stable order for the model)."""
    return sorted(name for name in feature_names if name.startswith(PROFILE_PREFIX))


def raw_feature_spec(profile_fields: Sequence[str],
                     include_label: bool = True) -> Dict[str, "tf.io.VarLenFeature"]:
    """The tf.io feature spec of the ExampleGen's examples.

    Args:
      profile_fields: the dataset's profile field names WITHOUT the 'profile_' prefix (as
        `beam_steps.LogFiles.profile_fields` lists them), e.g. TAOBAO_PROFILE_FIELDS.
      include_label: False for serving requests, which carry no label.
    """
    import tensorflow as tf  # local: the names above stay importable without TensorFlow

    def var_len(dtype):
        return tf.io.VarLenFeature(dtype)

    spec = {name: var_len(tf.string)
            for name in (F.USER_ID, F.ITEM_ID, F.CATE_ID, F.BRAND_ID, F.PID)}
    spec.update({profile_feature(field): var_len(tf.string) for field in profile_fields})
    spec[F.PRICE] = var_len(tf.float32)
    spec[TIMESTAMP] = var_len(tf.int64)
    if include_label:
        spec[F.LABEL] = var_len(tf.int64)
    for feedback in F.FEEDBACK_TYPES:
        spec[F.full_length(feedback)] = var_len(tf.int64)
        for part in F.ITEM_PARTS:
            spec[F.seq(feedback, part)] = var_len(tf.string)
            spec[F.sample(feedback, part)] = var_len(tf.string)
    spec[F.MERGED_EVENTS] = var_len(tf.int64)
    return spec
