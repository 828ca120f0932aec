"""Tiny server-side SVG charts for the dashboard: time series with axes, gaps and hover titles.

No JavaScript and no inline styles (the dashboard's CSP forbids both): colours come from
classes in ops_gateway/static/dashboard/dashboard.css.
"""

import math
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH, HEIGHT = 560, 190
LEFT, RIGHT, TOP, BOTTOM = 52, 10, 12, 24
GRID_STEPS = 5


def nice_ceiling(value):
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above ``value`` (1 for nothing to show)."""
    if not value or value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def compact(value):
    """1234 → 1.2k, 3400000 → 3.4M; small numbers as they are."""
    value = float(value)
    for divisor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= divisor:
            return f"{value / divisor:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{int(value)}"


def dollars(value):
    """Money for axes and tooltips: cents from a dollar up, four decimals below."""
    value = Decimal(str(value))
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) < Decimal("0.0001"):
        return "<$0.0001"
    return "$" + f"{value:.4f}".rstrip("0").ljust(4, "0")  # $0.60, $0.0125


def axis_label(fmt, value, step):
    """A grid line's label. Money gets as many decimals as the step needs, so no two lines share a
    label (the tooltip rounding would call $0.000025 … $0.000125 all "$0.0001" or "<$0.0001")."""
    if fmt is not dollars or value == 0:
        return fmt(value)
    decimals = max(2, -Decimal(f"{step:.12g}").normalize().as_tuple().exponent)
    return f"${Decimal(f'{value:.12g}'):,.{decimals}f}"


def milliseconds(value):
    """Latency for axes and tooltips."""
    return f"{float(value) / 1000:.1f} s" if value >= 10_000 else f"{float(value):.0f} ms"


FORMATS = {"count": compact, "money": dollars, "ms": milliseconds}


def _segments(values):
    """Runs of consecutive (index, value) pairs without gaps (None)."""
    run = []
    for index, value in enumerate(values):
        if value is None:
            if run:
                yield run
            run = []
        else:
            run.append((index, float(value)))
    if run:
        yield run


def _path(run, x, y, area):
    """SVG path data of one run of points (closed down to zero for an area)."""
    points = " L".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
    if not area:
        return f"M{points}" if len(run) > 1 else f"M{x(run[0][0]) - 1:.1f},{y(run[0][1]):.1f} L{points}"
    base = y(0)
    return f"M{x(run[0][0]):.1f},{base:.1f} L{points} L{x(run[-1][0]):.1f},{base:.1f} Z"


def time_chart(points, series, unit, label):
    """An SVG chart of evenly spaced points; ``series`` are (key, name, css class, "area"|"line")."""
    fmt = FORMATS[unit]
    count = len(points)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = {key: [p[key] for p in points] for key, *_ in series}
    highest = max((float(v) for vs in values.values() for v in vs if v is not None), default=0)
    step = nice_ceiling(highest / GRID_STEPS)  # round steps make round axis labels
    steps = max(math.ceil(highest / step), 1)
    top = step * steps

    def x(index):
        """Horizontal position of point ``index``."""
        return LEFT + index * plot_w / max(count - 1, 1)

    def y(value):
        """Vertical position of ``value``."""
        return TOP + plot_h - plot_h * value / top

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    for index in range(steps + 1):
        value = step * index
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
        text = axis_label(fmt, value, step)
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{text}</text>')
    for index, point in enumerate(points):
        moment = point["bucket_start"]
        if moment.minute == 0 and moment.hour % 4 == 0:
            parts.append(f'<line class="tick" x1="{x(index):.1f}" x2="{x(index):.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>')
            parts.append(
                f'<text class="axis" x="{x(index):.1f}" y="{HEIGHT - 6}" text-anchor="middle">{moment:%H:%M}</text>'
            )
    for key, _name, css, kind in series:
        for run in _segments(values[key]):
            parts.append(f'<path class="{css} {kind}" d="{_path(run, x, y, kind == "area")}"/>')
    slot = plot_w / max(count - 1, 1)
    for index, point in enumerate(points):
        shown = " · ".join(f"{name} {'–' if point[key] is None else fmt(point[key])}" for key, name, *_ in series)
        parts.append(
            f'<rect class="hover" x="{x(index) - slot / 2:.1f}" y="{TOP}" width="{slot:.2f}" height="{plot_h}">'
            f"<title>{point['bucket_start']:%H:%M} UTC · {escape(shown)}</title></rect>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


BADGE_COLOURS = {"operational": "#2e9e5b", "degraded": "#d98a00", "outage": "#d64541", "unknown": "#8a8f98"}


def badge(label, message, state):
    """A shields-style status badge (two rounded halves, text in Verdana-ish metrics)."""
    left_w, right_w = 8 + 7 * len(label), 10 + 7 * len(message)
    total = left_w + right_w
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img"'
        f' aria-label="{escape(label)}: {escape(message)}"><title>{escape(label)}: {escape(message)}</title>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)">'
        f'<rect width="{left_w}" height="20" fill="#555"/>'
        f'<rect x="{left_w}" width="{right_w}" height="20" fill="{BADGE_COLOURS[state]}"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{left_w / 2}" y="14">{escape(label)}</text>'
        f'<text x="{left_w + right_w / 2}" y="14">{escape(message)}</text></g></svg>'
    )
