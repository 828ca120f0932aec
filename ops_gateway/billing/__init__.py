"""Floor 2, money: pricing a request, holding its worst case, settling what upstream billed,
budgets, reconciliation of cut streams, and the credit ledger every balance change is written to.
Amounts are Decimal, never float. The SQL is in ``queries``, ``budget_queries`` and
``reconciliation_queries``."""
