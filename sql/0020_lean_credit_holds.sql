-- Every completion writes and deletes one credit_holds row, so the row is kept as cheap to write
-- as it can be: no secondary index (the table only ever holds the requests in flight, which the
-- scheduler's expiry scan reads whole) and no foreign key (users are never deleted, and the
-- check cost every hold a lookup and a row lock on the user it had just updated).
DROP INDEX credit_holds_expires_idx;
DROP INDEX credit_holds_user_idx;
ALTER TABLE credit_holds DROP CONSTRAINT credit_holds_user_id_fkey;
