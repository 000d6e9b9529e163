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
import requests

from tests.fakereddit import FakeReddit, Fault


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


# -- comments, /api/info and changes after the fact, over HTTP with requests ---------------


@pytest.fixture
def api() -> Iterator[FakeReddit]:
    with FakeReddit(require_auth=False, ratelimit_budget=1000) as server:
        yield server


def fetch(fake: FakeReddit, path: str, **params: Any) -> requests.Response:
    return requests.get(fake.url + path, params=params, timeout=5)


def children(resp: requests.Response) -> list[tuple[str, str]]:
    """(kind, name) of each child of a Listing answer."""
    assert resp.status_code == 200, resp.text
    return [(c["kind"], c["data"]["name"]) for c in resp.json()["data"]["children"]]


def kinds_and_names(kind: str, names: list[str]) -> list[tuple[str, str]]:
    return [(kind, name) for name in names]


def test_comment_listing_pages_with_cursors_like_posts(api: FakeReddit) -> None:
    posts = [p["name"] for p in api.add_posts(4)][::-1]
    comments = [c["name"] for c in api.add_comments(30)][::-1]  # newest first
    first = fetch(api, "/r/all/comments", limit=10, raw_json=1)
    assert children(first) == kinds_and_names("t1", comments[:10])
    assert first.json()["data"]["after"] == comments[9]
    older = fetch(api, "/r/all/comments", limit=10, after=comments[9])
    assert children(older) == kinds_and_names("t1", comments[10:20])
    assert older.json()["data"]["after"] == comments[19]
    newer = fetch(api, "/r/all/comments", limit=3, before=comments[10])
    assert children(newer) == kinds_and_names("t1", comments[7:10])
    assert newer.json()["data"]["before"] is None
    last = fetch(api, "/r/all/comments", limit=100, after=comments[19])
    assert children(last) == kinds_and_names("t1", comments[20:])
    assert last.json()["data"]["after"] is None
    assert len(children(fetch(api, "/r/all/comments"))) == 25
    for path in ("/r/all/comments.json", "/r/all/comments/.json", "/r/all/comments/"):
        assert children(fetch(api, path, limit=5)) == kinds_and_names("t1", comments[:5])
    assert children(fetch(api, "/r/all/new", limit=100)) == kinds_and_names("t3", posts)
    assert fetch(api, "/r/all/comments/abc/slug").status_code == 404

    assert len(api.comment_requests()) == 8
    assert {r.endpoint for r in api.comment_requests()} == {"comments"}
    assert [r.path for r in api.post_requests()] == ["/r/all/new"]
    assert len(api.listing_requests()) == 10  # both kinds, and the 404
    assert api.info_requests() == []


def test_comment_listing_depth_subreddits_and_removed_anchor(api: FakeReddit) -> None:
    api.listing_depth = 15
    python = [c["name"] for c in api.add_comments(20, subreddit="python")][::-1]
    news = [c["name"] for c in api.add_comments(3, subreddit="news")][::-1]
    assert children(fetch(api, "/r/all/comments", limit=100)) == kinds_and_names(
        "t1", (news + python)[:15]
    )
    assert children(fetch(api, "/r/Python+sqlite/comments", limit=100)) == kinds_and_names(
        "t1", python[:15]
    )
    api.remove(python[3])
    assert children(fetch(api, "/r/python/comments", after=python[3])) == []
    assert python[3] not in [n for _, n in children(fetch(api, "/r/python/comments"))]


def test_comment_bodies_are_escaped_unless_raw_json(api: FakeReddit) -> None:
    api.add_raw_comments([{"name": "t1_x1", "body": "a & b <c>", "subreddit": "s"}])
    raw = fetch(api, "/r/s/comments", raw_json=1).json()["data"]["children"][0]
    escaped = fetch(api, "/r/s/comments").json()["data"]["children"][0]
    assert raw == {"kind": "t1", "data": {"name": "t1_x1", "body": "a & b <c>", "subreddit": "s"}}
    assert escaped["data"]["body"] == "a &amp; b &lt;c&gt;"


def test_a_drawn_comment_id_is_never_one_already_published() -> None:
    with FakeReddit(seed=5) as first:
        (drawn,) = first.add_comments(1)
    with FakeReddit(seed=5) as again:
        again.add_raw_comments([{"name": drawn["name"], "body": "published first"}])
        (other,) = again.add_comments(1)
        assert other["name"] != drawn["name"] and len(other["id"]) == 7
        assert again.item(drawn["name"])["body"] == "published first"  # type: ignore[index]


