-- Request tags (X-Gateway-Tags or metadata.tags: at most 10, each at most 64 characters), kept
-- with each usage record so spend can be reported per team, feature or whatever a caller tags.
ALTER TABLE usage_records ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
