"""Summary of a simulated dataset, accumulated shard by shard, and the oracle AUC."""
import dataclasses
import json
from typing import Dict, List

import numpy as np

from simulator.generate import (ACCIDENTAL, FEEDBACK_NAMES, MISSED, ShardEvents, ShardTruth)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half). NaN if one class is absent."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    num_pos = int(labels.sum())
    num_neg = len(labels) - num_pos
    if num_pos == 0 or num_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Average rank (1-based) over each run of tied scores.
    boundaries = np.concatenate([[0], np.flatnonzero(np.diff(sorted_scores)) + 1, [len(scores)]])
    run_length = np.diff(boundaries)
    average_rank = (boundaries[:-1] + boundaries[1:] + 1) / 2.0
    ranks[order] = np.repeat(average_rank, run_length)
    return float((ranks[labels].sum() - num_pos * (num_pos + 1) / 2.0) / (num_pos * num_neg))


@dataclasses.dataclass
class SimulationReport:
    """What `dumn-simulate --report` prints; also saved as simulation.json."""

    events_by_feedback: Dict[str, int]
    events: int
    impressions: int
    category_level_events: int
    users: int
    active_users: int
    items: int
    items_shown: int
    click_rate: float
    train_impressions: int
    eval_impressions: int
    eval_click_rate: float
    oracle_auc: float
    intended_clicks: int
    missed_clicks: int
    missed_click_rate: float
    impressions_without_intent: int
    accidental_clicks: int
    accidental_click_rate: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def format(self) -> str:
        fb = self.events_by_feedback
        lines = [
            "events            %12d" % self.events,
        ]
        lines += ["  %-15s %12d" % (name, fb[name]) for name in FEEDBACK_NAMES]
        lines += [
            "  of which category-level (no item id) %d" % self.category_level_events,
            "users             %12d  (%d with events)" % (self.users, self.active_users),
            "items             %12d  (%d shown)" % (self.items, self.items_shown),
            "impressions       %12d  (train %d, eval %d)" % (
                self.impressions, self.train_impressions, self.eval_impressions),
            "click rate        %12.4f  (eval %.4f)" % (self.click_rate, self.eval_click_rate),
            "missed clicks     %12.4f  of %d intended clicks" % (
                self.missed_click_rate, self.intended_clicks),
            "accidental clicks %12.4f  of %d impressions without intent" % (
                self.accidental_click_rate, self.impressions_without_intent),
            "oracle AUC (eval) %12.4f" % self.oracle_auc,
        ]
        return "\n".join(lines)


class ReportBuilder:
    """Accumulates shard statistics; keeps only the eval split's probabilities and labels."""

    def __init__(self, num_users: int, num_items: int, eval_start_timestamp: int):
        self._num_users = num_users
        self._num_items = num_items
        self._eval_start = eval_start_timestamp
        self._feedback_counts = np.zeros(len(FEEDBACK_NAMES), dtype=np.int64)
        self._category_level = 0
        self._active_users = 0
        self._items_shown = np.zeros(num_items, dtype=bool)
        self._impressions = 0
        self._clicks = 0
        self._eval_probabilities: List[np.ndarray] = []
        self._eval_labels: List[np.ndarray] = []
        self._missed = 0
        self._intended = 0
        self._accidental = 0
        self._no_intent = 0

    def add(self, events: ShardEvents, truth: ShardTruth) -> None:
        self._feedback_counts += np.bincount(events.feedback, minlength=len(FEEDBACK_NAMES))
        self._category_level += int((events.item < 0).sum())
        self._active_users += len(np.unique(events.user))
        self._items_shown[truth.item] = True
        self._impressions += len(truth.label)
        self._clicks += int(truth.label.sum())
        in_eval = truth.timestamp >= self._eval_start
        self._eval_probabilities.append(truth.click_probability[in_eval])
        self._eval_labels.append(truth.label[in_eval])
        # Intent = a genuine click or a missed one; the rest had no intent.
        missed = truth.noise == MISSED
        accidental = truth.noise == ACCIDENTAL
        genuine = (truth.label == 1) & ~accidental
        self._missed += int(missed.sum())
        self._intended += int(genuine.sum() + missed.sum())
        self._accidental += int(accidental.sum())
        self._no_intent += len(truth.label) - int(genuine.sum() + missed.sum())

    def build(self) -> SimulationReport:
        probabilities = np.concatenate(self._eval_probabilities or [np.zeros(0)])
        labels = np.concatenate(self._eval_labels or [np.zeros(0, dtype=np.int64)])
        counts = dict(zip(FEEDBACK_NAMES, (int(c) for c in self._feedback_counts)))
        return SimulationReport(
            events_by_feedback=counts,
            events=int(self._feedback_counts.sum()),
            impressions=self._impressions,
            category_level_events=self._category_level,
            users=self._num_users,
            active_users=self._active_users,
            items=self._num_items,
            items_shown=int(self._items_shown.sum()),
            click_rate=self._clicks / max(self._impressions, 1),
            train_impressions=self._impressions - len(labels),
            eval_impressions=len(labels),
            eval_click_rate=float(labels.mean()) if len(labels) else float("nan"),
            oracle_auc=roc_auc(probabilities, labels),
            intended_clicks=self._intended,
            missed_clicks=self._missed,
            missed_click_rate=self._missed / max(self._intended, 1),
            impressions_without_intent=self._no_intent,
            accidental_clicks=self._accidental,
            accidental_click_rate=self._accidental / max(self._no_intent, 1),
        )


def save_report(report: SimulationReport, config_dict: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump({"config": config_dict, "report": report.to_dict()}, f, indent=2, sort_keys=True)