def test_firehose_feeds_post_polls_only() -> None:
    with FakeReddit(require_auth=False, firehose=3) as fake:
        assert children(fetch(fake, "/r/all/comments")) == []
        assert fake.posts == []
        assert len(children(fetch(fake, "/r/all/new"))) == 3


def test_generated_comments_look_like_real_ones(api: FakeReddit) -> None:
    posts = {p["name"]: p for p in api.add_posts(10)}
    comments = api.add_comments(44)
    assert api.comments == comments
    assert all(len(c["id"]) == 7 for c in comments)
    ids = [int(c["id"], 36) for c in comments]
    assert len(set(ids)) == len(ids)
    # Not sequential, as Reddit's comment ids since 2026: as many go down as up.
    downs = sum(a > b for a, b in zip(ids, ids[1:]))
    assert 10 < downs < 33, downs
    seen: dict[str, str] = {}  # name -> link_id of the comments before
    for c in comments:
        assert c["name"] == "t1_" + c["id"]
        assert isinstance(c["created_utc"], float) and c["created"] == c["created_utc"] + 28800
        post = posts[c["link_id"]]
        assert c["subreddit"] == post["subreddit"] and c["link_title"] == post["title"]
        assert c["subreddit_id"].startswith("t5_")
        assert c["permalink"] == f"{post['permalink']}{c['id']}/"
        assert c["link_permalink"] == "https://www.reddit.com" + post["permalink"]
        assert c["parent_id"] == c["link_id"] or seen[c["parent_id"]] == c["link_id"]
        assert c["edited"] is False or isinstance(c["edited"], float)
        assert c["controversiality"] in (0, 1) and "depth" not in c
        assert c["body_html"].startswith('<div class="md"><p>')
        assert (c["author"] == "[deleted]") == ("author_fullname" not in c)
        seen[c["name"]] = c["link_id"]
    deleted = [c for c in comments if c["author"] == "[deleted]"]
    assert len(deleted) == 4  # about 1 in 11
    assert all(c["author_fullname"].startswith("t2_") for c in comments if c not in deleted)
    replies = sum(c["parent_id"].startswith("t1_") for c in comments)
    assert 8 <= replies <= 30  # about half, where the post already has a comment
    bodies = "".join(c["body"] for c in comments)
    assert all(ch in bodies for ch in "&<\"'\n☕")
    assert any(c["edited"] for c in comments)


def test_comments_on_a_subreddit_without_posts_get_a_made_up_post(api: FakeReddit) -> None:
    posts = {p["name"] for p in api.add_posts(5, subreddit="python")}
    on_python = api.add_comments(5, subreddit="Python")
    assert {c["link_id"] for c in on_python} <= posts
    elsewhere = api.add_comments(5, subreddit="sqlite")
    for c in elsewhere:
        assert c["subreddit"] == "sqlite" and c["link_id"] not in posts
        assert c["link_id"].startswith("t3_")
        assert int(c["link_id"][3:], 36) < int("1tv00000", 36)  # older than any listed post
        assert c["permalink"].startswith(f"/r/sqlite/comments/{c['link_id'][3:]}/")


def test_keep_bounds_comments_separately_and_published_has_them() -> None:
    with FakeReddit(require_auth=False, keep=5, track_times=True) as fake:
        posts = fake.add_posts(3)
        comments = [c["name"] for c in fake.add_comments(8)]
        assert [c["name"] for c in fake.comments] == comments[3:]
        assert fake.posts == posts
        assert fake.published is not None and set(comments) <= set(fake.published)
        asked = fetch(fake, "/api/info", id=",".join(comments))
        assert children(asked) == kinds_and_names("t1", comments[3:])  # dropped: unknown


