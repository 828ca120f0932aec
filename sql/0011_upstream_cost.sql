-- What OpenRouter reported a request cost (``usage.cost``, asked for with usage.include), kept
-- beside what we charged so the two can be reconciled; NULL when upstream reported nothing.
ALTER TABLE usage_records ADD COLUMN upstream_cost numeric(20, 10);

-- The day's reconciliation figures: upstream's reported cost, and our cost of the same requests.
ALTER TABLE usage_daily_totals
    ADD COLUMN upstream_cost numeric(24, 10) NOT NULL DEFAULT 0,
    ADD COLUMN cost_upstream_reported numeric(24, 10) NOT NULL DEFAULT 0,
    ADD COLUMN upstream_reported integer NOT NULL DEFAULT 0;
