"""API-key material: generation, HMAC hashing and masking. Keys are never stored in clear."""

import hashlib
import hmac
import re
import secrets

KEY_PATTERN = re.compile(r"^gw_(live|test)_[A-Za-z0-9_-]{32,128}$")
DISPLAY_PREFIX_LENGTH = 11  # "gw_live_" plus three characters


def generate_key(environment="live"):
    """A new key: ``gw_live_`` or ``gw_test_`` plus 43 url-safe random characters."""
    return f"gw_{environment}_{secrets.token_urlsafe(32)}"


def hash_key(secret, key):
    """HMAC-SHA256 of the key with KEY_HASH_SECRET (hex); what the database stores."""
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def display_parts(key):
    """(prefix, last4) kept beside the hash so a key can be recognised but not used."""
    return key[:DISPLAY_PREFIX_LENGTH], key[-4:]


def mask(prefix, last4):
    """The masked form shown everywhere except the one-time reveal: ``gw_live_AbC…xYz9``."""
    return f"{prefix}…{last4}"


def mask_key(key):
    """Mask a full key."""
    return mask(*display_parts(key))


def token_prefix(token):
    """What of a presented (possibly bogus) token may be logged: its display prefix only."""
    return token[:DISPLAY_PREFIX_LENGTH] if token else ""
