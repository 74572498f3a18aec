"""The run report: its figures against hand-computed expectations, the page's content, and
the page in headless Chromium (skipped, with the reason, where Chromium is missing)."""
import html.parser
import io
import math

import numpy as np
import pytest

from pipeline.report import svg
from pipeline.report.collect import RunReport, calibration_bins, folder_id, roc_curve
from pipeline.report.headless import chromium, open_page
from pipeline.report.render import render
from simulator.report import roc_auc


def test_nice_ticks_are_round_and_cover_the_range():
    assert svg.nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    # (0.6612 - 0.5938) / 5 = 0.0135: the next round step is 0.02.
    assert svg.nice_ticks(0.5938, 0.6612) == pytest.approx([0.6, 0.62, 0.64, 0.66])
    for low, high in ((3, 9000), (-2.5, 0.1), (0.0001, 0.0009)):
        ticks = svg.nice_ticks(low, high)
        steps = np.diff(ticks)
        assert np.allclose(steps, steps[0]) and 2 <= len(ticks) <= 11
        mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
        assert min(abs(mantissa - m) for m in (1, 2, 5)) < 1e-9
        assert ticks[0] >= low - 1e-12 and ticks[-1] <= high + 1e-12
        assert ticks[0] - steps[0] < low and ticks[-1] + steps[0] > high


def _confusion_matrices(labels, scores, thresholds):
    """TFMA's ConfusionMatrixPlot layout: counts of predictions above each threshold."""
    rows = []
    for t in thresholds:
        predicted = scores > t
        rows.append({"threshold": t,
                     "truePositives": float(np.sum(predicted & (labels == 1))),
                     "falsePositives": float(np.sum(predicted & (labels == 0))),
                     "trueNegatives": float(np.sum(~predicted & (labels == 0))),
                     "falseNegatives": float(np.sum(~predicted & (labels == 1)))})
    return {"matrices": rows}


def test_roc_curve_area_equals_the_rank_auc_of_the_scores():
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.3).astype(int)
    scores = np.clip(0.3 * labels + rng.normal(0.4, 0.2, 400), 0, 1)
    thresholds = np.concatenate([[-1.0], np.sort(scores)])   # one cut between each score
    curve = np.array(roc_curve(_confusion_matrices(labels, scores, thresholds), points=10000))
    assert curve[0].tolist() == [0.0, 0.0] and curve[-1].tolist() == [1.0, 1.0]
    assert np.all(np.diff(curve[:, 0]) >= 0) and np.all(np.diff(curve[:, 1]) >= 0)
    area = float(np.sum(np.diff(curve[:, 0]) * (curve[1:, 1] + curve[:-1, 1]) / 2))
    assert area == pytest.approx(roc_auc(scores, labels), abs=1e-4)
    # Thinned to about `points` points, the end points kept.
    thin = roc_curve(_confusion_matrices(labels, scores, thresholds), points=20)
    assert len(thin) <= 45 and thin[0] == [0.0, 0.0] and thin[-1] == [1.0, 1.0]
    assert roc_curve({}) == []


def test_calibration_bins_merge_buckets_into_bins_of_about_equal_size():
    # 100 buckets of 10 examples; bucket i predicts i/100 on average and observes i/200.
    buckets = [{"numWeightedExamples": 10.0, "totalWeightedLabel": 10 * i / 200,
                "totalWeightedRefinedPrediction": 10 * i / 100} for i in range(100)]
    buckets.insert(0, {"numWeightedExamples": 0.0})     # empty buckets are skipped
    bins = calibration_bins({"buckets": buckets}, bins=10)
    assert len(bins) == 10 and all(b["examples"] == 100.0 for b in bins)
    # Bin k holds buckets 10k..10k+9: mean prediction (10k + 4.5) / 100.
    for k, b in enumerate(bins):
        assert b["mean_prediction"] == pytest.approx((10 * k + 4.5) / 100)
        assert b["observed_rate"] == pytest.approx((10 * k + 4.5) / 200)
    assert calibration_bins({}) == []


