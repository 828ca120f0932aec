"""The foundation every domain builds on: settings, the Postgres pool and migrations, Redis,
logging, the error types, Flask extensions, per-request plumbing and the embedded servers."""