def test_info_answers_in_the_order_asked_and_leaves_out_unknown_ids(api: FakeReddit) -> None:
    posts = [p["name"] for p in api.add_posts(5)]
    comments = [c["name"] for c in api.add_comments(5)]
    ids = [comments[2], "t3_nope", posts[4], posts[0], "t1_nope", comments[0], posts[4], "x"]
    resp = fetch(api, "/api/info", id=",".join(ids), raw_json=1)
    expected = [("t1", comments[2]), ("t3", posts[4]), ("t3", posts[0]), ("t1", comments[0])]
    assert children(resp) == expected
    data = resp.json()["data"]
    assert data["dist"] == 4 and data["after"] is None and data["before"] is None
    assert data["children"][0]["data"] == api.item(comments[2])
    assert int(resp.headers["x-ratelimit-used"]) == 1
    assert children(fetch(api, "/api/info.json", id=f"{posts[1]}, {comments[1]}")) == [
        ("t3", posts[1]),
        ("t1", comments[1]),
    ]
    assert children(fetch(api, "/api/info")) == []
    assert api.info_requests()[0].params["id"] == ",".join(ids)
    assert {r.endpoint for r in api.info_requests()} == {"info"}
    assert api.listing_requests() == []


def test_info_takes_at_most_100_ids(api: FakeReddit) -> None:
    posts = [p["name"] for p in api.add_posts(100)]
    assert len(children(fetch(api, "/api/info", id=",".join(posts)))) == 100
    resp = fetch(api, "/api/info", id=",".join([*posts, "t3_one_more"]))
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error"] == 400


def test_info_answers_removed_items_but_not_purged_ones(api: FakeReddit) -> None:
    posts = [p["name"] for p in api.add_posts(3)]
    comments = [c["name"] for c in api.add_comments(3)]
    api.remove(posts[0])
    api.remove(comments[0])
    api.purge(posts[1])
    api.purge(comments[1])
    assert [n for _, n in children(fetch(api, "/r/all/new"))] == [posts[2]]
    assert [n for _, n in children(fetch(api, "/r/all/comments"))] == [comments[2]]
    everything = fetch(api, "/api/info", id=",".join(posts + comments))
    assert [n for _, n in children(everything)] == [posts[0], posts[2], comments[0], comments[2]]
    assert len(api.posts) == len(api.comments) == 3  # the ground truth keeps them


def test_info_escapes_gzips_and_needs_a_token() -> None:
    with FakeReddit(token_ttl=60) as fake:
        fake.add_raw([{"name": "t3_x1", "title": "a & b <c>" * 200, "subreddit": "s"}])
        assert fetch(fake, "/api/info", id="t3_x1").status_code == 401
        token = requests.post(
            f"{fake.url}/api/v1/access_token",
            data={"grant_type": "client_credentials"},
            auth=("test-client", "test-secret"),
            timeout=5,
        ).json()["access_token"]
        auth = {"Authorization": "bearer " + token}
        url = f"{fake.url}/api/info?id=t3_x1"
        escaped = requests.get(url, headers=auth, timeout=5)
        assert escaped.headers["content-encoding"] == "gzip"
        assert escaped.json()["data"]["children"][0]["data"]["title"].startswith("a &amp; b &lt;c")
        raw = requests.get(url + "&raw_json=1", headers=auth, timeout=5)
        assert raw.json()["data"]["children"][0]["data"]["title"].startswith("a & b <c>")
    with FakeReddit(block_unauthenticated=True) as fake:
        assert fetch(fake, "/api/info", id="t3_x1").status_code == 403


def test_info_shares_the_rate_budget(fake: FakeReddit) -> None:
    post = fake.add_posts(1)[0]["name"]
    assert fetch(fake, "/r/all/new").status_code == 200
    assert fetch(fake, "/r/all/comments").status_code == 200
    used = [fetch(fake, "/api/info", id=post).headers["x-ratelimit-used"] for _ in range(3)]
    assert used == ["3", "4", "5"]
    assert fetch(fake, "/api/info", id=post).status_code == 429
    assert fake.rate_limited == 1


def test_faults_aimed_at_info_hit_only_info(api: FakeReddit) -> None:
    post = api.add_posts(1)[0]["name"]
    api.add_comments(1)
    api.inject(Fault.status_(503, b"busy"), Fault.truncated_json(), endpoint="info")
    api.inject(Fault.empty_listing(), endpoint="info")
    assert fetch(api, "/r/all/new").status_code == 200
    assert fetch(api, "/r/all/comments").status_code == 200
    assert fetch(api, "/api/info", id=post).status_code == 503
    truncated = fetch(api, "/api/info", id=post)
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.content)
    assert children(fetch(api, "/api/info", id=post)) == []
    assert children(fetch(api, "/api/info", id=post)) == [("t3", post)]
    assert [r.fault for r in api.info_requests()] == [
        "status",
        "truncated_json",
        "empty_listing",
        None,
    ]

    api.inject(Fault.status_(500), endpoint="listing")  # any /r/ listing, never info
    api.inject(Fault.status_(502), endpoint="comments")
    assert fetch(api, "/api/info", id=post).status_code == 200
    assert fetch(api, "/r/all/comments").status_code == 500
    assert fetch(api, "/r/all/new").status_code == 200
    assert fetch(api, "/r/all/comments").status_code == 502
    api.inject(Fault.status_(504), endpoint="any")
    assert fetch(api, "/api/info", id=post).status_code == 504