def test_folder_id_of_tfx_run_ids():
    assert folder_id("2026-12-04T01:20:05.537416") == "20261204-012005"
    assert folder_id("my run/1") == "my_run_1"


def _report(blessed=True, baseline=True, views=True) -> RunReport:
    def model(uri, auc):
        return {"model": uri, "slices": {
            "overall": {"auc": auc, "logloss": 0.23, "calibration": 1.01, "mean_label": 0.067,
                        "mean_prediction": 0.068, "example_count": 21891.0},
            "pid=430539_1007": {"auc": auc - 0.01, "example_count": 8743.0, "logloss": 0.2},
            "history_bucket=0": {"auc": auc + 0.05, "example_count": 551.0}},
            "roc": [[0, 0], [0.2, 0.5], [1, 1]],
            "calibration": [{"mean_prediction": 0.02, "observed_rate": 0.03, "examples": 9.0},
                            {"mean_prediction": 0.2, "observed_rate": 0.15, "examples": 9.0}]}
    curve = [[50, 2.0], [100, 1.9], [150, 1.85]]
    training = {"model_run": "/runs/Trainer/model_run/8", "base_model": "/m/8",
                "first_batch_bce": 0.21, "warm_start": True,
                "curves": {"train/batch_loss": curve, "train/batch_auc": [[50, 0.6], [100, 0.65]],
                           "validation/evaluation_auc_vs_iterations": [[150, 0.66]]},
                "memory": {"click": {"slot_cosine": [[100, 0.1], [150, 0.12]],
                                     "read_entropy": [[150, 5.1]]}},
                "projections": {"examples": 64, "feedback": {
                    "click raw": [[0, 1], [1, 0]], "click purified": [[2, 2]]},
                    "long_term": {"user 3": [[0.1, 0.2], [0.2, 0.1]]}} if views else None,
                "trajectory": {"steps": [100, 150], "points": {
                    "impression 1": [[0, 0], [0.1, 0.1]], "impression 2": [[1, 1], [0.8, 0.9]]},
                    "read_spread": [[100, 0.3], [150, 0.2]],
                    "short_spread": [[100, 0.9], [150, 0.95]]} if views else None}
    data = {"layout": "canonical", "counts": {"lines/events.csv": 1000},
            "events_by_type": {"click": 70, "unclick": 900, "like": 20, "dislike": 10},
            "bad_rows_by_reason": {"wrong column count": 2},
            "bad_row_examples": {"wrong column count": ["events.csv line 5: wrong <count>"]},
            "examples_by_split": {"train": 800, "eval": 150},
            "history_lengths": {"click": {"mean": 3.1, "median": 2.0, "max": 21,
                                          "buckets": [[0, 5, 700], [5, 10, 100]]}}}
    return RunReport(
        run_id="20261204-012005", pipeline_run="2026-12-04T01:20:05.537416",
        started="2026-12-04T01:20:05",
        components=[{"name": "Trainer", "state": "COMPLETE", "seconds": 206.0}],
        data=data, training=training, model="dumn", oracle_auc=0.813,
        evaluation={"candidate": model("/m/18", 0.69), "baseline": model("/m/8", 0.70)
                    if baseline else None, "blessed": blessed,
                    "reasons": [] if blessed else ["AUC is 0.0100 below the latest blessed "
                                                   "model's; allowed: 0.0000"],
                    "pushed": blessed, "pushed_to": "/serving/17" if blessed else None})


class _Checker(html.parser.HTMLParser):
    """Collects tags and text; fails on a closing tag that does not match."""
    VOID = {"meta", "br", "rect", "line", "circle", "polyline", "img"}

    def __init__(self):
        super().__init__()
        self.stack, self.text, self.svgs = [], io.StringIO(), []

    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            self.svgs.append(dict(attrs))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, "</%s> closes %s" % (tag, self.stack[-1:])
        self.stack.pop()

    def handle_data(self, data):
        self.text.write(data + " ")


