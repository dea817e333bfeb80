"""Single sign-on over a stand-in provider: the whole flow, and each way it must refuse."""

import asyncio
import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from joserfc.jws import JWSRegistry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.api.api_v1.endpoints.sso import get_oidc_client
from app.clients import oidc as oidc_module
from app.core import security
from app.core.security import entitled_scopes, scope_string
from app.core.sso import SsoSettings, sso_settings
from app.crud import crud_identity
from app.main import app
from app.models import User
from app.models.identity import Identity, SsoCode
from app.services.sso import UNUSABLE_PASSWORD
from tests.utils.sso import (
    CLIENT_ID,
    ISSUER,
    FakeProvider,
    authorize,
    callback,
    callback_code,
    provider_settings,
)
from tests.utils.user import DEFAULT_PASSWORD, create_random_user
from tests.utils.utils import auth_headers

SSO = "/api/v1/auth/sso"


async def log_in(client: httpx2.AsyncClient, idp: FakeProvider, **claims: Any) -> dict[str, Any]:
    response = await callback(client, idp, **claims)
    assert response.status_code == 302, response.text
    exchanged = await client.post(
        f"{SSO}/exchange", json={"code": callback_code(response.headers["location"])}
    )
    assert exchanged.status_code == 200, exchanged.text
    body: dict[str, Any] = exchanged.json()
    return body


async def counts(db: AsyncSession) -> tuple[int, int, int]:
    return (
        await db.scalar(select(func.count()).select_from(User)) or 0,
        await db.scalar(select(func.count()).select_from(Identity)) or 0,
        await db.scalar(select(func.count()).select_from(SsoCode)) or 0,
    )


@pytest.mark.usefixtures("sso_config")
async def test_read_sso_providers_lists_the_enabled_ones(client: httpx2.AsyncClient) -> None:
    response = await client.get(f"{SSO}/providers")
    assert response.json() == [
        {"name": "test", "title": "Test IdP", "authorize_url": f"{SSO}/test/authorize"}
    ]


