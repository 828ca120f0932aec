"""Money formatting: decimals as exact strings, never floats."""

from decimal import Decimal


def format_money(value):
    """Decimal as a plain string with at least two decimals and no float rounding: "5.00", "0.0000024"."""
    text = f"{Decimal(value).normalize():f}"
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"
