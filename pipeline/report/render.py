"""The run report as one self-contained HTML page (inline CSS and SVG, a few lines of plain
JavaScript, no network, no Jupyter), from a `collect.RunReport`.

`write_report(output_root, run_id)` writes `<output_root>/report/<run id>/index.html` and
`report.json` (the same figures, for scripts) and returns the page's path.
"""
import html
import math
import os
from typing import Dict, List, Optional

from pipeline.report import svg
from pipeline.report.collect import RunReport, collect

REPORT_FOLDER = "report"
# Overall metrics in the order the table shows them.
METRICS = ("auc", "logloss", "calibration", "mean_label", "mean_prediction", "example_count")
MEMORY_FIGURES = ("slot_cosine", "read_entropy", "uniform_entropy", "read_max_weight",
                  "write_max_weight", "read_std_relative", "read_cosine")

_CSS = """
body{font-family:sans-serif;margin:24px auto;max-width:1000px;color:#222;line-height:1.4}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;border-bottom:1px solid #ccc;
padding-bottom:3px;margin-top:28px} table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right;font-size:13px}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.decision{padding:10px 14px;border-radius:4px;margin:12px 0;font-size:15px}
.blessed{background:#e3f4e8;border:1px solid #6c6} .not-blessed{background:#fbe5e1;
border:1px solid #d66} .charts{display:flex;flex-wrap:wrap;gap:12px} .muted{color:#777}
code{background:#f4f4f4;padding:0 3px} .bad{font-family:monospace;font-size:12px;text-align:left}
"""

# Marks the page as rendered and counts the charts a browser actually lays out with at
# least one series drawn (the headless-browser test reads both attributes).
_SCRIPT = """
(function () {
  var charts = document.querySelectorAll("svg.chart"), shown = 0;
  charts.forEach(function (chart) {
    var box = chart.getBoundingClientRect();
    if (box.width > 0 && box.height > 0 && chart.querySelector(".series")) { shown += 1; }
  });
  document.body.setAttribute("data-charts", String(charts.length));
  document.body.setAttribute("data-charts-shown", String(shown));
  document.body.setAttribute("data-rendered", "yes");
})();
"""


