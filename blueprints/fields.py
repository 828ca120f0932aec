"""Custom marshmallow fields used across schemas."""

from decimal import Decimal, InvalidOperation

import marshmallow as ma

from ops_gateway.billing.money import format_money


class Money(ma.fields.Field):
    """USD amount: accepted as a string or number, returned as a decimal string."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {}).update({"type": "string", "format": "decimal", "example": "5.00"})
        super().__init__(**kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else format_money(value)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ma.ValidationError("must be a decimal amount")
        try:
            amount = Decimal(str(value))
        except InvalidOperation as exc:
            raise ma.ValidationError('must be a decimal amount such as "5.00"') from exc
        if not amount.is_finite() or abs(amount) >= Decimal("1e9"):
            raise ma.ValidationError("must be a finite amount below 1,000,000,000")
        if amount.as_tuple().exponent < -10:
            raise ma.ValidationError("at most 10 decimal places")
        return amount


class Timestamp(ma.fields.DateTime):
    """ISO 8601 timestamp with UTC offset."""

    def __init__(self, **kwargs):
        super().__init__(format="iso", **kwargs)
