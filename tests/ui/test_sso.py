"""The console's single sign-on in headless Chromium: code flow with PKCE through a fake IdP.

The IdP (tests.fakes.oidc) serves HTTPS with its own test CA, which the browser context is
told to accept (``ignore_https_errors``); it allows the console's origin for CORS and only
the console's URL as a redirect URI, as a Keycloak public client would be set up. Tampering
happens in the browser's network layer (Playwright routes), between the console and the IdP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from nats.aio.client import Client as NATS
from yarl import URL

from tests.fakes.oidc import FakeIdP
from tests.ui.conftest import (
    Console,
    cluster_obj,
    needs_chromium,
    open_browser,
    screenshot,
    serve_console,
    users_doc,
)

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page, Route

expect = pytest.importorskip("playwright.async_api", reason="playwright not installed").expect
pytestmark = needs_chromium

SSO_BUTTON = "Sign in with single sign-on"


@pytest.fixture
async def sso(nc: NATS, prefix: str, tmp_path: Path, idp: FakeIdP) -> AsyncIterator[Console]:
    """A console whose gateway trusts the IdP; the IdP knows the console as a public client."""
    oidc = {
        "issuerURL": idp.issuer, "clientID": idp.client_id, "caFile": str(idp.ca_file),
        "groups": {"team-a-readers": {"roles": {"team-a": "reader"}}},
    }
    async with serve_console(nc, prefix, tmp_path, {**users_doc(), "oidc": oidc}) as console:
        idp.web_origins.add(console.url)
        idp.redirect_uris.add(console.url + "/ui/")
        yield console


@pytest.fixture
async def browser_context(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    async with open_browser(tmp_path, ignore_https_errors=True) as context:  # the IdP's test CA
        yield context


async def start_sso(page: Page, console: Console) -> None:
    await page.goto(console.url + "/ui/#/login")
    await page.get_by_role("button", name=SSO_BUTTON).click()


async def expect_refused(page: Page, console: Console, message: str) -> None:
    """Back on the sign-in page, query gone, signed out, saying ``message``."""
    await expect(page.locator("[data-error-for=sso]")).to_contain_text(message)
    await expect(page).to_have_url(console.url + "/ui/#/login")
    await expect(page.locator("#nav")).to_be_hidden()
    await expect(page.locator("#token")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('ccloud.token')") is None
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_sign_in_through_the_idp_shows_only_the_groups_projects(
    sso: Console, idp: FakeIdP, page: Page
) -> None:
    await sso.store.create(cluster_obj("alpha", "team-a"))
    await sso.store.create(cluster_obj("beta", "team-b"))
    idp.login_as("carol", ["team-a-readers", "unrelated"])
    await start_sso(page, sso)

    await expect(page.locator("#user")).to_have_text("oidc:carol")
    await expect(page).to_have_url(sso.url + "/ui/#/clusters")  # the code is off the URL
    await expect(page.locator("[data-cluster='team-a/alpha']")).to_be_visible()
    await expect(page.locator("[data-cluster='team-b/beta']")).to_have_count(0)
    await expect(page.locator("a", has_text="Create cluster")).to_have_count(0)
    assert await page.locator("#project option").all_inner_texts() == ["All projects", "team-a"]
    await screenshot(page, "sso-signed-in")

    auth = idp.code_flow()
    assert auth["redirect_uri"] == sso.url + "/ui/"
    # The PKCE verifier, state and nonce are gone once used.
    assert await page.evaluate("sessionStorage.getItem('ccloud.sso')") is None
    assert page.js_errors == []  # type: ignore[attr-defined]


async def test_the_idps_refusal_shows_its_reason(sso: Console, idp: FakeIdP, page: Page) -> None:
    idp.refuse("access_denied", "The user did not consent")
    await start_sso(page, sso)
    await expect_refused(
        page, sso,
        "The identity provider refused the sign-in: The user did not consent (access_denied).",
    )
    assert idp.token_requests == []
    await screenshot(page, "sso-refused")


def rewrite_answer(**changes: str) -> Callable[[Route], Awaitable[None]]:
    """A route handler changing ``changes`` in the IdP's redirect back to the console."""

    async def handle(route: Route) -> None:
        response = await route.fetch(max_redirects=0)
        location = URL(response.headers["location"]).update_query(changes)
        await route.fulfill(status=302, headers={"Location": str(location)})

    return handle


def rewrite_request(**changes: str) -> Callable[[Route], Awaitable[None]]:
    """A route handler changing ``changes`` in the console's request to the IdP."""

    async def handle(route: Route) -> None:
        await route.continue_(url=str(URL(route.request.url).update_query(changes)))

    return handle


@pytest.mark.parametrize(
    "handler, message, exchanges",
    [
        pytest.param(rewrite_answer(state="forged"), "(state mismatch)", 0, id="state"),
        pytest.param(
            rewrite_answer(code="stolen"),
            "The identity provider did not accept the sign-in: the code is unknown, used or "
            "expired (invalid_grant).", 1, id="code",
        ),
        pytest.param(rewrite_request(nonce="replayed"), "(nonce mismatch)", 1, id="nonce"),
    ],
)
async def test_a_tampered_answer_is_refused_with_a_message(
    sso: Console, idp: FakeIdP, page: Page, handler: Any, message: str, exchanges: int
) -> None:
    idp.login_as("carol", ["team-a-readers"])
    await page.route(lambda url: url.startswith(idp.issuer + "/auth"), handler)
    await start_sso(page, sso)
    await expect_refused(page, sso, message)
    assert len(idp.token_requests) == exchanges


async def test_a_callback_link_without_a_started_sign_in_is_refused(
    sso: Console, idp: FakeIdP, page: Page
) -> None:
    """Someone else's code (login CSRF) in a link: this tab started no sign-in."""
    await page.goto(sso.url + "/ui/?code=theirs&state=theirs")
    await expect_refused(page, sso, "(state mismatch)")
    assert idp.token_requests == []


async def test_an_unreachable_idp_is_reported_at_the_button(
    sso: Console, idp: FakeIdP, page: Page
) -> None:
    await idp.stop()
    await start_sso(page, sso)
    await expect_refused(page, sso, "Cannot reach the identity provider's discovery document")
    await expect(page.get_by_role("button", name=SSO_BUTTON)).to_be_enabled()  # try again


async def test_without_oidc_there_is_no_sso_button(console: Console, page: Page) -> None:
    await page.goto(console.url + "/ui/#/login")
    await expect(page.locator("form[data-sso=off]")).to_be_visible()
    await expect(page.get_by_role("button", name=SSO_BUTTON)).to_have_count(0)
    await expect(page.locator("#token")).to_be_visible()
