"""Which of a user's windows a longer window of the same kind caps: with 300 requests a minute and
100 an hour, no minute can ever see more than 100, so the minute window never binds.

Only a limit above a longer window's own limit is reported, not one whose rate kept up for the
longer window would exceed it: every stock plan allows bursts that way (trial: 10 a minute, 100 an
hour), and a warning about windows nobody touched would teach operators to ignore the field.
Pure arithmetic over effective limits (``plans.effective_limits``), so every surface that changes
limits warns the same way.
"""

from ops_gateway.limits.windows import KINDS, WINDOWS


def capped_windows(limits):
    """A warning for each window whose limit exceeds a longer window's of its kind (``limits``:
    {window: effective limit}). Only the shortest such longer window is named: the one the user
    runs into first. Empty when nothing is capped."""
    warnings = []
    for kind in KINDS:
        windows = sorted((w for w in WINDOWS if w.kind is kind), key=lambda w: w.seconds)
        for i, window in enumerate(windows):
            longer = next((w for w in windows[i + 1 :] if limits[window.name] > limits[w.name]), None)
            if longer is not None:
                warnings.append(_warning(window, longer, limits))
    return warnings


def _warning(window, longer, limits):
    """One capped_by_longer_window warning, its message naming both limits."""
    return {
        "code": "capped_by_longer_window",
        "window": window.name,
        "capped_by": longer.name,
        "message": (
            f"{window.name} is {limits[window.name]:,}, above {longer.name} ({limits[longer.name]:,}):"
            f" no {window.unit} can reach it, so {longer.name} is the limit that binds"
        ),
    }
