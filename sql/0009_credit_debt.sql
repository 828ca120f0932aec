-- A completion is charged its real cost even when that exceeds what was held for it, so a
-- balance may go below zero: a debt that refuses further /v1 completions (402) until it is paid.
-- Admin debits still never take a balance below what is held (billing.queries.add_credits).
ALTER TABLE users DROP CONSTRAINT users_credits_check;

-- Whether a request's real cost exceeded its hold (the hold's bound was wrong, or the balance
-- went into debt): the event is kept with the usage it concerns.
ALTER TABLE usage_records ADD COLUMN exceeded_hold boolean NOT NULL DEFAULT false;
