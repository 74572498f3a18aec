"""The names the raw feedback example and the model's input share: one declaration.

The feedback-history ExampleGen (components/) writes examples with these feature names and
the Transform step and the models (models/) read them, so both sides import this module
instead of one importing the other (which made components and models import each other).
models/features.py re-exports every name and adds the transformed-only ones (clipped
lengths, sample counts, shapes).
"""

FEEDBACK_TYPES = ("click", "unclick", "like", "dislike")

# Prediction tasks: which events on a shown item (an event with an item id) form examples,
# and which feedback is label 1. 'ctr': impressions, click = 1, unclick = 0 (the paper's
# main task). 'dislike' (§4.5, Table 7, DFN's task): every feedback event on a shown item,
# dislike = 1. Histories are point-in-time for both: an example sees only earlier events.
TASKS = {"ctr": (("click", "unclick"), "click"), "dislike": (FEEDBACK_TYPES, "dislike")}


def task_example_feedback(task: str):
    """The feedback types whose events on a shown item are `task`'s examples."""
    return TASKS[task][0]


def task_positive(task: str) -> str:
    """The feedback type labelled 1 in `task`."""
    return TASKS[task][1]
ITEM_PARTS = ("item", "cate", "brand")

USER_ID = "user_id"
ITEM_ID = "item_id"
CATE_ID = "cate_id"
BRAND_ID = "brand_id"
TARGET_ITEM_PARTS = {"item": ITEM_ID, "cate": CATE_ID, "brand": BRAND_ID}
PID = "pid"
PRICE = "price"
LABEL = "label"
TIMESTAMP = "timestamp"
PROFILE_PREFIX = "profile_"


def profile_feature(field: str) -> str:
    """Feature name of a profile field: profile_feature('age_level') == 'profile_age_level'.

    Raw and transformed features share the name, so a ModelConfig's `user_fields` keys are
    these names.
    """
    return PROFILE_PREFIX + field


def seq(feedback: str, part: str) -> str:
    """Name of a history sequence, e.g. seq('click', 'item') == 'click_item_seq'."""
    return "%s_%s_seq" % (feedback, part)


def full_length(feedback: str) -> str:
    """Name of the unclipped history length (analysis and slicing only), e.g. 'click_full_len'."""
    return "%s_full_len" % feedback


def sample(feedback: str, part: str) -> str:
    """Name of a triplet-sample list, e.g. sample('like', 'brand') == 'like_brand_samples'."""
    return "%s_%s_samples" % (feedback, part)


# The user's most recent T earlier events of ALL four types in time order (oldest first), for
# DUMN_AF (§4.3.5: "connects all types of feedback into a sequence through time"). Each event
# is a reference into the per-type histories above rather than a copy of its ids:
#   code = 1 + type + 4 * rank,  type = FEEDBACK_TYPES.index(f),  rank = 0 for the most recent
#   event of type f, 1 for the one before, ...;  0 is padding.
# The T most recent events of all types are among the T most recent of each type, so every
# code points into `seq(f, part)`: at position len_f - 1 - rank of that (oldest-first) list.
MERGED_EVENTS = "merged_event_seq"


def merged_event_code(feedback_index: int, rank: int) -> int:
    """The MERGED_EVENTS code of the rank-th most recent event of FEEDBACK_TYPES[index]."""
    return 1 + feedback_index + len(FEEDBACK_TYPES) * rank


def merged_event_parts(code):
    """(type index, rank) of MERGED_EVENTS codes > 0, the inverse of merged_event_code; works
    on Python ints, numpy arrays and TensorFlow tensors alike (floor % and //)."""
    return (code - 1) % len(FEEDBACK_TYPES), (code - 1) // len(FEEDBACK_TYPES)
