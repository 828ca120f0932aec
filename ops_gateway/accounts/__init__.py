"""Floor 4, who may call the gateway: users, API keys (hashed and masked, ``key_material``),
authentication, key grants (budgets, scopes, models) and which models a key may use. The SQL
of users and keys is in ``queries``."""
