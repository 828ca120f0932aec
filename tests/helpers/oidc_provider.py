"""A small OpenID Connect provider on 127.0.0.1 for the dashboard's OIDC sign-in tests.

It answers as a real provider does (OpenID Connect Core 1.0, Discovery 1.0, RFC 6749 and RFC 7636
for PKCE): discovery; an authorization endpoint that approves at once as ``provider.email`` or,
with ``consent`` set, first shows a page whose "Allow" button posts to the provider, which then
redirects back (so that navigation starts on the provider's site, as after a real sign-in form),
and that refuses a redirect URI outside ``redirect_uris`` once those are registered; a token
endpoint that checks the client's secret (HTTP Basic or form), the code, its redirect URI and the
PKCE verifier, and returns an RS256 ID token with iss, sub, aud, exp, iat, nonce, email and
email_verified; the signing key (made at start) at ``/jwks``; and ``/userinfo`` for the access
token. Tests change ``email``, ``email_verified`` or ``email_in_id_token`` between sign-ins.
"""

import base64
import hashlib
import secrets
import threading
import time
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import RSAKey
from markupsafe import escape
from werkzeug.serving import make_server

CONSENT_PAGE = """<!doctype html><html><head><title>Sign in</title></head><body>
<form method="post" action="/authorize/approve"><input type="hidden" name="request" value="{request_id}">
<p>Sign in to ops-gateway as {email}?</p><button type="submit" id="approve">Allow</button></form></body></html>"""


class OidcProvider:
    """The provider's state: its client, who signs in, and the codes and tokens it has issued."""

    def __init__(self, client_id, client_secret, email):
        self.client_id, self.client_secret = client_id, client_secret
        self.email, self.email_verified, self.email_in_id_token = email, True, True
        self.issuer = None  # set once the server has its port
        self.redirect_uris = None  # the client's registered redirect URIs; None accepts any
        self.consent = False  # True: ask on a page before redirecting back
        self.pending = {}  # consent asked for: request id -> the authorization request
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})
        self.codes, self.access_tokens = {}, {}
        self.token_requests = 0
        self.app = self._build_app()

    def subject(self):
        """The stable subject identifier of the current email."""
        return hashlib.sha256(self.email.encode()).hexdigest()[:24]

    def id_token(self, grant):
        """An RS256-signed ID token for a code's grant."""
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": grant["sub"], "aud": self.client_id, "iat": now, "exp": now + 300}
        claims["nonce"] = grant["nonce"]
        if self.email_in_id_token:
            claims.update(email=grant["email"], email_verified=grant["email_verified"])
        return jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)

    def _client_authenticated(self):
        """Whether the token request carries this client's id and secret (HTTP Basic or form fields)."""
        auth, form = request.authorization, request.form
        given = (auth.username, auth.password) if auth else (form.get("client_id"), form.get("client_secret"))
        return given == (self.client_id, self.client_secret)

    def _approve(self, args):
        """Issue a code for the authorization request ``args`` as ``email`` and redirect back with it."""
        code = secrets.token_urlsafe(24)
        self.codes[code] = {
            "redirect_uri": args["redirect_uri"],
            "challenge": args.get("code_challenge", ""),
            "nonce": args.get("nonce"),
            "sub": self.subject(),
            "email": self.email,
            "email_verified": self.email_verified,
        }
        return redirect(f"{args['redirect_uri']}?{urlencode({'code': code, 'state': args.get('state', '')})}")

    def _build_app(self):
        app = Flask("oidc_provider")

        @app.get("/.well-known/openid-configuration")
        def discovery():
            return jsonify(
                issuer=self.issuer,
                authorization_endpoint=f"{self.issuer}/authorize",
                token_endpoint=f"{self.issuer}/token",
                jwks_uri=f"{self.issuer}/jwks",
                userinfo_endpoint=f"{self.issuer}/userinfo",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                code_challenge_methods_supported=["S256"],
                token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
                scopes_supported=["openid", "email"],
            )

        @app.get("/jwks")
        def jwks():
            return jsonify(keys=[self.key.as_dict(private=False)])

        @app.get("/authorize")
        def authorize():
            args = request.args
            if args.get("client_id") != self.client_id or not args.get("redirect_uri"):
                return jsonify(error="invalid_request"), 400  # never redirect to an unknown client
            if self.redirect_uris is not None and args["redirect_uri"] not in self.redirect_uris:
                return jsonify(error="invalid_request"), 400  # nor to a URI the client never registered
            if args.get("response_type") != "code" or args.get("code_challenge_method") != "S256":
                query = {"error": "unsupported_response_type", "state": args.get("state", "")}
                return redirect(f"{args['redirect_uri']}?{urlencode(query)}")
            if self.consent:
                request_id = secrets.token_urlsafe(16)
                self.pending[request_id] = args.to_dict()
                return CONSENT_PAGE.format(request_id=request_id, email=escape(self.email))
            return self._approve(args)

        @app.post("/authorize/approve")
        def approve():
            args = self.pending.pop(request.form.get("request", ""), None)
            if args is None:
                return jsonify(error="invalid_request"), 400
            return self._approve(args)

        @app.post("/token")
        def token():
            if not self._client_authenticated():
                return jsonify(error="invalid_client"), 401
            self.token_requests += 1
            grant = self.codes.pop(request.form.get("code", ""), None)  # a code works once
            verifier = request.form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if (
                request.form.get("grant_type") != "authorization_code"
                or grant is None
                or grant["redirect_uri"] != request.form.get("redirect_uri")
                or not secrets.compare_digest(challenge, grant["challenge"])
            ):
                return jsonify(error="invalid_grant"), 400
            access_token = secrets.token_urlsafe(24)
            self.access_tokens[access_token] = grant
            body = {"access_token": access_token, "token_type": "Bearer", "expires_in": 300}
            return jsonify({**body, "id_token": self.id_token(grant)}), 200, {"Cache-Control": "no-store"}

        @app.get("/userinfo")
        def userinfo():
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            grant = self.access_tokens.get(given) if scheme.lower() == "bearer" else None
            if grant is None:
                return "", 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return jsonify(sub=grant["sub"], email=grant["email"], email_verified=grant["email_verified"])

        return app


@contextmanager
def oidc_provider(client_id, client_secret, email, host="127.0.0.1"):
    """Serve an ``OidcProvider`` on a free port of 127.0.0.1 for the block; yield it (``issuer`` set).

    ``host`` names the server in its issuer URL: ``localhost`` makes the provider another site than
    a gateway on 127.0.0.1 for a browser (a site ignores the port), as a real provider is; then the
    way back from its consent page to the gateway is a cross-site navigation.
    """
    provider = OidcProvider(client_id, client_secret, email)
    server = make_server("127.0.0.1", 0, provider.app, threaded=True)
    provider.issuer = f"http://{host}:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        thread.join()


def sign_in_with_oidc(client, state=None):
    """Walk the gateway's test ``client`` through OIDC sign-in: start, let the provider approve
    (over real HTTP), then return the gateway's answer to the callback (``state`` replaces the one
    the provider sent back)."""
    started = client.get("/dashboard/login/oidc")
    assert started.status_code == 302, started.get_data(as_text=True)[:500]
    approved = requests.get(started.headers["Location"], allow_redirects=False, timeout=10)
    assert approved.status_code == 302, approved.text
    callback = urlsplit(approved.headers["Location"])
    query = dict(parse_qsl(callback.query))
    if state is not None:
        query["state"] = state
    return client.get(f"{callback.path}?{urlencode(query)}")