@pytest.mark.usefixtures("idp")
async def test_authorize_redirects_with_pkce_state_and_nonce_bound_to_a_cookie(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.get(f"{SSO}/test/authorize")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{ISSUER}/authorize"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == f"http://test{SSO}/test/callback"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 43
    assert len(query["nonce"]) >= 43
    assert query["scope"] == "openid email profile"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert f"path={SSO}" in cookie
    # The verifier stays with this service: only its challenge travels.
    assert "code_verifier" not in query


async def test_sso_login_creates_a_user_and_issues_this_services_tokens(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider
) -> None:
    tokens = await log_in(client, idp, sub="new-subject", email="New.Cook@Example.com")
    assert tokens["scope"] == scope_string(entitled_scopes(is_superuser=False))
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == "new.cook@example.com"
    user = await crud.user.get_by_email(db, email="new.cook@example.com")
    assert user is not None
    assert user.hashed_password == UNUSABLE_PASSWORD
    identity = await crud_identity.identity.get_by_subject(
        db, provider="test", subject="new-subject"
    )
    assert identity is not None
    assert identity.user_id == user.id
    # The refresh token works like a password login's.
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200


async def test_sso_login_again_finds_the_same_user(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider
) -> None:
    await log_in(client, idp, sub="returning", email="returning@example.com")
    before = await counts(db)
    # The provider may report a changed email: the identity, not the email, finds the user.
    await log_in(client, idp, sub="returning", email="renamed@example.com")
    after = await counts(db)
    assert after[:2] == before[:2]
    assert await crud.user.get_by_email(db, email="renamed@example.com") is None


async def test_callback_redirects_with_the_code_in_the_fragment_and_a_cookie(
    client: httpx2.AsyncClient, idp: FakeProvider
) -> None:
    response = await callback(client, idp)
    location = response.headers["location"]
    assert location.startswith("/?sso=done#sso_code=")
    # The code travels in the fragment, which browsers never send to a server or its logs.
    assert urlsplit(location).query == "sso=done"
    cookies = response.headers.get_list("set-cookie")
    assert any(c.startswith("sso_flow=") and "max-age=0" in c.lower() for c in cookies)
    code_cookie = next(c for c in cookies if c.startswith("sso_code="))
    assert "httponly" in code_cookie.lower()
    assert "samesite=strict" in code_cookie.lower()
    # The HTML page's way: no body, the cookie carries the code.
    exchanged = await client.post(f"{SSO}/exchange")
    assert exchanged.status_code == 200, exchanged.text
    assert "access_token" in exchanged.json()


async def test_exchange_code_works_once(client: httpx2.AsyncClient, idp: FakeProvider) -> None:
    response = await callback(client, idp)
    code = callback_code(response.headers["location"])
    assert (await client.post(f"{SSO}/exchange", json={"code": code})).status_code == 200
    again = await client.post(f"{SSO}/exchange", json={"code": code})
    assert again.status_code == 400
    assert again.json() == {"detail": "Invalid, used or expired sign-in code"}


async def test_exchange_code_is_stored_hashed_and_expires(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider
) -> None:
    response = await callback(client, idp)
    code = callback_code(response.headers["location"])
    row = (await db.scalars(select(SsoCode).order_by(SsoCode.id.desc()))).first()
    assert row is not None
    assert code not in row.code_hash
    row.expires_at = row.created_at
    await db.commit()
    expired = await client.post(f"{SSO}/exchange", json={"code": code})
    assert expired.status_code == 400


async def test_exchange_without_a_code_is_refused(client: httpx2.AsyncClient) -> None:
    response = await client.post(f"{SSO}/exchange", json={})
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid, used or expired sign-in code"}


async def test_verified_email_links_to_the_existing_account(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider
) -> None:
    user = await create_random_user(db)
    tokens = await log_in(client, idp, email=user.email, email_verified=True)
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.json()["id"] == user.id
    # The password still works beside the new identity.
    login = await client.post(
        "/api/v1/auth/login", data={"username": user.email, "password": DEFAULT_PASSWORD}
    )
    assert login.status_code == 200


async def test_unverified_email_meeting_an_existing_account_is_refused(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider
) -> None:
    user = await create_random_user(db)
    before = await counts(db)
    response = await callback(client, idp, email=user.email, email_verified=False)
    assert response.status_code == 409
    assert "has not verified the email" in response.json()["detail"]
    assert await counts(db) == before


@pytest.mark.parametrize(
    "problem",
    ["no cookie", "wrong state", "no state", "other provider's flow", "forged cookie"],
)
async def test_callback_without_this_browsers_state_is_refused(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider, problem: str
) -> None:
    query = idp.login(await authorize(client))
    if problem == "no cookie":
        client.cookies.clear()
    elif problem == "wrong state":
        query = query.split("&state=")[0] + "&state=someone-elses"
    elif problem == "no state":
        query = query.split("&state=")[0]
    elif problem == "other provider's flow":
        sso_settings.SSO_PROVIDERS.append(provider_settings("other"))
        query = idp.login(await authorize(client, "other"))
    else:
        client.cookies.clear()
        client.cookies.set("sso_flow", "eyJhbGciOiJub25lIn0.e30.")
    before = await counts(db)
    response = await client.get(f"{SSO}/test/callback?{query}")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Sign-in state missing, expired or not from this browser: start again"
    }
    assert await counts(db) == before


async def test_callback_naming_another_issuer_is_refused(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider
) -> None:
    query = idp.login(await authorize(client))
    before = await counts(db)
    response = await client.get(f"{SSO}/test/callback?{query}&iss=https://evil.example.test")
    assert response.status_code == 400
    assert "another issuer" in response.json()["detail"]
    assert await counts(db) == before
    assert "/token" not in idp.hits
    # The right issuer, as RFC 9207 providers send it, passes.
    accepted = await client.get(f"{SSO}/test/callback?{query}&iss={ISSUER}")
    assert accepted.status_code == 302


async def test_replayed_authorization_code_is_refused(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider
) -> None:
    location = await authorize(client)
    flow = client.cookies["sso_flow"]
    query = idp.login(location)
    assert (await client.get(f"{SSO}/test/callback?{query}")).status_code == 302
    before = await counts(db)
    # Even with the browser's state put back, the code is spent at the provider.
    client.cookies.set("sso_flow", flow)
    replay = await client.get(f"{SSO}/test/callback?{query}")
    assert replay.status_code == 400
    assert "refused the authorization code" in replay.json()["detail"]
    assert await counts(db) == before


