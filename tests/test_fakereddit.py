"""The fake Reddit itself: its answers are the ground truth of every other test."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakereddit import FakeReddit


@pytest.fixture
def fake() -> Iterator[FakeReddit]:
    with FakeReddit(require_auth=False, ratelimit_budget=5, ratelimit_window=600) as server:
        yield server


def get(fake: FakeReddit, query: str, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(f"{fake.url}/r/all/new.json?{query}", headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read()), dict(resp.headers)


def names(doc: Any) -> list[str]:
    return [c["data"]["name"] for c in doc["data"]["children"]]


def test_cursors_and_limit(fake: FakeReddit) -> None:
    fake.ratelimit_budget = 100
    posts = [p["name"] for p in fake.add_posts(30)][::-1]  # newest first
    first, _ = get(fake, "limit=10&raw_json=1")
    assert names(first) == posts[:10]
    assert first["data"]["after"] == posts[9]
    older, _ = get(fake, f"limit=10&after={posts[9]}")
    assert names(older) == posts[10:20]
    newer, _ = get(fake, f"limit=3&before={posts[10]}")
    assert names(newer) == posts[7:10]
    last, _ = get(fake, f"limit=100&after={posts[19]}")
    assert names(last) == posts[20:] and last["data"]["after"] is None
    default, _ = get(fake, "")
    assert len(names(default)) == 25


def test_listing_depth_and_removed_anchor(fake: FakeReddit) -> None:
    fake.ratelimit_budget = 100
    fake.listing_depth = 15
    posts = [p["name"] for p in fake.add_posts(20)][::-1]
    doc, _ = get(fake, "limit=100")
    assert names(doc) == posts[:15]
    fake.remove(posts[3])
    doc, _ = get(fake, f"after={posts[3]}")
    assert names(doc) == []
    doc, _ = get(fake, "limit=5")
    assert posts[3] not in names(doc)


def test_escaping_unless_raw_json(fake: FakeReddit) -> None:
    fake.add_raw([{"name": "t3_x1", "title": "a & b <c>", "subreddit": "s"}])
    raw, _ = get(fake, "raw_json=1")
    escaped, _ = get(fake, "")
    assert raw["data"]["children"][0]["data"]["title"] == "a & b <c>"
    assert escaped["data"]["children"][0]["data"]["title"] == "a &amp; b &lt;c&gt;"


def test_ratelimit_headers_count_down_then_429(fake: FakeReddit) -> None:
    seen = []
    for _ in range(5):
        _, headers = get(fake, "")
        seen.append((headers["x-ratelimit-used"], headers["x-ratelimit-remaining"]))
        assert 0 < int(headers["x-ratelimit-reset"]) <= 600
    assert seen == [("1", "4.0"), ("2", "3.0"), ("3", "2.0"), ("4", "1.0"), ("5", "0.0")]
    with pytest.raises(urllib.error.HTTPError) as err:
        get(fake, "")
    assert err.value.code == 429
    err.value.close()
    assert fake.rate_limited == 1


def test_block_page_and_tokens() -> None:
    with FakeReddit(block_unauthenticated=True, token_ttl=0.3) as fake:
        with pytest.raises(urllib.error.HTTPError) as err:
            get(fake, "")
        assert err.value.code == 403
        assert b"blocked" in err.value.read()
        err.value.close()
        basic = base64.b64encode(b"test-client:test-secret").decode()
        req = urllib.request.Request(f"{fake.url}/api/v1/access_token",
                                     data=b"grant_type=client_credentials",
                                     headers={"Authorization": "Basic " + basic})  # fmt: skip
        with urllib.request.urlopen(req, timeout=5) as resp:
            token = json.loads(resp.read())
        assert token["token_type"] == "bearer" and token["expires_in"] == 0.3
        auth = {"Authorization": "bearer " + token["access_token"]}
        doc, _ = get(fake, "", auth)
        assert doc["kind"] == "Listing"
        time.sleep(0.4)
        with pytest.raises(urllib.error.HTTPError) as err:
            get(fake, "", auth)
        assert err.value.code == 401
        err.value.close()
