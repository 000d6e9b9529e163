"""A fake Reddit on 127.0.0.1 that speaks the parts of the real protocol redpipe uses.

- `GET /r/<subs>/new` (and `.json`): newest-first listings of posts (kind t3) with `limit`
  (default 25, at most 100), `after`/`before` cursors, `raw_json`, a listing that reaches
  back `listing_depth` items, `x-ratelimit-*` headers over a window, gzip when asked.
- `GET /r/<subs>/comments` (and `.json`, `/.json`): the same for comments (kind t1).
  Post ids count up in base36; comment ids are random 7-digit base36, as Reddit's have
  been since 2026, so only the listing's order tells which comment came first.
- `GET /api/info?id=t3_a,t1_b,...` (and `.json`): a Listing with one child per id the
  server knows, in the order asked; unknown ids are left out, more than 100 ids is a 400.
  Items taken out of listings by `remove()` are still answered; `purge()`d ones are not.
  Same auth, rate budget, `raw_json`, gzip and faults as the listings.
- `POST /api/v1/access_token`: app-only tokens (HTTP Basic, `client_credentials`) that
  expire after `token_ttl` seconds; an expired or unknown token gets a 401.
- Without a token: the 403 HTML block page Reddit has sent since May 2026, or, with
  `block_unauthenticated=False`, the public `.json` listing.
- Faults to inject, one per request, in order: any status with any body, 429s with
  JSON/HTML/empty bodies, truncated JSON, HTML with a 200, empty listings, hangs,
  connection resets, slow answers, 401s. `inject(..., endpoint=)` aims them at "listing"
  (every /r/ listing), "new" or "comments" (one kind of listing), "info", "token" or
  "any". `chaos=` mixes them in at random into listings and /api/info.

Ground truth for tests: `posts` and `comments` (every item ever added, oldest first, in
its current state, unless `keep` bounds each list), `item(fullname)`, `requests` (with
`listing_requests()`, `post_requests()`, `comment_requests()`, `info_requests()`),
`published` (when each item appeared, with `track_times`).
Content: `add_posts`/`add_comments` make realistic items, `add_raw`/`add_raw_comments`
publish data as given, `start_feed(rate, comment_rate=)` publishes both over time.
Changes after the fact, seen by listings and /api/info alike: `update(fullname, **fields)`,
`delete_by_author`, `remove_by_moderator` (both with `hide=True` to also leave the
listings), `remove` (out of listings only) and `purge` (gone everywhere).
For benchmarks: `firehose=N` publishes N new posts before answering each fresh poll of a
post listing, and `big=True` makes posts of about 3.5 KB and 108 fields, as real listings
carry.

Run it alone to watch redpipe work offline:  python3 tests/fakereddit.py --rate 5
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import json
import math
import random
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

BLOCK_PAGE = (
    b"<!doctype html><html><head><title>Blocked</title></head><body>"
    b"<h1>whoa there, pardner!</h1><p>Your request has been blocked due to a network "
    b"policy.</p><p>You've been blocked by network security. To continue, log in to your "
    b"Reddit account or use your developer token.</p></body></html>"
)
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>reddit.com: over capacity</title></head>"
    b"<body><h1>all of our servers are busy right now</h1></body></html>"
)
ID_START = int("1tv00000", 36)
# Since 2026 Reddit's comment ids are no longer sequential (post ids still are): each is
# 7 base36 digits, drawn here at random from all of them, so a later comment may have a
# lower id and the ids say nothing about how many comments lie between two.
COMMENT_IDS = (int("1000000", 36), int("zzzzzzz", 36) + 1)
MAX_INFO_IDS = 100
JSON_TYPE = "application/json; charset=UTF-8"
LISTINGS = ("new", "comments", "listing")  # what `inject(endpoint="listing")` aims at
# Fields Reddit leaves out once an author is gone (13 of 13 "[deleted]" posts in the
# fixture of deleted authors lack all five).
AUTHOR_ONLY_FIELDS = (
    "author_fullname",
    "author_flair_richtext",
    "author_flair_type",
    "author_premium",
    "author_patreon_flair",
)


def base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


@dataclass
class Fault:
    """One misbehaviour for one request. Build them with the class methods."""

    kind: str
    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float | None = None

    @classmethod
    def status_(
        cls,
        code: int,
        body: bytes = b"",
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        return cls("status", code, body, content_type, dict(headers or {}))

    @classmethod
    def rate_limited(cls, retry_after: float | None = None, body: str = "json") -> Fault:
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        if body == "json":
            return cls(
                "status",
                429,
                b'{"message": "Too Many Requests", "error": 429}',
                "application/json; charset=UTF-8",
                headers,
            )
        if body == "html":
            return cls("status", 429, HTML_PAGE, "text/html; charset=UTF-8", headers)
        return cls("status", 429, b"", None, headers)

    @classmethod
    def truncated_json(cls) -> Fault:
        return cls("truncated_json")

    @classmethod
    def html_200(cls) -> Fault:
        return cls("status", 200, HTML_PAGE, "text/html; charset=UTF-8")

    @classmethod
    def empty_listing(cls) -> Fault:
        return cls("empty_listing")

    @classmethod
    def hang(cls, seconds: float | None = None) -> Fault:
        """Read the request, then answer nothing for `seconds` (default: until stopped)."""
        return cls("hang", seconds=seconds)

    @classmethod
    def reset(cls) -> Fault:
        return cls("reset")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls("slow", seconds=seconds)

    @classmethod
    def unauthorized(cls) -> Fault:
        return cls(
            "status",
            401,
            b'{"message": "Unauthorized", "error": 401}',
            "application/json; charset=UTF-8",
            {"www-authenticate": 'Bearer realm="reddit"'},
        )


# `Fault.status(...)` reads best in tests; the dataclass field of that name shadows a
# classmethod defined under it, so the constructor is attached afterwards.
Fault.status = Fault.status_  # type: ignore[assignment,method-assign]

CHAOS_MIX: tuple[Fault, ...] = (
    Fault.status_(503, HTML_PAGE, "text/html"),
    Fault.status_(500),
    Fault.status_(502, b"", None),
    Fault.rate_limited(retry_after=1, body="json"),
    Fault.rate_limited(retry_after=None, body="html"),
    Fault.rate_limited(retry_after=None, body="empty"),
    Fault.truncated_json(),
    Fault.html_200(),
    Fault.empty_listing(),
    Fault.reset(),
    Fault.hang(seconds=12),
    Fault.slow(1.5),
)


# (status, headers, body) of one answer
Answer = tuple[int, dict[str, str], bytes]


@dataclass
class RequestRecord:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    conn_id: int
    time: float
    status: int = 0
    hung: bool = False
    fault: str | None = None
    items: int = 0
    # "new", "comments", "info", "token", or "listing" for any other path
    endpoint: str = ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeReddit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    conn_id = 0

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes; without this, Nagle's algorithm holds the
        # body until the client's delayed ACK, adding 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn_id = self.server.fake._connected(self.connection)

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ValueError):
            pass  # the client went away, or the test reset the connection on purpose
        finally:
            self.server.fake._disconnected(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    def do_POST(self) -> None:
        self.server.fake._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read `requests`, not a log


class FakeReddit:
    def __init__(
        self,
        *,
        client_id: str = "test-client",
        client_secret: str = "test-secret",
        token_ttl: float = 86400,
        require_auth: bool = True,
        block_unauthenticated: bool = False,
        ratelimit_budget: int = 1000,
        ratelimit_window: float = 600,
        ratelimit_headers: bool = True,
        enforce_ratelimit: bool = True,
        listing_depth: int = 1000,
        chaos: float = 0.0,
        chaos_mix: Sequence[Fault] = CHAOS_MIX,
        seed: int = 1,
        big: bool = False,
        firehose: int = 0,
        keep: int | None = None,
        track_times: bool = False,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.token_ttl = token_ttl
        self.require_auth = require_auth
        self.block_unauthenticated = block_unauthenticated
        self.ratelimit_budget = ratelimit_budget
        self.ratelimit_window = ratelimit_window
        self.ratelimit_headers = ratelimit_headers
        self.enforce_ratelimit = enforce_ratelimit
        self.listing_depth = listing_depth
        self.chaos, self.chaos_mix = chaos, tuple(chaos_mix)
        self.big = big
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._posts: list[dict[str, Any]] = []
        self._comments: list[dict[str, Any]] = []
        # fullname -> ("t3" or "t1", current data) of every item held, for /api/info
        self._items: dict[str, tuple[str, dict[str, Any]]] = {}
        self._made = 0
        self._comments_made = 0
        # Its own stream, so drawing comment ids leaves what the seed makes of the rest
        # as it was; the set keeps the draws unique.
        self._comment_ids = random.Random(f"comment ids {seed}")
        self._comment_ids_used: set[int] = set()
        self.firehose = firehose
        self.keep = keep
        # name -> wall time it was published, for latency measurements
        self.published: dict[str, float] | None = {} if track_times else None
        self._removed: set[str] = set()  # out of listings, still in /api/info
        self._purged: set[str] = set()  # gone from listings and /api/info
        self._faults: deque[tuple[str, Fault]] = deque()
        self._tokens: dict[str, float] = {}
        self._open: dict[int, socket.socket] = {}
        self._conn_ids: set[int] = set()
        self._next_conn = 0
        self._window_start = time.monotonic()
        self._used = 0
        self.requests: list[RequestRecord] = []
        self.tokens_issued = 0
        self.rate_limited = 0  # 429s sent because the budget ran out (not injected ones)
        self._feed: threading.Thread | None = None
        self._feed_stop = threading.Event()
        self._httpd = _Server((host, port), _Handler, bind_and_activate=True)
        self._httpd.fake = self
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeReddit:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_feed()
        self._stopping.set()
        self._close_listener()

    def _close_listener(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        with self._lock:
            for sock in list(self._open.values()):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def pause(self) -> None:
        """Go away: new connections are refused and open ones are cut, until resume()."""
        self._close_listener()

    def resume(self) -> None:
        """Listen again on the same port, with the same posts."""
        host, port = self._httpd.server_address[:2]
        self._httpd = _Server((host, port), _Handler)
        self._httpd.fake = self
        self.start()

    def consume(self, n: int) -> None:
        """Spend n requests of this window's budget, as another client of the same app."""
        with self._lock:
            self._used += n

    def __enter__(self) -> FakeReddit:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- content ----------------------------------------------------------------------

    def add_posts(
        self, n: int, subreddit: str | None = None, created_utc: float | None = None
    ) -> list[dict[str, Any]]:
        """Publish n new posts (newest last) and return their data."""
        with self._lock:
            made = [self._make_post(self._made + i, subreddit, created_utc) for i in range(n)]
            self._made += n
            self._publish("t3", self._posts, made)
        return made

    def add_comments(
        self, n: int, subreddit: str | None = None, created_utc: float | None = None
    ) -> list[dict[str, Any]]:
        """Publish n new comments (newest last) and return their data.

        Each one comments on a post picked at random among those held (in `subreddit`,
        if given), or on a made-up older post when there is none; about half answer an
        earlier comment on the same post instead of the post itself.
        """
        with self._lock:
            links = [
                p
                for p in self._posts
                if p.get("name") not in self._purged
                and (subreddit is None or str(p.get("subreddit", "")).lower() == subreddit.lower())
            ]
            made: list[dict[str, Any]] = []
            for i in range(n):
                made.append(
                    self._make_comment(self._comments_made + i, links, made, subreddit, created_utc)
                )
            self._comments_made += n
            self._publish("t1", self._comments, made)
        return made

    def add_raw(self, items: Sequence[dict[str, Any]]) -> None:
        """Publish post data exactly as given (each needs at least `name`)."""
        with self._lock:
            made = [dict(item) for item in items]
            self._posts.extend(made)
            self._items.update((item["name"], ("t3", item)) for item in made)

    def add_raw_comments(self, items: Sequence[dict[str, Any]]) -> None:
        """Publish comment data exactly as given (each needs at least `name`)."""
        with self._lock:
            made = [dict(item) for item in items]
            self._comments.extend(made)
            self._items.update((item["name"], ("t1", item)) for item in made)

    def _publish(self, kind: str, into: list[dict[str, Any]], made: list[dict[str, Any]]) -> None:
        """Append `made` to one of the lists, under the lock, keeping `keep` and `published`."""
        into.extend(made)
        self._items.update((item["name"], (kind, item)) for item in made)
        if self.published is not None:
            now = time.time()
            self.published.update((item["name"], now) for item in made)
        if self.keep is not None and len(into) > self.keep:
            dropped = len(into) - self.keep
            for item in into[:dropped]:
                held = self._items.get(item["name"])
                if held is not None and held[1] is item:
                    del self._items[item["name"]]
            del into[:dropped]

    def remove(self, fullname: str) -> None:
        """Take an item out of listings, as a moderator removal or a spam filter does.

        /api/info still answers for it, as Reddit does for removed items.
        """
        with self._lock:
            self._removed.add(fullname)

    def purge(self, fullname: str) -> None:
        """Make an item vanish: out of listings and unknown to /api/info, as the items of
        a banned subreddit do. `posts`/`comments` still hold it: they record what was
        published."""
        with self._lock:
            self._purged.add(fullname)

    def update(self, fullname: str, **fields: Any) -> dict[str, Any]:
        """Set fields of a post or comment (score, num_comments, ...); returns its new data.

        Raises KeyError for an item the server does not hold.
        """
        return self._change(fullname, lambda kind, data: data.update(fields))

    def delete_by_author(self, fullname: str, *, hide: bool = False) -> dict[str, Any]:
        """What Reddit shows once the author deletes an item: author "[deleted]" with no
        `author_fullname` (nor the other author-only fields); a post keeps its title, its
        `selftext` becomes "[deleted]" and `removed_by_category` "deleted"; a comment's
        `body` becomes "[deleted]". `hide=True` also takes it out of listings."""

        def change(kind: str, data: dict[str, Any]) -> None:
            _drop_author(data)
            _replace_text(kind, data, "[deleted]")
            if kind == "t3":
                data["removed_by_category"] = "deleted"

        return self._change(fullname, change, hide)

    def remove_by_moderator(self, fullname: str, *, hide: bool = False) -> dict[str, Any]:
        """What Reddit shows once a moderator removes an item: a post keeps its author,
        its `selftext` becomes "[removed]" and `removed_by_category` "moderator"; a
        comment's `body` becomes "[removed]" and its author "[deleted]" (no
        `author_fullname`). `hide=True` also takes it out of listings."""

        def change(kind: str, data: dict[str, Any]) -> None:
            _replace_text(kind, data, "[removed]")
            if kind == "t3":
                data["removed_by_category"] = "moderator"
            else:
                _drop_author(data)

        return self._change(fullname, change, hide)

    def _change(
        self,
        fullname: str,
        change: Callable[[str, dict[str, Any]], None],
        hide: bool = False,
    ) -> dict[str, Any]:
        """Replace an item by a changed copy, so answers being written keep the old one."""
        with self._lock:
            held = self._items.get(fullname)
            if held is None:
                raise KeyError(fullname)
            kind, old = held
            new = dict(old)
            change(kind, new)
            self._items[fullname] = (kind, new)
            into = self._posts if kind == "t3" else self._comments
            for i in range(len(into) - 1, -1, -1):
                if into[i] is old:
                    into[i] = new
                    break
            if hide:
                self._removed.add(fullname)
        return dict(new)

    def item(self, fullname: str) -> dict[str, Any] | None:
        """The current data of a post or comment the server holds (purged ones too)."""
        with self._lock:
            held = self._items.get(fullname)
            return None if held is None else dict(held[1])

    @property
    def posts(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._posts)

    @property
    def comments(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._comments)

    def start_feed(
        self, rate: float, burst_every: float = 0, burst: int = 0, comment_rate: float = 0.0
    ) -> None:
        """New posts at `rate` per second; optionally `burst` extra every `burst_every` s;
        new comments at `comment_rate` per second."""
        self.stop_feed()
        self._feed_stop.clear()

        def run() -> None:
            started = last_burst = time.monotonic()
            made = comments = 0
            while not self._feed_stop.wait(0.02):
                now = time.monotonic()
                due = int((now - started) * rate) - made
                if due > 0:
                    self.add_posts(due)
                    made += due
                if comment_rate:
                    due = int((now - started) * comment_rate) - comments
                    if due > 0:
                        self.add_comments(due)
                        comments += due
                if burst_every and now - last_burst >= burst_every:
                    self.add_posts(burst)
                    last_burst = now

        self._feed = threading.Thread(target=run, daemon=True)
        self._feed.start()

    def stop_feed(self) -> None:
        self._feed_stop.set()
        if self._feed is not None:
            self._feed.join()
            self._feed = None

    def inject(self, *faults: Fault, endpoint: str = "listing") -> None:
        """Queue faults for the next requests to `endpoint`: "listing" (any /r/ listing),
        "new" or "comments" (one kind of listing), "info", "token", or "any"."""
        with self._lock:
            self._faults.extend((endpoint, f) for f in faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def connections(self) -> int:
        """How many TCP connections have carried requests."""
        with self._lock:
            return len(self._conn_ids)

    def listing_requests(self) -> list[RequestRecord]:
        """Every request to a path under /r/: post and comment listings alike."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/r/")]

    def post_requests(self) -> list[RequestRecord]:
        """Requests for post listings (/r/<subs>/new) only."""
        return self._requests_to("new")

    def comment_requests(self) -> list[RequestRecord]:
        """Requests for comment listings (/r/<subs>/comments) only."""
        return self._requests_to("comments")

    def info_requests(self) -> list[RequestRecord]:
        """Requests to /api/info."""
        return self._requests_to("info")

    def _requests_to(self, endpoint: str) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if r.endpoint == endpoint]

    # -- generating items -------------------------------------------------------------

    TITLES = (
        "Q&A: what's <your> favourite & why?",
        "Ünïcödé ☕ and emoji 🐍🚀 in a title",
        "AT&T &amp; friends: literal entity text stays",
        "Quotes \"double\" and 'single' and \\backslash",
        "Plain title number {n}",
        "Tabs\tand  double  spaces",
        "<script>alert(1)</script> is just text",
        "日本語のタイトル {n}",
    )

    def _make_post(
        self, n: int, subreddit: str | None, created_utc: float | None
    ) -> dict[str, Any]:
        rng = self._rng
        id_ = base36(ID_START + n)
        sub = subreddit or rng.choice(("python", "AskReddit", "news", "pics", "sqlite"))
        created = float(int(time.time())) if created_utc is None else float(created_utc)
        is_self = n % 3 == 0
        deleted = n % 11 == 5
        permalink = f"/r/{sub}/comments/{id_}/post_{n}/"
        post: dict[str, Any] = {
            "name": f"t3_{id_}",
            "id": id_,
            "created_utc": created,
            "created": created + 28800,
            "subreddit": sub,
            "subreddit_id": "t5_" + base36(1000 + len(sub)),
            "subreddit_name_prefixed": f"r/{sub}",
            "author": "[deleted]" if deleted else f"user_{n % 97}",
            "title": rng.choice(self.TITLES).replace("{n}", str(n)),
            "selftext": f"Body of {n} with a & and <b>" if is_self else "",
            "url": permalink if is_self else f"https://example.com/{n}?a=1&b=2",
            "permalink": permalink,
            "domain": f"self.{sub}" if is_self else "example.com",
            "is_self": is_self,
            "over_18": n % 13 == 0,
            "score": rng.randint(0, 50),
            "num_comments": rng.randint(0, 20),
            "edited": False if n % 5 else created + 60.5,
        }
        if not deleted:
            post["author_fullname"] = "t2_" + base36(5000 + n % 97)
        if self.big:
            post.update(_padding(n, rng))
        return post

    BODIES = (
        'Q&A: the answer is <b>not</b> "obvious" & it\'s fine',
        "Ünïcödé reply ☕ with emoji 🐍🚀",
        "First paragraph.\n\nSecond one with a [link](https://example.com/?a=1&b=2).",
        "&#x200B;\n\nliteral entity text &amp; stays as typed",
        "> quoted line\n\nreply number {n}",
        "日本語のコメント {n}",
        "one line\nand a second line\tafter a tab",
        "<script>alert(1)</script> is just text",
        "Plain comment number {n}",
    )

    def _new_comment_id(self) -> str:
        """A comment id never given before (nor published with `add_raw_comments`)."""
        while True:
            n = self._comment_ids.randrange(*COMMENT_IDS)
            id_ = base36(n)
            if n not in self._comment_ids_used and f"t1_{id_}" not in self._items:
                self._comment_ids_used.add(n)
                return id_

    def _make_comment(
        self,
        n: int,
        links: list[dict[str, Any]],
        made: list[dict[str, Any]],
        subreddit: str | None,
        created_utc: float | None,
    ) -> dict[str, Any]:
        """Comment number n on one of `links` (made-up when empty); `made` are the ones
        made before it in the same call, not yet published."""
        rng = self._rng
        id_ = self._new_comment_id()
        created = float(int(time.time())) if created_utc is None else float(created_utc)
        if links:
            link = rng.choice(links)
            link_id = str(link["name"])
            sub = str(link.get("subreddit") or subreddit or "python")
            title = str(link.get("title", ""))
            slug = _slug_of(str(link.get("permalink", ""))) or _slugify(title)
            link_permalink = f"/r/{sub}/comments/{link_id[3:]}/{slug}/"
            link_author = str(link.get("author", "[deleted]"))
            link_url = str(link.get("url") or link_permalink)
            num_comments = int(link.get("num_comments") or 0)
            over_18 = bool(link.get("over_18", False))
        else:  # an older post the fake never listed: ids below the first post's
            link_id = "t3_" + base36(rng.randrange(ID_START // 2, ID_START))
            sub = subreddit or rng.choice(("python", "AskReddit", "news", "pics", "sqlite"))
            title = rng.choice(self.TITLES).replace("{n}", str(n))
            slug = _slugify(title)
            link_permalink = f"/r/{sub}/comments/{link_id[3:]}/{slug}/"
            link_author = f"user_{rng.randrange(97)}"
            link_url = f"https://example.com/{link_id[3:]}?a=1&b=2"
            num_comments = rng.randint(1, 500)
            over_18 = False
        parent_id = link_id
        if rng.random() < 0.5:
            earlier = [
                c["name"] for c in (*self._comments[-500:], *made) if c.get("link_id") == link_id
            ]
            if earlier:
                parent_id = rng.choice(earlier)
        deleted = n % 11 == 5
        author = "[deleted]" if deleted else f"user_{n % 89}"
        body = rng.choice(self.BODIES).replace("{n}", str(n))
        score = rng.randint(-5, 50)
        comment: dict[str, Any] = {
            "name": f"t1_{id_}",
            "id": id_,
            "created_utc": created,
            "created": created + 28800,
            "subreddit": sub,
            "subreddit_id": "t5_" + base36(1000 + len(sub)),
            "subreddit_name_prefixed": f"r/{sub}",
            "subreddit_type": "public",
            "author": author,
            "body": body,
            "body_html": _markdown_html(body),
            "link_id": link_id,
            "parent_id": parent_id,
            "link_title": title,
            "link_author": link_author,
            "link_url": link_url,
            "link_permalink": "https://www.reddit.com" + link_permalink,
            "permalink": f"{link_permalink}{id_}/",
            "num_comments": num_comments,
            "over_18": over_18,
            "is_submitter": not deleted and author == link_author,
            "score": score,
            "ups": score,
            "downs": 0,
            "score_hidden": False,
            "controversiality": 1 if n % 17 == 3 else 0,
            "edited": False if n % 6 else created + 42.5,
            "replies": "",
            "gilded": 0,
            "stickied": False,
            "distinguished": None,
            "collapsed": False,
            "locked": False,
            "archived": False,
            "removal_reason": None,
            "banned_by": None,
        }
        if not deleted:
            comment["author_fullname"] = "t2_" + base36(5000 + n % 89)
            comment["author_flair_richtext"] = []
            comment["author_flair_type"] = "text"
            comment["author_premium"] = False
            comment["author_patreon_flair"] = False
        return comment

    # -- serving ----------------------------------------------------------------------

    def _connected(self, sock: socket.socket) -> int:
        with self._lock:
            self._next_conn += 1
            self._open[self._next_conn] = sock
            return self._next_conn

    def _disconnected(self, sock: socket.socket) -> None:
        with self._lock:
            for key, value in list(self._open.items()):
                if value is sock:
                    del self._open[key]

    def _serve(self, h: _Handler) -> None:
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        endpoint = _endpoint(path)
        record = RequestRecord(
            h.command,
            path,
            params,
            {k.lower(): v for k, v in h.headers.items()},
            h.conn_id,
            time.monotonic(),
            endpoint=endpoint,
        )
        with self._lock:
            self.requests.append(record)
            self._conn_ids.add(h.conn_id)
            fault = self._next_fault(endpoint)
        record.fault = fault.kind if fault else None
        if fault is not None and fault.kind == "hang":
            record.hung = True
            self._stopping.wait(fault.seconds if fault.seconds is not None else 3600)
            h.close_connection = True
            return
        if fault is not None and fault.kind == "reset":
            record.status = -1
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True
            return
        if fault is not None and fault.kind == "slow":
            self._stopping.wait(fault.seconds or 0)
            fault = None
        if endpoint == "token":
            status, headers, payload = self._token(h, body, fault)
        elif endpoint == "info":
            status, headers, payload = self._info(h, params, record, fault)
        else:
            status, headers, payload = self._listing(h, path, params, record, fault)
        record.status = status
        self._send(h, status, headers, payload)

    def _next_fault(self, endpoint: str) -> Fault | None:
        for i, (where, fault) in enumerate(self._faults):
            if where in (endpoint, "any") or (where == "listing" and endpoint in LISTINGS):
                del self._faults[i]
                return fault
        if endpoint != "token" and self.chaos and self._rng.random() < self.chaos:
            return self._rng.choice(self.chaos_mix)
        return None

    def _send(self, h: _Handler, status: int, headers: dict[str, str], payload: bytes) -> None:
        if len(payload) > 1024 and "gzip" in (h.headers.get("accept-encoding") or ""):
            payload = gzip.compress(payload, compresslevel=1)
            headers["content-encoding"] = "gzip"
        h.send_response(status)
        for name, value in headers.items():
            h.send_header(name, value)
        h.send_header("content-length", str(len(payload)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(payload)

    def _fault_answer(self, fault: Fault) -> tuple[int, dict[str, str], bytes]:
        headers = dict(fault.headers)
        if fault.content_type:
            headers["content-type"] = fault.content_type
        return fault.status, headers, fault.body

    def _token(
        self, h: _Handler, body: bytes, fault: Fault | None
    ) -> tuple[int, dict[str, str], bytes]:
        if fault is not None:
            return self._fault_answer(fault)
        json_type = {"content-type": "application/json; charset=UTF-8"}
        if h.command != "POST":
            return 405, json_type, b'{"message": "Method Not Allowed", "error": 405}'
        auth = h.headers.get("authorization") or ""
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if auth != "Basic " + expected:
            return 401, json_type, b'{"message": "Unauthorized", "error": 401}'
        form = {k: v[0] for k, v in parse_qs(body.decode("latin-1")).items()}
        if form.get("grant_type") != "client_credentials":
            return 200, json_type, b'{"error": "unsupported_grant_type"}'
        with self._lock:
            self.tokens_issued += 1
            token = f"fake-token-{self.tokens_issued}-{self._rng.getrandbits(48):x}"
            self._tokens[token] = time.monotonic() + self.token_ttl
        ttl: float = (
            int(self.token_ttl) if self.token_ttl == int(self.token_ttl) else self.token_ttl
        )
        doc = {"access_token": token, "token_type": "bearer", "expires_in": ttl, "scope": "*"}
        return 200, json_type, json.dumps(doc).encode()

    def _rate_headers(self) -> tuple[dict[str, str], bool]:
        """Count this request against the window; (headers, over budget)."""
        now = time.monotonic()
        with self._lock:
            if now - self._window_start >= self.ratelimit_window:
                elapsed = now - self._window_start
                self._window_start += self.ratelimit_window * (elapsed // self.ratelimit_window)
                self._used = 0
            self._used += 1
            used = self._used
            reset = max(0, math.ceil(self._window_start + self.ratelimit_window - now))
        remaining = max(0, self.ratelimit_budget - used)
        headers = {}
        if self.ratelimit_headers:
            headers = {
                "x-ratelimit-used": str(used),
                "x-ratelimit-remaining": f"{remaining:.1f}",
                "x-ratelimit-reset": str(reset),
            }
        return headers, used > self.ratelimit_budget

    def _gate(self, h: _Handler, fault: Fault | None) -> tuple[dict[str, str], Answer | None]:
        """Auth, the rate budget and status faults, as for every API call: the rate
        headers to send, and the answer to give instead of the data, if any."""
        json_type = {"content-type": JSON_TYPE}
        auth = h.headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            expires = self._tokens.get(auth[7:].strip())
            if expires is None or time.monotonic() >= expires:
                return {}, (
                    401,
                    {**json_type, "www-authenticate": 'Bearer realm="reddit"'},
                    (b'{"message": "Unauthorized", "error": 401}'),
                )
        elif self.block_unauthenticated:
            return {}, (403, {"content-type": "text/html; charset=UTF-8"}, BLOCK_PAGE)
        elif self.require_auth:
            return {}, (401, json_type, b'{"message": "Unauthorized", "error": 401}')
        rate, over = self._rate_headers()
        if fault is not None and fault.kind not in ("truncated_json", "empty_listing"):
            status, headers, payload = self._fault_answer(fault)
            return rate, (status, {**rate, **headers}, payload)
        if over and self.enforce_ratelimit:
            with self._lock:
                self.rate_limited += 1
            return rate, (
                429,
                {**rate, **json_type},
                b'{"message": "Too Many Requests", "error": 429}',
            )
        return rate, None

    def _listing(
        self,
        h: _Handler,
        path: str,
        params: dict[str, str],
        record: RequestRecord,
        fault: Fault | None,
    ) -> Answer:
        rate, answer = self._gate(h, fault)
        if answer is not None:
            return answer
        route = _listing_route(path)
        if route is None:
            return (
                404,
                {**rate, "content-type": JSON_TYPE},
                b'{"message": "Not Found", "error": 404}',
            )
        kind, subs = route
        fresh = not params.get("after") and not params.get("before")
        if kind == "t3" and self.firehose and fresh:
            self.add_posts(self.firehose)  # every fresh poll finds this many new posts
        with self._lock:
            held = self._posts if kind == "t3" else self._comments
            visible = [
                item
                for item in held
                if item["name"] not in self._removed
                and item["name"] not in self._purged
                and (subs is None or str(item.get("subreddit", "")).lower() in subs)
            ]
        items, after, before = self._page(visible, params)
        return self._listing_answer(
            rate, [(kind, item) for item in items], after, before, params, record, fault
        )

    def _info(
        self, h: _Handler, params: dict[str, str], record: RequestRecord, fault: Fault | None
    ) -> Answer:
        rate, answer = self._gate(h, fault)
        if answer is not None:
            return answer
        ids = [i.strip() for i in (params.get("id") or "").split(",") if i.strip()]
        if len(ids) > MAX_INFO_IDS:
            doc = {
                "message": "Bad Request",
                "error": 400,
                "reason": "TOO_MANY_THING_IDS",
                "explanation": f"at most {MAX_INFO_IDS} ids",
            }
            return 400, {**rate, "content-type": JSON_TYPE}, json.dumps(doc).encode()
        with self._lock:
            found = [
                self._items[i]
                for i in dict.fromkeys(ids)  # each id once, in the order asked
                if i in self._items and i not in self._purged
            ]
        return self._listing_answer(rate, found, None, None, params, record, fault)

    def _listing_answer(
        self,
        rate: dict[str, str],
        children: list[tuple[str, dict[str, Any]]],
        after: str | None,
        before: str | None,
        params: dict[str, str],
        record: RequestRecord,
        fault: Fault | None,
    ) -> Answer:
        """The Listing document for `children`, with the data faults applied."""
        if fault is not None and fault.kind == "empty_listing":
            children, after, before = [], None, None
        record.items = len(children)
        if params.get("raw_json") != "1":
            children = [(kind, _escaped(item)) for kind, item in children]
        doc = {
            "kind": "Listing",
            "data": {
                "after": after,
                "dist": len(children),
                "modhash": None,
                "geo_filter": "",
                "children": [{"kind": kind, "data": item} for kind, item in children],
                "before": before,
            },
        }
        payload = json.dumps(doc, ensure_ascii=False).encode()
        if fault is not None and fault.kind == "truncated_json":
            payload = payload[: max(1, len(payload) // 2)]
        return 200, {**rate, "content-type": JSON_TYPE}, payload

    def _page(
        self, visible: list[dict[str, Any]], params: dict[str, str]
    ) -> tuple[list[dict[str, Any]], str | None, str | None]:
        """One page of `visible` (oldest first) by `limit`, `after` and `before`."""
        try:
            limit = min(100, max(1, int(params.get("limit") or 25)))
        except ValueError:
            limit = 25
        visible = visible[-self.listing_depth :][::-1]  # newest first
        names = [p["name"] for p in visible]
        after, before = params.get("after"), params.get("before")
        if after:
            if after not in names:
                return [], None, None
            start = names.index(after) + 1
            items = visible[start : start + limit]
            more = start + limit < len(visible)
            return (
                items,
                items[-1]["name"] if items and more else None,
                (items[0]["name"] if items else None),
            )
        if before:
            if before not in names:
                return [], None, None
            end = names.index(before)
            items = visible[max(0, end - limit) : end]
            return items, None, None
        items = visible[:limit]
        return items, items[-1]["name"] if len(visible) > limit else None, None


def _endpoint(path: str) -> str:
    """Which endpoint a path asks for, as `inject(endpoint=)` and `RequestRecord` name it."""
    if path == "/api/v1/access_token":
        return "token"
    if path.rstrip("/") in ("/api/info", "/api/info.json", "/api/info/.json"):
        return "info"
    route = _listing_route(path)
    if route is None:
        return "listing"  # unknown paths are answered, with a 404, as listings
    return "new" if route[0] == "t3" else "comments"


def _listing_route(path: str) -> tuple[str, set[str] | None] | None:
    """`/r/a+b/new(.json)` -> ("t3", {"a", "b"}); `/r/all/comments` -> ("t1", None) (every
    subreddit); anything else -> None."""
    if path.endswith("/.json"):  # Reddit serves /r/x/new/.json like /r/x/new.json
        path = path[: -len("/.json")] + ".json"
    parts = path.strip("/").split("/")
    if len(parts) != 3 or parts[0] != "r":
        return None
    kind = {"new": "t3", "new.json": "t3", "comments": "t1", "comments.json": "t1"}.get(parts[2])
    if kind is None:
        return None
    names = {s.lower() for s in parts[1].split("+") if s}
    return kind, None if names == {"all"} else names


def _slug_of(permalink: str) -> str:
    """The title slug of a post permalink `/r/<sub>/comments/<id>/<slug>/`, or ""."""
    parts = permalink.strip("/").split("/")
    return parts[4] if len(parts) >= 5 and parts[2] == "comments" else ""


def _slugify(title: str) -> str:
    """A permalink slug as Reddit makes one: lower-case ASCII words joined by "_"."""
    words = "".join(ch if ch.isascii() and ch.isalnum() else " " for ch in title.lower())
    return "_".join(words.split())[:50].rstrip("_") or "_"


def _html_text(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def _markdown_html(body: str) -> str:
    """`body_html` for a markdown body: paragraphs in Reddit's `<div class="md">`."""
    paragraphs = [p for p in body.split("\n\n") if p.strip()] or [""]
    inner = "\n\n".join(f"<p>{_html_text(p)}</p>" for p in paragraphs)
    return f'<div class="md">{inner}\n</div>'


def _drop_author(data: dict[str, Any]) -> None:
    data["author"] = "[deleted]"
    for key in AUTHOR_ONLY_FIELDS:
        data.pop(key, None)


def _replace_text(kind: str, data: dict[str, Any], text: str) -> None:
    """Put "[deleted]" or "[removed]" where the text of a post or comment was."""
    if kind == "t1":
        data["body"] = text
        data["body_html"] = _markdown_html(text)
        return
    data["selftext"] = text
    if data.get("selftext_html") is not None:
        data["selftext_html"] = f"<!-- SC_OFF -->{_markdown_html(text)}<!-- SC_ON -->"


def _escaped(value: Any) -> Any:
    """What Reddit sends without raw_json=1: &, < and > as entities in every string."""
    if isinstance(value, str):
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def _padding(n: int, rng: random.Random) -> dict[str, Any]:
    """About 85 more fields, so a post weighs about 3.5 KB of JSON as real ones do."""
    extra: dict[str, Any] = {
        "approved_at_utc": None,
        "saved": False,
        "mod_reason_title": None,
        "gilded": 0,
        "clicked": False,
        "link_flair_richtext": [],
        "hidden": False,
        "pwls": 6,
        "link_flair_css_class": None,
        "downs": 0,
        "thumbnail_height": 140,
        "top_awarded_type": None,
        "hide_score": True,
        "quarantine": False,
        "link_flair_text_color": "dark",
        "upvote_ratio": 1.0,
        "author_flair_background_color": None,
        "subreddit_type": "public",
        "ups": rng.randint(0, 50),
        "total_awards_received": 0,
        "media_embed": {},
        "thumbnail_width": 140,
        "author_flair_template_id": None,
        "is_original_content": False,
        "user_reports": [],
        "secure_media": None,
        "is_reddit_media_domain": False,
        "is_meta": False,
        "category": None,
        "secure_media_embed": {},
        "link_flair_text": None,
        "can_mod_post": False,
        "approved_by": None,
        "is_created_from_ads_ui": False,
        "author_premium": False,
        "thumbnail": "https://b.thumbs.redditmedia.com/" + "x" * 43 + ".jpg",
        "author_flair_css_class": None,
        "author_flair_richtext": [],
        "gildings": {},
        "post_hint": "link",
        "content_categories": None,
        "mod_note": None,
        "link_flair_type": "text",
        "wls": 6,
        "removed_by_category": None,
        "banned_by": None,
        "author_flair_type": "text",
        "allow_live_comments": False,
        "selftext_html": None,
        "likes": None,
        "suggested_sort": None,
        "banned_at_utc": None,
        "view_count": None,
        "archived": False,
        "no_follow": True,
        "is_crosspostable": True,
        "pinned": False,
        "all_awardings": [],
        "awarders": [],
        "media_only": False,
        "can_gild": False,
        "spoiler": False,
        "locked": False,
        "author_flair_text": None,
        "treatment_tags": [],
        "visited": False,
        "removed_by": None,
        "num_reports": None,
        "distinguished": None,
        "mod_reason_by": None,
        "removal_reason": None,
        "link_flair_background_color": "",
        "is_robot_indexable": True,
        "report_reasons": None,
        "discussion_type": None,
        "send_replies": True,
        "contest_mode": False,
        "author_patreon_flair": False,
        "author_flair_text_color": None,
        "parent_whitelist_status": "all_ads",
        "stickied": False,
        "whitelist_status": "all_ads",
        "mod_reports": [],
        "subreddit_subscribers": 1234567,
        "num_crossposts": 0,
        "media": None,
        "is_video": False,
        "url_overridden_by_dest": f"https://example.com/{n}",
        "preview": {
            "images": [
                {
                    "source": {
                        "url": f"https://preview.redd.it/{n}.jpg?auto=webp"
                        "&amp;s=" + "0123456789abcdef" * 2,
                        "width": 1200,
                        "height": 800,
                    },
                    "resolutions": [
                        {
                            "url": f"https://preview.redd.it/{n}.jpg?width={w}&amp;crop=smart",
                            "width": w,
                            "height": w * 2 // 3,
                        }
                        for w in (108, 216, 320, 640, 960, 1080)
                    ],
                    "variants": {},
                    "id": "a" * 43,
                }
            ],
            "enabled": False,
        },
    }
    return extra


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fake Reddit for watching redpipe offline.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--rate", type=float, default=5, help="new posts per second")
    parser.add_argument("--posts", type=int, default=150, help="posts listed at start")
    parser.add_argument("--comment-rate", type=float, default=0, help="new comments per second")
    parser.add_argument(
        "--chaos",
        type=float,
        default=0.0,
        help="share of listing requests that get a random fault (0-1)",
    )
    args = parser.parse_args(argv)
    fake = FakeReddit(port=args.port, chaos=args.chaos).start()
    fake.add_posts(args.posts)
    fake.start_feed(args.rate, comment_rate=args.comment_rate)
    print(
        f"fake Reddit at {fake.url}: {args.rate:g} posts/s, "
        f"{args.comment_rate:g} comments/s, client id "
        f"{fake.client_id!r}, secret {fake.client_secret!r}. Try:\n"
        f"  REDPIPE_CLIENT_ID={fake.client_id} REDPIPE_CLIENT_SECRET={fake.client_secret} "
        f"./redpipe.pyz demo.sqlite --base-url {fake.url} --auth-url {fake.url}",
        file=sys.stderr,
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
