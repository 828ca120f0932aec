-- Which /v1 endpoint a usage record is for (chat completions, embeddings, the Responses API),
-- and the model that actually answered when a request named fallbacks (``models``): ``model``
-- stays the model asked for, ``served_model`` the one billed (NULL: the same).
ALTER TABLE usage_records
    ADD COLUMN endpoint text NOT NULL DEFAULT 'chat' CHECK (endpoint IN ('chat', 'embeddings', 'responses')),
    ADD COLUMN served_model text;

-- The day's totals per endpoint as well (their model is the billed one).
ALTER TABLE usage_daily_totals ADD COLUMN endpoint text NOT NULL DEFAULT 'chat';
ALTER TABLE usage_daily_totals DROP CONSTRAINT usage_daily_totals_pkey;
ALTER TABLE usage_daily_totals ADD PRIMARY KEY (user_id, day, model, endpoint);

-- The spend reports' daily rollups per endpoint too.
ALTER TABLE usage_key_daily ADD COLUMN endpoint text NOT NULL DEFAULT 'chat';
ALTER TABLE usage_tag_daily ADD COLUMN endpoint text NOT NULL DEFAULT 'chat';