def test_update_changes_listings_and_info(api: FakeReddit) -> None:
    post = api.add_posts(1)[0]
    comment = api.add_comments(1)[0]
    changed = api.update(post["name"], score=999, num_comments=42)
    assert changed == {**post, "score": 999, "num_comments": 42}
    api.update(comment["name"], score=-3, edited=1.5)
    listed = fetch(api, "/r/all/new", raw_json=1).json()["data"]["children"][0]["data"]
    assert listed == changed == api.item(post["name"]) == api.posts[0]
    asked = fetch(api, "/api/info", id=comment["name"], raw_json=1)
    assert asked.json()["data"]["children"][0]["data"] == {**comment, "score": -3, "edited": 1.5}
    assert fetch(api, "/r/all/comments").json()["data"]["children"][0]["data"]["score"] == -3
    with pytest.raises(KeyError):
        api.update("t3_nope", score=1)


def test_delete_by_author(api: FakeReddit) -> None:
    post = api.add_posts(1)[0]  # a self post with a live author
    comment = api.add_comments(1)[0]
    assert post["selftext"] and "author_fullname" in post and "author_fullname" in comment
    api.delete_by_author(post["name"])
    api.delete_by_author(comment["name"])
    listed = fetch(api, "/r/all/new", raw_json=1).json()["data"]["children"][0]["data"]
    asked = fetch(api, "/api/info", id=post["name"], raw_json=1)
    for gone in (listed, asked.json()["data"]["children"][0]["data"]):
        assert gone["author"] == "[deleted]" and "author_fullname" not in gone
        assert gone["selftext"] == "[deleted]" and gone["removed_by_category"] == "deleted"
        assert gone["title"] == post["title"]
    asked = fetch(api, "/api/info", id=comment["name"], raw_json=1)
    listed = fetch(api, "/r/all/comments", raw_json=1).json()["data"]["children"][0]["data"]
    for gone in (listed, asked.json()["data"]["children"][0]["data"]):
        assert gone["author"] == "[deleted]" and "author_fullname" not in gone
        assert gone["body"] == "[deleted]" and "[deleted]" in gone["body_html"]
        assert gone["link_id"] == comment["link_id"]


def test_remove_by_moderator(api: FakeReddit) -> None:
    post = api.add_posts(1)[0]
    comment = api.add_comments(1)[0]
    api.remove_by_moderator(post["name"])
    api.remove_by_moderator(comment["name"], hide=True)
    listed = fetch(api, "/r/all/new", raw_json=1).json()["data"]["children"][0]["data"]
    assert listed["selftext"] == "[removed]" and listed["removed_by_category"] == "moderator"
    assert (
        listed["author"] == post["author"] and listed["author_fullname"] == post["author_fullname"]
    )
    assert children(fetch(api, "/r/all/comments")) == []  # hide=True: out of listings
    asked = fetch(api, "/api/info", id=f"{comment['name']},{post['name']}", raw_json=1)
    gone, removed = (c["data"] for c in asked.json()["data"]["children"])
    assert gone["body"] == "[removed]" and gone["author"] == "[deleted]"
    assert "author_fullname" not in gone
    assert removed == listed


def test_feed_publishes_comments_at_comment_rate(api: FakeReddit) -> None:
    api.start_feed(20)
    time.sleep(0.3)
    api.stop_feed()
    assert api.posts and api.comments == []  # no comment_rate: posts only, as before
    started = time.monotonic()
    api.start_feed(0, comment_rate=100)
    deadline = started + 5
    while len(api.comments) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    api.stop_feed()
    elapsed = time.monotonic() - started
    made = len(api.comments)
    assert 20 <= made <= 100 * elapsed + 1
    posts = {p["name"] for p in api.posts}
    assert {c["link_id"] for c in api.comments} <= posts
    listed = [n for _, n in children(fetch(api, "/r/all/comments", limit=100))]
    assert listed == [c["name"] for c in api.comments][::-1][:100]
