"""One rule for every CSV cell the gateway exports (the audit report and the dashboard's logs)."""

import json

# A spreadsheet would run a cell starting with one of these as a formula (user agents, key names
# and event details are attacker-chosen).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """One cell: JSON for structures, ISO 8601 for times, empty for NULL, formulas defused."""
    if isinstance(value, dict | list):
        value = json.dumps(value, separators=(",", ":"), default=str)
    elif hasattr(value, "isoformat"):
        value = value.isoformat()
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text
