"""Floor 0, the foundation every package builds on and that imports none of them: settings, the
Postgres pool (``connection_pool``) and connections per block (``db``), what every session must
give behind a pooler (``session_settings``), prepared statements and migrations, the WHERE builder,
Redis, logging, the error types, Flask extensions and the embedded servers."""
