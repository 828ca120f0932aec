"""Client IP addresses in one spelling, so a block or an allowlist cannot be dodged by writing the
same address another way.

``2001:DB8::1``, ``2001:db8:0:0::1`` and ``2001:0db8::0001`` are one address; so are ``1.2.3.4``
and ``::ffff:1.2.3.4`` (how a dual-stack listener reports an IPv4 client). Every address the
gateway compares or keys something by (the request's client address, IP blocks in Redis and
Postgres, an admin's block or unblock, a key's allowlist check) goes through ``canonical_ip``.
"""

import ipaddress


def canonical_ip(text):
    """``text`` as the one spelling of its address (compressed, lower-case; an IPv4-mapped IPv6
    address as its IPv4 address), or None when it is not an IP address."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).compressed


class CanonicalClientAddress:
    """WSGI middleware: ``REMOTE_ADDR`` in its canonical spelling (left as it is when not an IP).

    Wrapped inside ProxyFix, so the address it takes from X-Forwarded-For is canonical too; every
    IP decision after it (blocks, allowlists, limits, audit rows, logs) reads one spelling.
    """

    def __init__(self, app):
        """Wrap the WSGI ``app``."""
        self.app = app

    def __call__(self, environ, start_response):
        """Rewrite the address, then call the wrapped app."""
        address = environ.get("REMOTE_ADDR")
        if address:
            environ["REMOTE_ADDR"] = canonical_ip(address) or address
        return self.app(environ, start_response)
