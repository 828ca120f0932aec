"""Who may call the gateway: users, API keys (hashed, masked), authentication, the audit trail
of key events, and the request-path IP guard (brute-force blocks, new-IP events). The SQL of
users, keys and the audit log is in ``queries``."""