@pytest.mark.usefixtures("idp")
async def test_provider_error_in_the_callback_is_a_clear_400(client: httpx2.AsyncClient) -> None:
    location = await authorize(client)
    state = parse_qs(urlsplit(location).query)["state"][0]
    response = await client.get(f"{SSO}/test/callback?error=access_denied&state={state}")
    assert response.status_code == 400
    assert response.json() == {"detail": "The provider did not sign you in: access_denied"}


def _rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, {"kid": "k1"}, private=True)


TAMPERS: dict[str, Any] = {
    "wrong nonce": lambda c: c | {"nonce": "another-nonce"},
    "no nonce": lambda c: {k: v for k, v in c.items() if k != "nonce"},
    "other issuer": lambda c: c | {"iss": "https://evil.example.test"},
    "other audience": lambda c: c | {"aud": "another-client"},
    "audiences without azp": lambda c: c | {"aud": [CLIENT_ID, "another-client"]},
    "other azp": lambda c: c | {"azp": "another-client"},
    "expired": lambda c: c | {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
    "issued in the future": lambda c: c | {"iat": int(time.time()) + 3600},
    "no exp": lambda c: {k: v for k, v in c.items() if k != "exp"},
}


@pytest.mark.parametrize("case", list(TAMPERS))
async def test_invalid_id_token_claims_are_refused(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider, case: str
) -> None:
    idp.tamper = TAMPERS[case]
    before = await counts(db)
    response = await callback(client, idp)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("The provider's ID token is invalid")
    assert await counts(db) == before


def _forge(case: str, idp: FakeProvider, claims: dict[str, Any]) -> str:
    header = {"kid": str(idp.key.kid)}
    if case == "tampered payload":
        token = jwt.encode({"alg": "ES256"} | header, claims, idp.key)
        head, _, signature = token.split(".")
        other = jwt.encode({"alg": "ES256"} | header, claims | {"sub": "admin"}, idp.key)
        return f"{head}.{other.split('.')[1]}.{signature}"
    if case == "another key":
        stranger = ECKey.generate_key("P-256", {"kid": header["kid"]}, private=True)
        return jwt.encode({"alg": "ES256"} | header, claims, stranger)
    if case == "alg none":

        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        return f"{part({'alg': 'none'} | header)}.{part(claims)}."
    # HS256 "signed" with the provider's public key as the HMAC secret.
    public = json.dumps(idp.key.as_dict(private=False)).encode()
    registry = JWSRegistry(algorithms=["HS256"])
    return jwt.encode(
        {"alg": "HS256"} | header, claims, OctKey.import_key(public), registry=registry
    )


@pytest.mark.parametrize("case", ["tampered payload", "another key", "alg none", "hs256 public"])
async def test_forged_id_token_is_refused(
    client: httpx2.AsyncClient,
    db: AsyncSession,
    idp: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    def forged(claims: dict[str, Any], nonce: str, **_: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": CLIENT_ID, "iat": now, "exp": now + 300}
        return _forge(case, idp, payload | {"nonce": nonce} | claims)

    monkeypatch.setattr(idp, "id_token", forged)
    before = await counts(db)
    response = await callback(client, idp)
    assert response.status_code == 400, response.text
    assert response.json() == {"detail": "The provider's ID token is invalid: signature or format"}
    assert await counts(db) == before


async def test_rotated_signing_key_is_fetched_again(
    client: httpx2.AsyncClient, idp: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oidc_module, "MIN_REFETCH_SECONDS", 0.0)
    await log_in(client, idp)
    assert idp.hits["/jwks"] == 1
    idp.key = ECKey.generate_key("P-256", {"kid": "k2"}, private=True)
    await log_in(client, idp)
    assert idp.hits["/jwks"] == 2
    # Cached while the key is known.
    await log_in(client, idp)
    assert idp.hits["/jwks"] == 2


async def test_unknown_key_id_refetches_at_most_once_in_a_while(
    client: httpx2.AsyncClient, idp: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oidc_module, "MIN_REFETCH_SECONDS", 0.2)
    await log_in(client, idp)
    await asyncio.sleep(0.3)
    real = idp.id_token
    monkeypatch.setattr(idp, "id_token", lambda claims, nonce: real(claims, nonce, kid="made-up"))
    for _ in range(3):
        assert (await callback(client, idp)).status_code == 400
    assert idp.hits["/jwks"] == 2


async def test_rsa_signed_id_token_is_accepted(
    client: httpx2.AsyncClient, idp: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _rsa_key()
    monkeypatch.setattr(idp, "key", key)

    def rsa_signed(claims: dict[str, Any], nonce: str) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": nonce}
        return jwt.encode({"alg": "RS256", "kid": "k1"}, payload | claims, key)

    monkeypatch.setattr(idp, "id_token", rsa_signed)
    tokens = await log_in(client, idp)
    assert tokens["token_type"] == "bearer"


async def test_email_from_userinfo_when_the_id_token_lacks_it(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider
) -> None:
    idp.email_in_id_token = False
    await log_in(client, idp, email="from-userinfo@example.com")
    assert await crud.user.get_by_email(db, email="from-userinfo@example.com") is not None
    assert idp.hits["/userinfo"] == 1


async def test_no_email_anywhere_is_refused(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider
) -> None:
    idp.email_in_id_token = False
    before = await counts(db)
    response = await callback(client, idp, email="not an email")
    assert response.status_code == 400
    assert response.json() == {"detail": "The provider gave no usable email address"}
    assert await counts(db) == before


@pytest.mark.parametrize("linked", [True, False])
async def test_deactivated_user_cannot_log_in_with_sso(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider, linked: bool
) -> None:
    user = await create_random_user(db)
    if linked:
        await log_in(client, idp, sub="to-deactivate", email=user.email)
    user.is_active = False
    await db.commit()
    before = await counts(db)
    response = await callback(client, idp, sub="to-deactivate", email=user.email)
    assert response.status_code == 403
    assert response.json() == {"detail": "This account is deactivated"}
    assert await counts(db) == before


async def test_user_deactivated_before_the_exchange_gets_no_tokens(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider
) -> None:
    response = await callback(client, idp, email="soon-gone@example.com")
    user = await crud.user.get_by_email(db, email="soon-gone@example.com")
    assert user is not None
    user.is_active = False
    await db.commit()
    code = callback_code(response.headers["location"])
    assert (await client.post(f"{SSO}/exchange", json={"code": code})).status_code == 400


@pytest.mark.parametrize("name", ["nope", "off"])
async def test_unknown_or_disabled_provider_is_404(
    client: httpx2.AsyncClient, idp: FakeProvider, name: str
) -> None:
    for step in ("authorize", "callback?code=c&state=s"):
        response = await client.get(f"{SSO}/{name}/{step}")
        assert response.status_code == 404
        assert response.json() == {"detail": "Unknown or disabled sign-in provider"}
    assert idp.hits == {}


@pytest.mark.parametrize("step", ["discovery", "token"])
async def test_provider_down_is_503(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider, step: str
) -> None:
    if step == "discovery":
        idp.down = True
        response = await client.get(f"{SSO}/test/authorize")
    else:
        query = idp.login(await authorize(client))
        idp.down = True
        before = await counts(db)
        response = await client.get(f"{SSO}/test/callback?{query}")
        assert await counts(db) == before
    assert response.status_code == 503
    assert response.json() == {"detail": "The sign-in provider is unavailable; try again later"}
    assert response.headers["retry-after"]


@pytest.mark.parametrize("fault", ["refused", "oversized", "not json"])
async def test_unreachable_provider_is_503(
    client: httpx2.AsyncClient, sso_config: SsoSettings, fault: str
) -> None:
    def answer(request: httpx2.Request) -> httpx2.Response:
        if fault == "refused":
            raise httpx2.ConnectError("connection refused", request=request)
        if fault == "oversized":
            return httpx2.Response(200, content=b" " * (oidc_module.MAX_BODY_BYTES + 1))
        return httpx2.Response(200, text="<html>")

    app.dependency_overrides[get_oidc_client] = lambda: oidc_module.OidcClient(
        httpx2.AsyncClient(transport=httpx2.MockTransport(answer)), sso_config
    )
    response = await client.get(f"{SSO}/test/authorize")
    assert response.status_code == 503
    assert response.json() == {"detail": "The sign-in provider is unavailable; try again later"}


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ({"issuer": "https://evil.example.test"}, "another issuer"),
        ({"id_token_signing_alg_values_supported": ["HS256", "none"]}, "no asymmetric alg"),
        ({"token_endpoint": None}, "lacks an endpoint"),
    ],
)
async def test_unusable_discovery_document_is_503(
    client: httpx2.AsyncClient,
    idp: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    document: dict[str, Any],
    why: str,
) -> None:
    real = idp.discovery()
    patched = {k: v for k, v in (real | document).items() if v is not None}
    monkeypatch.setattr(idp, "discovery", lambda: patched)
    response = await client.get(f"{SSO}/test/authorize")
    assert response.status_code == 503, why


async def test_list_and_unlink_identities(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider
) -> None:
    user = await create_random_user(db)
    await log_in(client, idp, sub="one", email=user.email)
    headers = auth_headers(user.id)
    listed = await client.get(f"{SSO}/identities", headers=headers)
    assert [(i["provider"], i["email"]) for i in listed.json()] == [("test", user.email)]
    identity_id = listed.json()[0]["id"]
    # Someone else cannot see or remove it.
    other = await create_random_user(db)
    stranger = await client.delete(
        f"{SSO}/identities/{identity_id}", headers=auth_headers(other.id)
    )
    assert stranger.status_code == 404
    assert (await client.get(f"{SSO}/identities", headers=auth_headers(other.id))).json() == []
    # The user has a password, so the identity may go.
    deleted = await client.delete(f"{SSO}/identities/{identity_id}", headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(f"{SSO}/identities", headers=headers)).json() == []


async def test_unlink_the_only_way_to_log_in_is_refused(
    client: httpx2.AsyncClient, db: AsyncSession, idp: FakeProvider
) -> None:
    tokens = await log_in(client, idp, sub="only-one")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    [identity] = (await client.get(f"{SSO}/identities", headers=headers)).json()
    response = await client.delete(f"{SSO}/identities/{identity['id']}", headers=headers)
    assert response.status_code == 409
    assert response.json() == {
        "detail": "This is your only way to log in: set a password before unlinking it"
    }
    # With a second identity, one of them may go.
    sso_settings.SSO_PROVIDERS.append(provider_settings("second"))
    query = idp.login(await authorize(client, "second"), sub="only-one")
    user = await crud_identity.identity.get_by_subject(db, provider="test", subject="only-one")
    assert user is not None
    # The second provider links by the same verified email.
    email = (await client.get("/api/v1/auth/me", headers=headers)).json()["email"]
    query = idp.login(await authorize(client, "second"), sub="only-one", email=email)
    assert (await client.get(f"{SSO}/second/callback?{query}")).status_code == 302
    response = await client.delete(f"{SSO}/identities/{identity['id']}", headers=headers)
    assert response.status_code == 204


async def test_sso_only_account_has_no_password_that_works(
    client: httpx2.AsyncClient, idp: FakeProvider
) -> None:
    await log_in(client, idp, email="sso-only@example.com")
    for password in (UNUSABLE_PASSWORD, "", DEFAULT_PASSWORD):
        response = await client.post(
            "/api/v1/auth/login", data={"username": "sso-only@example.com", "password": password}
        )
        assert response.status_code in (401, 422)


async def test_login_to_an_sso_only_account_costs_a_full_password_check(
    client: httpx2.AsyncClient, idp: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    await log_in(client, idp, email="timing@example.com")
    checks: list[str] = []
    real = security._verify_dummy

    def counted(password: str) -> tuple[bool, str | None]:
        checks.append(password)
        return real(password)

    monkeypatch.setattr(security, "_verify_dummy", counted)
    response = await client.post(
        "/api/v1/auth/login", data={"username": "timing@example.com", "password": "a-guess-1"}
    )
    # As slow as a wrong password: the Argon2 check against the dummy hash ran.
    assert response.status_code == 401
    assert checks == ["a-guess-1"]
