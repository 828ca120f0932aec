"""The foundation every domain builds on: settings, the Postgres pool (``pool``), connections per
block (``db``), prepared statements and migrations, the WHERE builder and page cursors of list
queries, Redis, logging, the error types, Flask extensions and the embedded servers."""
