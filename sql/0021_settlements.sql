-- Exactly-once settlement, enforced here rather than by the code path that happens to run once.
-- Every metered request gets a settlement id from the gateway (never from the client, whose
-- X-Request-ID may repeat); the settlement statement first claims it in ``settlements`` and
-- charges, records and releases only when the claim is new, so a second settlement of the same
-- request (a retry after an error, two code paths) changes nothing.
CREATE TABLE settlements (
    id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE usage_records ADD COLUMN settlement_id uuid;

-- A ledger row names the settlement it belongs to; each settlement has at most one row of each
-- kind: its charge ('usage') and its reconciliation with upstream's bill ('usage_reconciled').
ALTER TABLE credit_transactions ADD COLUMN settlement_id uuid;
CREATE UNIQUE INDEX credit_transactions_settlement_idx ON credit_transactions (settlement_id, kind)
    WHERE settlement_id IS NOT NULL;
ALTER TABLE credit_transactions DROP CONSTRAINT credit_transactions_kind_check;
ALTER TABLE credit_transactions ADD CONSTRAINT credit_transactions_kind_check
    CHECK (kind IN ('grant', 'debit', 'usage', 'usage_reconciled', 'refund', 'initial'));

-- Requests settled before upstream reported their cost (a stream cut by the client, upstream,
-- a revocation or the maximum duration; an answer without usage.cost), charged provisionally at
-- their prompt bound plus the output delivered. ``reconcile_generations`` asks OpenRouter for the
-- generation's total_cost, retried with backoff (it is posted a moment after the request ends),
-- and moves the difference in one transaction that deletes this row: reconciled once.
CREATE TABLE generation_lookups (
    settlement_id uuid PRIMARY KEY,
    generation_id text NOT NULL,
    request_id text NOT NULL,
    user_id bigint NOT NULL,
    api_key_id bigint,
    usage_id bigint NOT NULL,
    usage_created_at timestamptz NOT NULL,
    model text NOT NULL,  -- the billed model, as usage_daily_totals names it
    endpoint text NOT NULL,
    charged numeric(20, 10) NOT NULL,  -- the provisional charge
    markup numeric(12, 6) NOT NULL,  -- BILLING_MARKUP when it was settled
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX generation_lookups_due_idx ON generation_lookups (next_attempt_at);
