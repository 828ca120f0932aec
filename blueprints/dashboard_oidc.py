"""/dashboard/login/oidc: dashboard sign-in through an OpenID Connect provider (off unless OIDC_ISSUER is set).

The authorization code flow with PKCE, state and nonce, through Authlib's Flask client. Who may
sign in is ``ops_gateway.dashboard.oidc_admins``'s rule; success opens the same session the key
sign-in opens. The pending sign-in (state, nonce, PKCE verifier) waits in a cookie of its own,
signed with SECRET_KEY and ``SameSite=Lax``: the provider sends the browser back with a cross-site
navigation, which never carries the ``SameSite=Strict`` dashboard cookie where Authlib would keep it.
For the same reason a successful callback answers with a page that moves on to the dashboard
itself: a redirect there would still belong to the cross-site navigation, and arrive without the
session it just set.
"""

import hmac

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import FlaskIntegration, FlaskOAuth2App
from authlib.integrations.requests_client import OAuth2Session
from flask import Blueprint, abort, current_app, make_response, redirect, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc.errors import JoseError
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from blueprints import dashboard_session as dashboard_auth
from blueprints.dashboard import protect, safe_next
from blueprints.envelope import response_headers, status_of
from ops_gateway.core.errors import GatewayError
from ops_gateway.dashboard import oidc_admins
from ops_gateway.dashboard import sessions as dashboard_sessions

blp = Blueprint("dashboard_oidc", __name__, url_prefix="/dashboard/login/oidc", template_folder="templates")
protect(blp, public_endpoints=("dashboard_oidc.start", "dashboard_oidc.callback"))

EXTENSION = "ops_gateway.oidc"
FLOW_COOKIE = "gw_dashboard_oidc"
FLOW_SECONDS = 600  # how long a started sign-in may take at the provider
PROVIDER_TIMEOUT_SECONDS = 10


class ProviderSession(OAuth2Session):
    """Authlib's requests session with one retry of a failed discovery, key or userinfo GET; the
    token request is retried only when it was never sent (an authorization code works once)."""

    def __init__(self, *args, **kwargs):
        """Mount the bounded retry on both schemes."""
        super().__init__(*args, **kwargs)
        retry = Retry(
            total=1,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=(502, 503, 504),
            backoff_factor=0.25,
            raise_on_status=False,
        )
        for scheme in ("https://", "http://"):
            self.mount(scheme, HTTPAdapter(max_retries=retry))


class ProviderClient(FlaskOAuth2App):
    """Authlib's Flask OAuth 2 / OpenID client on the retrying, time-limited session."""

    client_cls = ProviderSession


@blp.record_once
def _set_up_client(state):
    """Build the provider's client once per app when OIDC_ISSUER is set; discovery and the signing
    keys are fetched on first use and kept (new keys are fetched when a token names an unknown one)."""
    config = state.app.config
    if config.get("OIDC_ISSUER"):
        state.app.extensions[EXTENSION] = ProviderClient(
            FlaskIntegration("oidc"),
            name="oidc",
            client_id=config["OIDC_CLIENT_ID"],
            client_secret=config["OIDC_CLIENT_SECRET"],
            server_metadata_url=f"{config['OIDC_ISSUER']}/.well-known/openid-configuration",
            client_kwargs={
                "scope": "openid email",
                "code_challenge_method": "S256",
                "default_timeout": PROVIDER_TIMEOUT_SECONDS,
            },
        )


@blp.before_request
def _only_when_configured():
    """404 for every route here while OIDC sign-in is off."""
    if EXTENSION not in current_app.extensions:
        abort(404)


def _client():
    """This app's provider client."""
    return current_app.extensions[EXTENSION]


def _flow_serializer():
    """Signs the pending sign-in's cookie with SECRET_KEY (a salt of its own: no other cookie verifies)."""
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="ops-gateway-dashboard-oidc")


def _refusal(reason):
    """The audited refusal of this request for ``reason`` (``oidc_admins.refusal``)."""
    return oidc_admins.refusal(reason, request.remote_addr, request.path)


@blp.route("")
def start():
    """Send the browser to the provider to sign in (authorization code with PKCE, state and nonce)."""
    scheme = "https" if dashboard_auth.forwarded_https() else "http"
    redirect_uri = url_for("dashboard_oidc.callback", _external=True, _scheme=scheme)
    try:
        flow = _client().create_authorization_url(redirect_uri)
    except (requests.RequestException, ValueError, RuntimeError):  # unreachable, or no usable discovery document
        return _login_page(_refusal("provider_unavailable"))
    pending = {key: flow[key] for key in ("state", "nonce", "code_verifier")}
    pending.update(redirect_uri=redirect_uri, next=request.args.get("next", ""))
    response = redirect(flow["url"])
    response.set_cookie(
        FLOW_COOKIE,
        _flow_serializer().dumps(pending),
        max_age=FLOW_SECONDS,
        path=blp.url_prefix,
        secure=dashboard_auth.forwarded_https(),
        httponly=True,
        samesite="Lax",  # sent on the provider's top-level redirect back to the callback
    )
    return response


def _pending_flow():
    """The sign-in this browser started here within FLOW_SECONDS, or None."""
    try:
        return _flow_serializer().loads(request.cookies.get(FLOW_COOKIE, ""), max_age=FLOW_SECONDS)
    except BadSignature:  # also an expired or missing cookie
        return None


def _verified_claims(flow):
    """The ID token's verified claims (email ones from userinfo when the token lacks them); refuse otherwise."""
    if flow is None or not hmac.compare_digest(flow["state"].encode(), request.args.get("state", "").encode()):
        raise _refusal("state_mismatch")
    if "error" in request.args or not request.args.get("code"):
        raise _refusal("provider_error")
    client = _client()
    try:
        token = client.fetch_access_token(
            redirect_uri=flow["redirect_uri"], code=request.args["code"], code_verifier=flow["code_verifier"]
        )
        claims = client.parse_id_token(token, nonce=flow["nonce"])
        if claims is not None and not {"email", "email_verified"} <= claims.keys():
            userinfo = client.userinfo(token=token)
            if userinfo.get("sub") != claims["sub"]:  # OIDC Core 5.3.2: else it is someone else's
                raise _refusal("invalid_id_token")
            claims = {**claims, **{key: userinfo[key] for key in ("email", "email_verified") if key in userinfo}}
    except OAuthError as error:  # the token endpoint refused the code
        raise _refusal("provider_error") from error
    except (requests.RequestException, RuntimeError) as error:
        raise _refusal("provider_unavailable") from error
    except (JoseError, ValueError) as error:  # signature, issuer, audience, expiry or nonce
        raise _refusal("invalid_id_token") from error
    if claims is None:
        raise _refusal("invalid_id_token")
    return claims


@blp.route("/callback")
def callback():
    """Finish the sign-in the provider sent the browser back from; the sign-in page with the reason when refused."""
    flow = _pending_flow()
    try:
        identity = oidc_admins.admit(_verified_claims(flow), request.remote_addr, request.path)
    except GatewayError as error:
        response = _login_page(error)
    else:
        dashboard_auth.start_session(dashboard_sessions.open_session(identity))
        target = safe_next(flow.get("next"))
        response = make_response(render_template("dashboard/signed_in.html", target=target, email=identity["email"]))
    response.delete_cookie(FLOW_COOKIE, path=blp.url_prefix, secure=dashboard_auth.forwarded_https(), httponly=True)
    return response


def _login_page(error):
    """The sign-in page saying why, with the refusal's status."""
    page = render_template("dashboard/login.html", error=error.message, next="")
    return make_response(page, status_of(error), response_headers(error))
