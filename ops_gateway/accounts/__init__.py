"""Who may call the gateway: users, API keys (hashed, masked), authentication, the audit trail
of key events, and the request-path IP guard (brute-force blocks, new-IP events)."""
