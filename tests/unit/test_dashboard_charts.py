"""The dashboard's SVG charts: axis labels that tell the grid lines apart."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from blueprints.dashboard_charts import time_chart


def axis_labels(svg):
    """The y-axis labels (text-anchor end), bottom to top."""
    return re.findall(r'text-anchor="end">([^<]*)</text>', str(svg))


def cost_chart(costs):
    """A cost chart of one point per minute with the given values."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    points = [{"bucket_start": start + timedelta(minutes=i), "cost": cost} for i, cost in enumerate(costs)]
    return time_chart(points, [("cost", "cost", "cost", "area")], "money", "cost")


@pytest.mark.parametrize("highest", ["0.000125", "0.00003", "0.0004", "0.07", "3.5", "1250"])
def test_cost_axis_labels_are_all_different(highest):
    labels = axis_labels(cost_chart(["0", highest]))
    assert labels[0] == "$0" and len(labels) >= 2
    assert len(set(labels)) == len(labels), labels


def test_small_cost_axis_shows_the_step_exactly():
    assert axis_labels(cost_chart(["0", "0.000125"])) == [
        "$0",
        "$0.000025",
        "$0.000050",
        "$0.000075",
        "$0.000100",
        "$0.000125",
    ]


def test_cost_axis_in_dollars_keeps_cents():
    assert axis_labels(cost_chart(["0", "3.5"]))[1] == "$1.00"
