"""RedditClient and both HTTP transports against the fake Reddit server over 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import (
    ApiError,
    AuthError,
    BadResponse,
    NetworkError,
    RateLimited,
    ServerError,
)
from pipeline.sources.reddit import RedditClient, parse_listing
from pipeline.sources.transport import Response, Transport, make_transport
from tests.fakereddit import FakeReddit, Fault

UA = "test:redpipe:v1.0.0 (tests)"


@pytest.fixture(params=["requests", "stdlib"])
def transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    t = make_transport(
        connect_timeout=2.0, read_timeout=0.5, use_requests=request.param == "requests"
    )
    yield t
    t.close()


@pytest.fixture
def server() -> Iterator[FakeReddit]:
    with FakeReddit(token_ttl=3600) as fake:
        yield fake


def client_for(
    server: FakeReddit, transport: Transport, *, credentials: bool = True
) -> RedditClient:
    return RedditClient(
        transport,
        base_url=server.url,
        auth_url=server.url,
        user_agent=UA,
        credentials=("test-client", "test-secret") if credentials else None,
        clock=time.monotonic,
    )


def listing_requests(server: FakeReddit) -> list:
    return [r for r in server.requests if "/new" in r.path]


def test_listing_sends_limit_raw_json_user_agent_and_bearer(
    server: FakeReddit, transport: Transport
) -> None:
    posts = server.add_posts(3)
    client = client_for(server, transport)
    page = client.listing("/r/all/new")
    assert [c["data"]["name"] for c in page.children] == [p["name"] for p in reversed(posts)]
    assert page.rate.remaining is not None and page.rate.reset is not None
    for req in server.requests:
        assert req.headers["user-agent"] == UA
    listing = listing_requests(server)[0]
    assert listing.params["limit"] == "100"
    assert listing.params["raw_json"] == "1"
    assert listing.headers["authorization"].startswith("bearer ")
    assert server.tokens_issued == 1


def test_titles_arrive_unescaped(server: FakeReddit, transport: Transport) -> None:
    server.add_raw(
        [
            {
                "name": "t3_abc1234",
                "id": "abc1234",
                "title": "Q&A <live> & more",
                "created_utc": 1.0,
                "subreddit": "x",
            }
        ]
    )
    page = client_for(server, transport).listing("/r/all/new")
    assert page.children[0]["data"]["title"] == "Q&A <live> & more"


def test_after_cursor_pages_back(server: FakeReddit, transport: Transport) -> None:
    server.add_posts(150)
    client = client_for(server, transport)
    first = client.listing("/r/all/new")
    second = client.listing("/r/all/new", after=first.after)
    names = [c["data"]["name"] for c in first.children + second.children]
    assert len(names) == 150 == len(set(names))


def test_one_connection_is_kept_alive(server: FakeReddit, transport: Transport) -> None:
    server.add_posts(5)
    client = client_for(server, transport)
    for _ in range(5):
        client.listing("/r/all/new")
    assert server.connections() == 1


def test_token_is_renewed_after_expiry(transport: Transport) -> None:
    with FakeReddit(token_ttl=0.6) as fake:
        fake.add_posts(2)
        client = client_for(fake, transport)
        client.listing("/r/all/new")
        time.sleep(0.8)
        client.listing("/r/all/new")
        assert fake.tokens_issued == 2
        assert all(r.status == 200 for r in listing_requests(fake))


def test_token_is_renewed_on_401(server: FakeReddit, transport: Transport) -> None:
    server.add_posts(2)
    client = client_for(server, transport)
    client.listing("/r/all/new")
    server.inject(Fault.unauthorized())
    page = client.listing("/r/all/new")
    assert len(page.children) == 2
    assert server.tokens_issued == 2


def test_refused_credentials_are_an_auth_error(transport: Transport) -> None:
    with (
        FakeReddit(client_secret="other") as fake,
        pytest.raises(AuthError, match="REDPIPE_CLIENT_ID and REDPIPE_CLIENT_SECRET"),
    ):
        client_for(fake, transport).listing("/r/all/new")


def test_block_page_without_credentials_names_the_variables(transport: Transport) -> None:
    with FakeReddit(require_auth=False, block_unauthenticated=True) as fake:
        with pytest.raises(AuthError) as err:
            client_for(fake, transport, credentials=False).listing("/r/all/new")
        message = str(err.value)
        assert "REDPIPE_CLIENT_ID" in message and "REDPIPE_CLIENT_SECRET" in message
        assert "403" in message and "\n" not in message
        assert fake.requests[0].path.endswith(".json")


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.status(503, body=b"<html>oops</html>", content_type="text/html"), ServerError),
        (Fault.status(500), ServerError),
        (Fault.rate_limited(retry_after=4, body="html"), RateLimited),
        (Fault.rate_limited(retry_after=None, body="empty"), RateLimited),
        (Fault.truncated_json(), BadResponse),
        (Fault.html_200(), BadResponse),
        (Fault.hang(), NetworkError),
    ],
)
def test_faults_become_transient_errors(
    server: FakeReddit, transport: Transport, fault: Fault, error: type
) -> None:
    server.add_posts(1)
    client = client_for(server, transport)
    server.inject(fault)
    with pytest.raises(error):
        client.listing("/r/all/new")
    assert len(client.listing("/r/all/new").children) == 1  # and the next request works


def test_a_reset_is_a_network_error_after_at_most_one_retry(
    server: FakeReddit, transport: Transport
) -> None:
    server.add_posts(1)
    client = client_for(server, transport)
    client.listing("/r/all/new")
    # A reset on a kept-alive connection looks like a stale connection, which the stdlib
    # transport retries once on a fresh one; a second reset must surface.
    server.inject(Fault.reset(), Fault.reset())
    with pytest.raises(NetworkError, match=r"reset|closed|aborted"):
        client.listing("/r/all/new")
    server.clear_faults()
    assert len(client.listing("/r/all/new").children) == 1


def test_429_retry_after_is_parsed(server: FakeReddit, transport: Transport) -> None:
    server.inject(Fault.rate_limited(retry_after=4, body="json"))
    with pytest.raises(RateLimited) as err:
        client_for(server, transport).listing("/r/all/new")
    assert err.value.retry_after == 4.0


def test_connection_refused_is_a_network_error(transport: Transport) -> None:
    with FakeReddit() as fake:
        url = fake.url
    client = RedditClient(
        transport, base_url=url, auth_url=url, user_agent=UA, credentials=None, clock=time.monotonic
    )
    with pytest.raises(NetworkError, match="refused"):
        client.listing("/r/all/new")


def test_unknown_path_is_fatal(server: FakeReddit, transport: Transport) -> None:
    with pytest.raises(ApiError):
        client_for(server, transport).listing("/r/all/nothing")


def test_secret_never_appears_in_errors(transport: Transport) -> None:
    with FakeReddit(client_secret="other") as fake:
        client = RedditClient(
            transport,
            base_url=fake.url,
            auth_url=fake.url,
            user_agent=UA,
            credentials=("test-client", "s3cr3t-value"),
            clock=time.monotonic,
        )
        with pytest.raises(AuthError) as err:
            client.listing("/r/all/new")
    assert "s3cr3t-value" not in str(err.value)


FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "reddit"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(),
    reason=f"real Reddit responses not found at {FIXTURES} (the ../shared checkout)",
)


@needs_fixtures
def test_real_429_html_answer_is_rate_limited_with_its_retry_after(
    server: FakeReddit, transport: Transport
) -> None:
    recorded = json.loads(
        (FIXTURES / "reddit_error_429_html_retry_after.response.json").read_text("utf-8")
    )
    keep = ("content-type", "retry-after")
    headers = {k.lower(): v[0] for k, v in recorded["headers"].items() if k.lower() in keep}
    server.inject(Fault.status(429, recorded["body"].encode(), headers=headers))
    with pytest.raises(RateLimited) as err:
        client_for(server, transport).listing("/r/all/new")
    assert err.value.retry_after == 4.0


@needs_fixtures
def test_real_429_from_the_token_endpoint_is_rate_limited(
    server: FakeReddit, transport: Transport
) -> None:
    body = (FIXTURES / "reddit_error_429_token_endpoint.json").read_bytes()
    server.inject(Fault.status(429, body, "application/json; charset=UTF-8"), endpoint="token")
    with pytest.raises(RateLimited) as err:
        client_for(server, transport).listing("/r/all/new")
    assert err.value.retry_after is None


@needs_fixtures
@pytest.mark.parametrize(
    "name",
    [
        "reddit_all_new_2021-01-18_limit100.json",
        "reddit_all_new_2021-01-18_before_t3_kzj68i.json",
        "reddit_listing_empty_before_2021-01-18.json",
    ],
)
def test_real_listings_parse(name: str) -> None:
    body = (FIXTURES / name).read_bytes()
    headers = {"x-ratelimit-used": "253", "x-ratelimit-remaining": "347.0",
               "x-ratelimit-reset": "321"}  # fmt: skip
    page = parse_listing(Response(200, headers, body), "GET /r/all/new")
    doc = json.loads(body)
    assert page.children == doc["data"]["children"]
    assert page.after == doc["data"]["after"]
    assert (page.rate.used, page.rate.remaining, page.rate.reset) == (253.0, 347.0, 321.0)
