"""Money: pricing a request, holding its worst case, settling what it really cost, and the
credit ledger every balance change is written to. Amounts are Decimal, never float."""