def _number(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return "{:,}".format(int(value))
    if isinstance(value, int):
        return "{:,}".format(value)
    return "%.*f" % (digits, value)


def _table(header: List[str], rows: List[List[str]], cls: str = "") -> str:
    head = "".join("<th>%s</th>" % html.escape(h) for h in header)
    body = "".join("<tr>%s</tr>" % "".join("<td>%s</td>" % cell for cell in row)
                   for row in rows)
    return '<table class="%s"><tr>%s</tr>%s</table>' % (cls, head, body)


def _section(title: str, body: str, section_id: str) -> str:
    return '<section id="%s"><h2>%s</h2>%s</section>' % (section_id, html.escape(title), body)


def _decision(report: RunReport) -> str:
    ev = report.evaluation
    if ev["blessed"] is None:
        return '<div class="decision not-blessed">No blessing recorded: the Evaluator did ' \
               'not run in this run.</div>'
    if ev["blessed"]:
        against = ("above the AUC floor and not worse than the latest blessed model"
                   if ev["baseline"] else
                   "above the AUC floor; there was no blessed model to compare with")
        text = "<b>Blessed</b>: %s." % against
        cls = "blessed"
    else:
        reasons = ev["reasons"] or ["the Evaluator's thresholds were not met"]
        text = "<b>Not blessed</b>: %s." % "; ".join(html.escape(r) for r in reasons)
        cls = "not-blessed"
    if ev["pushed"]:
        text += " Pushed to <code>%s</code>." % html.escape(ev["pushed_to"] or "?")
    elif ev["pushed"] is False:
        text += " Not pushed."
    return '<div class="decision %s" id="decision">%s</div>' % (cls, text)


def _metrics(report: RunReport) -> str:
    ev = report.evaluation
    candidate, baseline = ev["candidate"], ev["baseline"]
    if candidate is None:
        return '<p class="muted">No evaluation in this run.</p>'
    overall = candidate["slices"].get("overall", {})
    base = baseline["slices"].get("overall", {}) if baseline else {}
    rows = []
    for name in METRICS:
        if name not in overall:
            continue
        value, other = overall[name], base.get(name)
        diff = _number(value - other) if other is not None and name != "example_count" else ""
        rows.append([name, _number(value)] + ([_number(other), diff] if baseline else []))
    header = ["metric", "candidate"] + (
        ["baseline (latest blessed)", "candidate - baseline"] if baseline else [])
    parts = [_table(header, rows)]
    if not baseline:
        parts.append('<p class="muted">No baseline: no model had been blessed before this '
                     'run.</p>')
    if report.oracle_auc:
        auc = overall.get("auc")
        parts.append("<p>Oracle AUC (the simulator's true click probabilities on the same "
                     "eval split): %s%s.</p>" % (
                         _number(report.oracle_auc),
                         "; the candidate reaches %.1f%% of it" % (100 * auc / report.oracle_auc)
                         if auc else ""))
    parts.append('<p class="muted">Candidate: <code>%s</code>%s</p>' % (
        html.escape(candidate["model"]),
        "<br>Baseline: <code>%s</code>" % html.escape(baseline["model"]) if baseline else ""))
    slice_rows = []
    for name, values in sorted(candidate["slices"].items()):
        if name == "overall":
            continue
        other = baseline["slices"].get(name, {}) if baseline else {}
        slice_rows.append([html.escape(name), _number(values.get("example_count")),
                           _number(values.get("auc"))]
                          + ([_number(other.get("auc"))] if baseline else [])
                          + [_number(values.get("logloss")), _number(values.get("calibration"))])
    if slice_rows:
        parts.append("<h3>Slices</h3>" + _table(
            ["slice", "examples", "AUC"] + (["baseline AUC"] if baseline else [])
            + ["logloss", "calibration"], slice_rows, cls="slices"))
    return "".join(parts)


def _evaluation_plots(report: RunReport) -> str:
    ev = report.evaluation
    models = [(name, ev[name]) for name in ("candidate", "baseline") if ev[name]]
    if not models:
        return ""
    roc = svg.line_chart(
        [(name, [p[0] for p in m["roc"]], [p[1] for p in m["roc"]]) for name, m in models],
        "ROC (eval split)", "false positive rate", "true positive rate",
        x_range=(0, 1), y_range=(0, 1), diagonal=True)
    top = max([b["mean_prediction"] for _, m in models for b in m["calibration"]]
              + [b["observed_rate"] for _, m in models for b in m["calibration"]] + [0.01])
    reliability = svg.line_chart(
        [(name, [b["mean_prediction"] for b in m["calibration"]],
          [b["observed_rate"] for b in m["calibration"]]) for name, m in models],
        "Reliability (bins of equal size)", "mean predicted CTR", "observed CTR",
        x_range=(0, top * 1.05), y_range=(0, top * 1.05), diagonal=True, markers=True)
    return '<div class="charts">%s%s</div>' % (roc, reliability)


def _curve(curves: Dict[str, list], names: Dict[str, str], title: str, y_label: str) -> str:
    series = [(label, [p[0] for p in curves[key]], [p[1] for p in curves[key]])
              for key, label in names.items() if curves.get(key)]
    if not series:
        return ""
    return svg.line_chart(series, title, "training step", y_label,
                          markers=any(len(s[1]) < 3 for s in series))


def _training(report: RunReport) -> str:
    training = report.training
    if training["model_run"] is None:
        return '<p class="muted">The Trainer did not run in this run.</p>'
    curves = training["curves"]
    charts = [
        _curve(curves, {"train/batch_loss": "train loss", "train/batch_bce": "train BCE",
                        "validation/evaluation_loss_vs_iterations": "eval loss",
                        "validation/evaluation_bce_vs_iterations": "eval BCE"},
                "Loss", "loss"),
        _curve(curves, {"train/batch_auc": "train AUC",
                        "validation/evaluation_auc_vs_iterations": "eval AUC"},
               "AUC during training", "AUC")]
    start = ""
    if training.get("first_batch_bce") is not None:
        start = "<p>BCE of the first training batch before training: %s (%s).</p>" % (
            _number(training["first_batch_bce"]),
            "warm start from <code>%s</code>" % html.escape(training["base_model"] or "?")
            if training.get("warm_start") else "cold start")
    parts = [start,
             '<p class="muted">From the Trainer\'s TensorBoard logs in <code>%s</code>.</p>'
             % html.escape(training["model_run"]),
             '<div class="charts">%s</div>' % "".join(c for c in charts if c)]
    memory = training["memory"]
    if memory:
        rows = []
        for name, figures in sorted(memory.items()):
            rows.append([html.escape(name)] + [
                _number(figures[f][-1][1]) if figures.get(f) else "" for f in MEMORY_FIGURES])
        parts.append("<h3>Memory diagnostics (end of training)</h3>" + _table(
            ["memory"] + list(MEMORY_FIGURES), rows))
        parts.append('<p class="muted">slot_cosine: mean pairwise cosine of the slots (1 = '
                     'collapsed); read entropy against uniform_entropy = log(slots); '
                     'read_std_relative: spread of the reads across users (0 = every user '
                     'reads the same); read_cosine: mean cosine between users\' reads.</p>')
        parts.append('<div class="charts">%s</div>' % svg.line_chart(
            [(name, [p[0] for p in figures["slot_cosine"]],
              [p[1] for p in figures["slot_cosine"]])
             for name, figures in sorted(memory.items()) if figures.get("slot_cosine")],
            "Slot similarity during training", "training step", "mean slot cosine",
            markers=True))
    views = training["projections"]
    if views:
        parts.append(_projections(views))
    if training.get("trajectory"):
        parts.append(_trajectory(training["trajectory"]))
    return "".join(parts)


def _trajectory(view: dict) -> str:
    paths = svg.line_chart(
        [(name, [p[0] for p in points], [p[1] for p in points])
         for name, points in view["points"].items()],
        "Long-term interests through training (cf. Fig. 5)", "component 1", "component 2",
        markers=True)
    spread = svg.line_chart(
        [("long-term read", [p[0] for p in view["read_spread"]],
          [p[1] for p in view["read_spread"]]),
         ("short-term", [p[0] for p in view["short_spread"]],
          [p[1] for p in view["short_spread"]])],
        "Spread across the batch", "training step", "relative std", markers=True)
    return ("<h3>Long- and short-term interests during training (cf. Fig. 5)</h3>"
            '<p class="muted">Left: the click memory\'s read for the first impressions of the '
            "first training batch at steps %s (one line per impression, PCA to 2-D). Right: "
            "how spread the long-term reads and the purified click interests are across that "
            "batch (0 = every impression the same vector).</p>"
            '<div class="charts">%s%s</div>' % (
                ", ".join(str(s) for s in view["steps"]), paths, spread))


def _projections(views: dict) -> str:
    charts = []
    if views.get("feedback"):
        charts.append(svg.scatter_chart(
            [(name, [p[0] for p in points], [p[1] for p in points])
             for name, points in sorted(views["feedback"].items())],
            "Short-term interests, raw and purified (cf. Fig. 3)"))
    if views.get("long_term"):
        charts.append(svg.scatter_chart(
            [(name, [p[0] for p in points], [p[1] for p in points])
             for name, points in views["long_term"].items()],
            "Long-term interests read from memory (cf. Fig. 4)"))
    if not charts:
        return ""
    return ("<h3>Representations (PCA to 2-D, %s eval examples)</h3>" % _number(
        views.get("examples")) + '<p class="muted">Left: each channel\'s short-term '
            'representation before (raw f) and after feature purification (f<sup>o</sup>), '
            'one point per example. Right: the long-term interest each impression of the '
            'users with the most eval impressions reads from the click memory; one colour '
            'per user.</p><div class="charts">%s</div>' % "".join(charts))


def _data(report: RunReport) -> str:
    data = report.data
    parts = []
    if data["layout"]:
        parts.append("<p>Layout: <code>%s</code>; %s lines read.</p>" % (
            html.escape(data["layout"]),
            _number(sum(n for k, n in data["counts"].items() if k.startswith("lines/")))))
    charts = []
    events = data["events_by_type"]
    if any(events.values()):
        charts.append(svg.bar_chart(list(events), list(events.values()),
                                    "Events by feedback type", "events"))
    lengths = data["history_lengths"]
    if lengths:
        charts.append(svg.line_chart(
            [(kind, [(b[0] + b[1]) / 2 for b in h["buckets"]], [b[2] for b in h["buckets"]])
             for kind, h in sorted(lengths.items())],
            "History lengths (train split)", "earlier events of the type", "examples",
            markers=True))
    if charts:
        parts.append('<div class="charts">%s</div>' % "".join(charts))
    if lengths:
        parts.append(_table(["history", "mean", "median", "max"], [
            [kind, _number(h["mean"], 1), _number(h["median"], 1), _number(h["max"], 0)]
            for kind, h in sorted(lengths.items())]))
    if data["examples_by_split"]:
        parts.append("<h3>Examples per split</h3>" + _table(
            ["split", "examples"], [[html.escape(s), _number(n)]
                                    for s, n in sorted(data["examples_by_split"].items())]))
    bad = data["bad_rows_by_reason"]
    if bad:
        rows = [[html.escape(reason), _number(n), "<br>".join(
            html.escape(e) for e in data["bad_row_examples"].get(reason, []))]
            for reason, n in sorted(bad.items(), key=lambda kv: -kv[1])]
        parts.append("<h3>Bad rows (set aside, by reason)</h3>" + _table(
            ["reason", "rows", "first rows"], rows, cls="bad-rows"))
    elif data["layout"]:
        parts.append("<p>Bad rows: none.</p>")
    return "".join(parts) or '<p class="muted">No data report in this run.</p>'


def _components(report: RunReport) -> str:
    return _table(["component", "state", "seconds"], [
        [html.escape(c["name"]), html.escape(c["state"]), _number(c["seconds"], 0)]
        for c in report.components])


def render(report: RunReport) -> str:
    """The whole page."""
    title = "%s run %s" % ((report.model or "model").upper(), report.run_id)
    body = "".join([
        "<h1>%s</h1>" % html.escape(title),
        '<p class="muted">Started %s; TFX pipeline run <code>%s</code>. Rebuild with '
        "<code>dumn-report OUTPUT_ROOT --run %s</code>.</p>" % (
            html.escape(report.started), html.escape(report.pipeline_run),
            html.escape(report.run_id)),
        _decision(report),
        _section("Evaluation (eval split)", _metrics(report) + _evaluation_plots(report),
                 "evaluation"),
        _section("Training", _training(report), "training"),
        _section("Data", _data(report), "data"),
        _section("Components", _components(report), "components"),
    ])
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>%s</title>'
            '<style>%s</style></head><body>%s<script>%s</script></body></html>'
            % (html.escape(title), _CSS, body, _SCRIPT))


def report_dir(output_root: str, run_id: str) -> str:
    return os.path.join(output_root, REPORT_FOLDER, run_id)


def write_report(output_root: str, run_id: Optional[str] = None) -> str:
    """Writes the report of one run (the latest when run_id is None); returns its path."""
    report = collect(output_root, run_id)
    folder = report_dir(output_root, report.run_id)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "report.json"), "w") as f:
        f.write(report.to_json())
    path = os.path.join(folder, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(report))
    return path
