-- The Anthropic Messages API (/v1/messages) is metered like the other endpoints.
ALTER TABLE usage_records DROP CONSTRAINT usage_records_endpoint_check;
ALTER TABLE usage_records ADD CONSTRAINT usage_records_endpoint_check
    CHECK (endpoint IN ('chat', 'embeddings', 'responses', 'messages'));
