"""Charts as inline SVG strings, for a report that opens from disk with no network and no
JavaScript library.

Small on purpose: line charts (ROC, calibration, training curves), scatter plots (2-D
projections) and bar charts (counts); axes with round ticks, a legend, and a `<title>` per
series so a browser shows the name on hover. Every chart is an `<svg class="chart">` with a
`data-series` attribute holding the number of series drawn (the browser test reads it).
"""
import html
import math
from typing import List, Optional, Sequence, Tuple

WIDTH, HEIGHT = 480, 300
# The legend sits in the right margin, beside the plot, never over the data.
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 68, 122, 30, 44
# Colour-blind-safe palette (Okabe & Ito); series beyond it cycle.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
           "#000000")

Series = Tuple[str, Sequence[float], Sequence[float]]


def nice_ticks(low: float, high: float, count: int = 5) -> List[float]:
    """About `count` round tick values (1, 2 or 5 times a power of ten apart) covering
    [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 10000:
        return "{:,.0f}".format(value)
    if abs(value) < 0.001:
        return "%.0e" % value
    return ("%.3f" % value).rstrip("0").rstrip(".")


def _bounds(values: Sequence[float], fixed: Optional[Tuple[float, float]]):
    if fixed is not None:
        return fixed
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    if high == low:
        low, high = low - 0.5, high + 0.5
    pad = 0.04 * (high - low)
    return low - pad, high + pad


class _Frame:
    """Maps data to pixel coordinates and draws the axes."""

    def __init__(self, x_range, y_range):
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.left, self.right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM

    def px(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def py(self, y: float) -> float:
        return self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def axes(self, title: str, x_label: str, y_label: str, x_ticks=True) -> List[str]:
        parts = ['<rect x="%d" y="%d" width="%d" height="%d" fill="#fff" stroke="#999"/>'
                 % (self.left, self.top, self.right - self.left, self.bottom - self.top)]
        if x_ticks:
            for tick in nice_ticks(self.x0, self.x1):
                if self.x0 <= tick <= self.x1:
                    x = self.px(tick)
                    parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>'
                                 '<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                                 % (x, self.top, x, self.bottom, x, self.bottom + 14,
                                    _label(tick)))
        for tick in nice_ticks(self.y0, self.y1):
            if self.y0 <= tick <= self.y1:
                y = self.py(tick)
                parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>'
                             '<text x="%d" y="%.1f" text-anchor="end">%s</text>'
                             % (self.left, y, self.right, y, self.left - 4, y + 4,
                                _label(tick)))
        parts.append('<text x="%d" y="18" font-weight="bold">%s</text>'
                     % (self.left, html.escape(title)))
        parts.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                     % ((self.left + self.right) / 2, HEIGHT - 8, html.escape(x_label)))
        parts.append('<text x="14" y="%.1f" text-anchor="middle" transform="rotate(-90 14 %.1f)">'
                     '%s</text>' % ((self.top + self.bottom) / 2, (self.top + self.bottom) / 2,
                                    html.escape(y_label)))
        return parts


def _legend(names: Sequence[str], frame: _Frame) -> List[str]:
    parts = []
    for i, name in enumerate(names):
        y = frame.top + 10 + 15 * i
        parts.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>'
                     '<text x="%d" y="%d">%s</text>'
                     % (frame.right + 8, y - 9, PALETTE[i % len(PALETTE)], frame.right + 22,
                        y, html.escape(name)))
    return parts


def _svg(parts: List[str], series_count: int, label: str) -> str:
    return ('<svg class="chart" role="img" aria-label="%s" data-series="%d" '
            'xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
            'font-family="sans-serif" font-size="11">%s</svg>'
            % (html.escape(label), series_count, WIDTH, HEIGHT, WIDTH, HEIGHT,
               "".join(parts)))


def line_chart(series: Sequence[Series], title: str, x_label: str, y_label: str,
               x_range=None, y_range=None, diagonal: bool = False,
               markers: bool = False) -> str:
    """One polyline per (name, xs, ys); `diagonal` draws y = x (a perfect ROC / calibration
    reference) in grey."""
    series = [(name, list(xs), list(ys)) for name, xs, ys in series if len(xs)]
    frame = _Frame(_bounds([x for _, xs, _ in series for x in xs], x_range),
                   _bounds([y for _, _, ys in series for y in ys], y_range))
    parts = frame.axes(title, x_label, y_label)
    if diagonal:
        low, high = max(frame.x0, frame.y0), min(frame.x1, frame.y1)
        parts.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#aaa" '
                     'stroke-dasharray="4 3"/>' % (frame.px(low), frame.py(low),
                                                   frame.px(high), frame.py(high)))
    for i, (name, xs, ys) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        points = " ".join("%.1f,%.1f" % (frame.px(x), frame.py(y))
                          for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y))
        parts.append('<polyline class="series" fill="none" stroke="%s" stroke-width="1.8" '
                     'points="%s"><title>%s</title></polyline>'
                     % (colour, points, html.escape(name)))
        if markers:
            parts.extend('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>'
                         % (frame.px(x), frame.py(y), colour)
                         for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y))
    parts.extend(_legend([name for name, _, _ in series], frame))
    return _svg(parts, len(series), title)


def scatter_chart(groups: Sequence[Series], title: str, x_label: str = "component 1",
                  y_label: str = "component 2") -> str:
    """One colour per (name, xs, ys) group of points."""
    groups = [(name, list(xs), list(ys)) for name, xs, ys in groups if len(xs)]
    frame = _Frame(_bounds([x for _, xs, _ in groups for x in xs], None),
                   _bounds([y for _, _, ys in groups for y in ys], None))
    parts = frame.axes(title, x_label, y_label)
    for i, (name, xs, ys) in enumerate(groups):
        colour = PALETTE[i % len(PALETTE)]
        dots = "".join('<circle cx="%.1f" cy="%.1f" r="2.6"/>' % (frame.px(x), frame.py(y))
                       for x, y in zip(xs, ys))
        parts.append('<g class="series" fill="%s" fill-opacity="0.65"><title>%s</title>%s</g>'
                     % (colour, html.escape(name), dots))
    parts.extend(_legend([name for name, _, _ in groups], frame))
    return _svg(parts, len(groups), title)


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str,
              y_label: str) -> str:
    """Vertical bars, one per label, with the value above each."""
    values = [float(v) for v in values]
    frame = _Frame((0.0, float(max(len(values), 1))),
                   (0.0, max(values + [0.0]) * 1.12 or 1.0))
    parts = frame.axes(title, "", y_label, x_ticks=False)
    width = (frame.right - frame.left) / max(len(values), 1)
    bars = []
    for i, (label, value) in enumerate(zip(labels, values)):
        x = frame.left + i * width
        y = frame.py(value)
        bars.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %s</title>'
                    '</rect><text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">%s</text>'
                    '<text x="%.1f" y="%d" text-anchor="middle" fill="#333">%s</text>'
                    % (x + 0.15 * width, y, 0.7 * width, frame.bottom - y, html.escape(label),
                       _label(value), x + width / 2, y - 3, _label(value), x + width / 2,
                       frame.bottom + 14, html.escape(label)))
    parts.append('<g class="series" fill="%s">%s</g>' % (PALETTE[0], "".join(bars)))
    return _svg(parts, 1 if values else 0, title)
