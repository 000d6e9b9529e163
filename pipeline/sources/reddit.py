"""Reddit's listing API: app-only OAuth, one listing request, and what each answer means."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import (
    CREDENTIALS_HINT,
    ApiError,
    AuthError,
    BadResponse,
    RateLimited,
    ServerError,
)
from .pacing import RateInfo, rate_info, retry_after
from .transport import Request, Response, Transport, make_transport

log = logging.getLogger(__name__)

# A token is renewed this long before Reddit says it expires, so a request never
# races the expiry.
TOKEN_MARGIN = 60.0
# A TCP connect that takes longer than this is not going to succeed.
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Page:
    children: list[Any]
    after: str | None
    rate: RateInfo


def _snippet(resp: Response) -> str:
    kind = resp.content_type or "no content-type"
    return f"{kind}, {len(resp.body)} bytes"


def _json(resp: Response, what: str, headers: Mapping[str, str] | None = None) -> Any:
    try:
        return json.loads(resp.body)
    except ValueError:
        raise BadResponse(
            f"{what}: HTTP {resp.status} body is not JSON ({_snippet(resp)})", headers=headers
        ) from None


def parse_listing(resp: Response, what: str) -> Page:
    """A 200 listing answer as a Page; BadResponse when it is anything else."""
    doc = _json(resp, what, resp.headers)
    data = doc.get("data") if isinstance(doc, dict) and doc.get("kind") == "Listing" else None
    children = data.get("children") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(children, list):
        raise BadResponse(
            f"{what}: HTTP 200 but not a listing ({_snippet(resp)})", headers=resp.headers
        )
    after = data.get("after")
    return Page(children, after if isinstance(after, str) else None, rate_info(resp.headers))


class RedditClient:
    """Fetches listing pages, holding an app-only token when credentials are given.

    Without credentials it asks the public `.json` endpoint. The edge allows that only
    for a base URL the user gave (a mirror may serve without them): Reddit itself has
    refused it with a 403 block page since May 2026, and that 403 becomes an AuthError.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        base_url: str,
        auth_url: str,
        user_agent: str,
        credentials: tuple[str, str] | None,
        clock: Callable[[], float],
    ) -> None:
        self._transport = transport
        self._base = base_url.rstrip("/")
        self._auth_url = auth_url.rstrip("/") + "/api/v1/access_token"
        self._credentials = credentials
        self._clock = clock
        self._headers = {"User-Agent": user_agent}
        self._token: str | None = None
        self._token_expires = 0.0
        self.requests = 0

    def listing(self, path: str, *, after: str | None = None) -> Page:
        """GET one page of `path` (e.g. "/r/all/new"), newest first, 100 items."""
        params = {"limit": "100", "raw_json": "1"}
        if after:
            params["after"] = after
        return self._get(path, params)

    def info(self, fullnames: list[str]) -> Page:
        """GET /api/info for up to 100 fullnames: those Reddit still has, as they are now."""
        if not 0 < len(fullnames) <= 100:
            raise ValueError("/api/info takes 1 to 100 fullnames")
        return self._get("/api/info", {"id": ",".join(fullnames), "raw_json": "1"})

    def _get(self, path: str, params: dict[str, str]) -> Page:
        url = self._base + path + ("" if self._credentials else ".json")
        for attempt in (1, 2):
            headers = dict(self._headers)
            if self._credentials:
                headers["Authorization"] = "bearer " + self._get_token()
            self.requests += 1
            log.debug("GET %s %s", url, params)
            resp = self._transport.request(Request("GET", url, headers, params))
            if resp.status == 401 and self._credentials and attempt == 1:
                # The token was revoked or expired early; one fresh token, one retry.
                log.info("access token refused (HTTP 401); getting a new one")
                self._token = None
                continue
            return self._answer(resp, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._transport.close()

    def _answer(self, resp: Response, path: str) -> Page:
        status = resp.status
        what = f"GET {path}"
        if status == 200:
            return parse_listing(resp, what)
        if status == 429:
            raise RateLimited(
                f"{what}: rate limited (HTTP 429)",
                retry_after=retry_after(resp.headers),
                headers=resp.headers,
            )
        if status == 403 and not self._credentials:
            raise AuthError(
                f"Reddit refused the unauthenticated request (HTTP 403, {_snippet(resp)}): "
                f"OAuth credentials are needed; {CREDENTIALS_HINT}"
            )
        if status == 401:
            if self._credentials:
                raise AuthError(f"{what}: Reddit refused a fresh access token (HTTP 401)")
            raise AuthError(f"{what}: Reddit wants authentication (HTTP 401); {CREDENTIALS_HINT}")
        if status == 403:
            raise ApiError(
                f"{what}: forbidden (HTTP 403): the subreddit may be private, quarantined or banned"
            )
        if status == 404:
            raise ApiError(f"{what}: not found (HTTP 404): check --subreddit")
        if 300 <= status < 400:
            raise ApiError(
                f"{what}: redirected (HTTP {status}) to {resp.headers.get('location', '?')}: "
                "check --subreddit and --base-url"
            )
        if status >= 500 or status in (408, 409, 425):
            raise ServerError(
                f"{what}: HTTP {status} ({_snippet(resp)})",
                retry_after=retry_after(resp.headers),
                headers=resp.headers,
            )
        raise ApiError(f"{what}: unexpected HTTP {status} ({_snippet(resp)})")

    def _get_token(self) -> str:
        if self._token is None or self._clock() >= self._token_expires:
            self._token, lifetime = self._fetch_token()
            self._token_expires = self._clock() + max(lifetime - TOKEN_MARGIN, lifetime / 2)
        return self._token

    def _fetch_token(self) -> tuple[str, float]:
        assert self._credentials is not None
        self.requests += 1
        log.debug("POST %s (client_credentials)", self._auth_url)
        form = {"grant_type": "client_credentials"}
        resp = self._transport.request(
            Request("POST", self._auth_url, self._headers, form=form, basic_auth=self._credentials)
        )
        what = "getting an access token"
        if resp.status in (400, 401, 403):
            raise AuthError(
                f"Reddit refused the client credentials (HTTP {resp.status}): check "
                "REDPIPE_CLIENT_ID and REDPIPE_CLIENT_SECRET (the app must be a 'script' "
                "or 'web' app)"
            )
        if resp.status == 429:
            raise RateLimited(
                f"{what}: rate limited (HTTP 429)", retry_after=retry_after(resp.headers)
            )
        if resp.status != 200:
            raise ServerError(f"{what}: HTTP {resp.status} ({_snippet(resp)})")
        doc = _json(resp, what)
        if not isinstance(doc, dict):
            raise BadResponse(f"{what}: unexpected answer ({_snippet(resp)})")
        if "error" in doc:
            raise AuthError(f"Reddit refused the token request: {str(doc['error'])[:80]}")
        token = doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise BadResponse(f"{what}: answer has no access_token")
        lifetime = doc.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime <= 0:
            lifetime = 3600.0
        log.debug("got an access token valid for %ss", lifetime)
        return token, float(lifetime)


def open_client(
    *,
    base_url: str,
    auth_url: str,
    user_agent: str,
    credentials: tuple[str, str] | None,
    timeout: float,
    clock: Callable[[], float],
) -> RedditClient:
    """A client over this interpreter's transport; `close()` it when done."""
    transport = make_transport(connect_timeout=min(CONNECT_TIMEOUT, timeout), read_timeout=timeout)
    return RedditClient(
        transport,
        base_url=base_url,
        auth_url=auth_url,
        user_agent=user_agent,
        credentials=credentials,
        clock=clock,
    )