def _parse(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    return checker


def test_page_shows_both_models_every_slice_the_decision_and_every_chart():
    page = render(_report())
    parsed = _parse(page)
    text = " ".join(parsed.text.getvalue().split())
    assert "Blessed : above the AUC floor and not worse than the latest blessed model" in text
    assert "Pushed to /serving/17" in text
    # Overall AUC of both models and their difference; every slice with its count.
    assert "auc 0.6900 0.7000 -0.0100" in text
    assert "pid=430539_1007 8,743 0.6800 0.6900" in text
    assert "history_bucket=0 551 0.7400 0.7500" in text
    assert "84.9% of it" in text                                 # 0.69 / 0.813
    assert "first training batch before training: 0.2100 (warm start from /m/8" in text
    # Bad rows escaped, with their example.
    assert "wrong <count>" in text and "wrong &lt;count&gt;" in page
    titles = [s["aria-label"] for s in parsed.svgs]
    assert titles == ["ROC (eval split)", "Reliability (bins of equal size)", "Loss",
                      "AUC during training", "Slot similarity during training",
                      "Short-term interests, raw and purified (cf. Fig. 3)",
                      "Long-term interests read from memory (cf. Fig. 4)",
                      "Long-term interests through training (cf. Fig. 5)",
                      "Spread across the batch",
                      "Events by feedback type", "History lengths (train split)"]
    series = {s["aria-label"]: int(s["data-series"]) for s in parsed.svgs}
    assert series["ROC (eval split)"] == 2 and series["AUC during training"] == 2
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page                                 # nothing to fetch


def test_page_says_why_a_model_was_not_blessed_and_when_there_was_no_baseline():
    text = " ".join(_parse(render(_report(blessed=False))).text.getvalue().split())
    assert ("Not blessed : AUC is 0.0100 below the latest blessed model's; allowed: 0.0000."
            in text)
    assert "Not pushed." in text
    first = _parse(render(_report(baseline=False, views=False)))
    text = " ".join(first.text.getvalue().split())
    assert "there was no blessed model to compare with" in text
    assert "No baseline" in text and "baseline AUC" not in text
    assert "cf. Fig. 3" not in text and "cf. Fig. 5" not in text


needs_chromium = pytest.mark.skipif(
    chromium() is None, reason="no Chromium: scripts/test.sh installs Debian's chromium "
                               "package where apt-get can run as root")


@needs_chromium
def test_the_browser_check_sees_console_errors_and_hidden_charts(tmp_path):
    # The check itself can fail: a page with an uncaught error and a chart laid out at
    # zero size.
    broken = tmp_path / "broken.html"
    broken.write_text(render(_report()).replace(
        "<body>", '<body><div style="display:none">%s</div>' % svg.line_chart(
            [("s", [0, 1], [0, 1])], "hidden", "x", "y")).replace(
        "</body>", "<script>throw new Error('boom');</script></body>"))
    page = open_page(str(broken))
    assert any("boom" in message for message in page.console)
    assert 'data-charts="12"' in page.dom and 'data-charts-shown="11"' in page.dom


@needs_chromium
def test_report_renders_in_headless_chromium(tmp_path):
    path = tmp_path / "index.html"
    path.write_text(render(_report()))
    check_in_browser(str(path), charts=11)


def check_in_browser(path: str, charts: int) -> None:
    """The page in Chromium: rendered, no console message, every chart laid out with a
    series, the decision shown, and a screenshot that is not blank."""
    from PIL import Image

    page = open_page(path)
    assert page.console == []
    assert 'data-rendered="yes"' in page.dom
    assert 'data-charts="%d"' % charts in page.dom
    assert 'data-charts-shown="%d"' % charts in page.dom
    assert 'id="decision"' in page.dom
    image = Image.open(io.BytesIO(page.screenshot)).convert("RGB")
    pixels = np.asarray(image)
    assert image.size == (1100, 2400)
    # Not blank: text, tables and coloured charts (the palette's blue) are drawn.
    assert (pixels.min(axis=-1) < 100).mean() > 0.002
    assert np.any((pixels[..., 2] > 150) & (pixels[..., 0] < 40))
