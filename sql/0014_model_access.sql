-- Which models a key may use: exact ids or glob patterns ("openai/*"); empty means every model.
-- The user's list, set by an admin, is a ceiling over all their keys: a model must pass both.
ALTER TABLE api_keys ADD COLUMN allowed_models text[] NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN allowed_models text[] NOT NULL DEFAULT '{}';
