"""Section 10 of bench/run.py: the full-text index (--fts), what it costs and how fast
`search` answers.

    .bench/bin/python bench/run.py --only fulltext [--runs 5]

- insert: one dump of posts and comments (RS_ and RC_ files) replayed by the built .pyz
  into a fresh SQLite file without and with --fts, alternated round by round, and the
  same into fresh PostgreSQL databases; then --fts given to a replay of the dump already
  replayed into the plain file or database, which indexes the rows held (the one-off
  cost of turning the index on), against the same replay without --fts.
- search: `redpipe.pyz search` over 1,000,000 posts and 1,000,000 comments, as a whole
  process and, on the same file, the query alone (redpipe's own SQL, timed inside one
  process), against `redpipe.pyz --version` as the floor of a process start.

The text is made here, not taken from anywhere: words drawn from a Zipf-Mandelbrot law
over a vocabulary of 400,000 (a head of common English words, then made-up ones), its
lengths drawn to match the listings in ../shared/fixtures/reddit/ (titles: median 9
words; 20% of posts with a self text, median 87 words; comments: median 14 words), and a
few set phrases planted. A million rows take minutes to make, so the search database is
kept under the system's temporary folder between runs, named by this generator's version
and the build's sha256, and made again when either changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run alone too: the source tree's packages

from tests.fakereddit import base36  # noqa: E402

GENERATOR = 1  # bump when what the corpus makes changes: cached databases are made again
CACHE = Path(tempfile.gettempdir()) / "redpipe-bench-fulltext"
START = 1_700_000_000  # created_utc of the first post
POSTS_PER_SECOND = 17  # r/all's pace (section 3c): a million posts span 16 hours

# The head of the vocabulary, roughly in order of frequency in Reddit text, followed by
# made-up words. Contractions and a few words outside ASCII are kept as people write them.
HEAD_TEXT = """
the i to and a of you it is that in my for this on was with me but so just have be not
are like they what your if do at all can he we as or get one about out people up would an
from there no know when think she them time her really how good now been had more some his
did will because got even don't then want make go going see which who also than other much
day still first back new way could our work any year should game last need only right said
love years over never into why things lol yes where thing too very those well after best
thanks thank feel life here sure I'm it's can't doesn't didn't that's you're I've isn't
man guys look let help find off post two same better around many down while around through
anyone does every made great always something someone take long since little old before
lot again home each both both might being used say world free please big come money few
went bad video play playing played player players playstation games gaming gamer reddit
subreddit new york night week today tomorrow yesterday morning school job friend friends
family mom dad wife husband girlfriend boyfriend dog dogs cat cats car house phone music
movie movies show watch watching episode season team fans win lost vs question advice
anyone help update edit tl dr oc meme memes pic pics picture photo art drawing made
first time looking kind pretty probably actually literally basically honestly definitely
maybe almost enough hard easy fun funny weird crazy happy sad angry tired sorry hope hopefully
least most less next last new old young real fake true false full empty open close
stop start end call called name number part place point problem issue change story fact
idea case group company system government country city state president election police
news report study health doctor hospital covid vaccine food water coffee beer pizza
computer software code python linux windows apple google android iphone build server data
café naïve über jalapeño résumé façade 日本 中文 한국어 москва
"""
HEAD = tuple(dict.fromkeys(HEAD_TEXT.split()))  # in order, once each
TAIL_CONSONANTS = "bdfghklmnprstvz"
TAIL_VOWELS = "aeiou"
VOCABULARY = 400_000
# p(rank) ~ (rank + q)^-s. Drawn 16,706 times (the fixtures' titles, self texts and
# bodies hold 16,706 words, 3,947 of them distinct, 2,379 seen once, `the` 3.0%), this law
# gives about 3,650 distinct, 2,600 seen once and `the` at 2.7-2.9%.
ZIPF_S, ZIPF_Q = 1.35, 12.0
# Collocations, each planted in 1 of PLANTED word slots, so phrases match more than
# chance: the fixtures' text is not a bag of words.
PHRASES = (
    "i think", "thank you", "last night", "does anyone know", "a lot of", "at least",
    "right now", "new york", "video game", "first time", "looking for", "as well",
    "tl dr", "this is the", "i don't know", "one of the", "for the first time",
)  # fmt: skip
PLANTED = 60
SUBREDDIT_TEXT = """
AskReddit funny gaming pics memes news worldnews aww videos politics teenagers
mildlyinteresting relationship_advice PublicFreakout nba nfl soccer movies Music
todayilearned interestingasfuck wallstreetbets Damnthatsinteresting AmItheAsshole
leagueoflegends pcmasterrace dankmemes nextfuckinglevel science technology
"""
SUBREDDITS = SUBREDDIT_TEXT.split()
SUBREDDIT_COUNT = 8000


SYLLABLES = [c + v for c in TAIL_CONSONANTS for v in TAIL_VOWELS]
WORD_SPACE = len(SYLLABLES) ** 3


def made_up(n: int) -> str:
    """The nth made-up word, distinct for each n below WORD_SPACE: three consonant-vowel
    syllables in an order scrambled by n, one in three with a closing consonant. None is
    an English word, and none starts like `play`."""
    m = n * 1_000_003 % WORD_SPACE  # 1,000,003 is prime to 75^3: a permutation
    a, b = divmod(m, len(SYLLABLES))
    a, c = divmod(a, len(SYLLABLES))
    word = SYLLABLES[a] + SYLLABLES[c] + SYLLABLES[b]
    return word + TAIL_CONSONANTS[n % 15] if n % 3 == 0 else word


def vocabulary() -> list[str]:
    return [*HEAD, *(made_up(n) for n in range(VOCABULARY - len(HEAD)))]


def zipf(count: int, s: float, q: float) -> list[float]:
    """Cumulative weights of ranks 1..count under p(rank) ~ (rank + q)^-s."""
    return list(itertools.accumulate((r + q) ** -s for r in range(1, count + 1)))


class Corpus:
    """Deterministic text and records: the same seed, the same dump, byte for byte."""

    def __init__(self, seed: int = 15) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary()
        self.cum = zipf(len(self.words), ZIPF_S, ZIPF_Q)
        self.subreddits = SUBREDDITS + [f"sub_{made_up(n)}" for n in range(SUBREDDIT_COUNT)]
        self.sub_cum = zipf(len(self.subreddits), 0.9, 2.0)
        self.phrases = [p.split() for p in PHRASES]

    def draw(self, n: int) -> list[str]:
        words = self.rng.choices(self.words, cum_weights=self.cum, k=n)
        for _ in range(n // PLANTED + (self.rng.random() < (n % PLANTED) / PLANTED)):
            at = self.rng.randrange(n)
            phrase = self.rng.choice(self.phrases)
            words[at : at + len(phrase)] = phrase
        return words[:n] if len(words) > n else words

    def length(self, median: float, sigma: float, most: int) -> int:
        return max(1, min(most, round(self.rng.lognormvariate(math.log(median), sigma))))

    def text(self, n: int, paragraphs: bool) -> str:
        """n words as sentences of 4 to 18 words (capitalized, punctuated), with blank
        lines between paragraphs and now and then a markdown link."""
        words = self.draw(n)
        rng = self.rng
        out: list[str] = []
        at = 0
        sentences = 0
        while at < n:
            size = rng.randint(4, 18)
            sentence = words[at : at + size]
            at += size
            sentence[0] = sentence[0][:1].upper() + sentence[0][1:]
            if rng.random() < 0.04:
                link = rng.choice(self.words[:3000])
                sentence.append(f"[{link}](https://www.example.com/{link}/{rng.randrange(10**6)})")
            out.append(" ".join(sentence) + rng.choice(".....?!"))
            sentences += 1
            if paragraphs and sentences % 4 == 0:
                out.append("\n\n")
        return " ".join(out).replace(" \n\n ", "\n\n").strip()

    def title(self) -> str:
        text = self.text(self.length(9, 0.75, 60), paragraphs=False)
        return text[:300].rstrip(".")  # Reddit's limit; titles seldom end in a full stop

    def subreddit(self) -> str:
        return self.rng.choices(self.subreddits, cum_weights=self.sub_cum)[0]

    def author(self) -> tuple[str, str | None]:
        if self.rng.random() < 0.05:
            return "[deleted]", None
        n = min(int(self.rng.paretovariate(0.6)), 10**7)
        return f"{made_up(n)}_{n % 1000}", "t2_" + base36(10**8 + n)

    def post(self, i: int) -> dict[str, Any]:
        """Post number i (ids and created_utc ascending, as in a Pushshift RS_ file), with
        the fields redpipe keeps."""
        rng = self.rng
        id_ = base36(int("1tv00000", 36) + i)
        sub = self.subreddit()
        author, author_id = self.author()
        is_self = rng.random() < 0.24
        selftext = ""
        if is_self and rng.random() < 0.85:
            selftext = self.text(self.length(87, 1.2, 3000), paragraphs=True)
            if rng.random() < 0.04:
                selftext = "[removed]"
        title = self.title()
        slug = "_".join(title.lower().split()[:6])[:50]
        permalink = f"/r/{sub}/comments/{id_}/{slug}/"
        post: dict[str, Any] = {
            "name": f"t3_{id_}",
            "id": id_,
            "created_utc": START + i // POSTS_PER_SECOND,
            "subreddit": sub,
            "subreddit_id": "t5_" + base36(10**6 + len(sub) * 7919 + ord(sub[-1])),
            "author": author,
            "title": title,
            "selftext": selftext,
            "url": f"https://www.reddit.com{permalink}" if is_self else f"https://i.redd.it/{id_}",
            "permalink": permalink,
            "domain": f"self.{sub}" if is_self else "i.redd.it",
            "is_self": is_self,
            "over_18": rng.random() < 0.1,
            "score": int(rng.paretovariate(1.2)) - 1,
            "num_comments": int(rng.paretovariate(1.1)) - 1,
            "edited": False,
        }
        if author_id:
            post["author_fullname"] = author_id
        return post

    def comment(self, j: int, posts: int, comments: int) -> dict[str, Any]:
        """Comment number j of `comments`, spread over the span of `posts` posts, on one of
        the posts of the six hours before it (ids and created_utc ascending, as in RC_)."""
        rng = self.rng
        created = START + (j * posts // comments) // POSTS_PER_SECOND
        newest = min(posts - 1, (created - START + 1) * POSTS_PER_SECOND - 1)
        link = rng.randint(max(0, newest - 6 * 3600 * POSTS_PER_SECOND), newest)
        link_id = "t3_" + base36(int("1tv00000", 36) + link)
        id_ = base36(int("1000000", 36) * 40 + j)
        parent = link_id
        if j and rng.random() < 0.6:
            parent = "t1_" + base36(int("1000000", 36) * 40 + rng.randrange(max(0, j - 5000), j))
        author, author_id = self.author()
        body = self.text(self.length(14, 1.4, 1500), paragraphs=True)
        if rng.random() < 0.04:
            body = rng.choice(("[deleted]", "[removed]"))
        sub = self.subreddit()
        comment: dict[str, Any] = {
            "name": f"t1_{id_}",
            "id": id_,
            "created_utc": created,
            "subreddit": sub,
            "author": author,
            "body": body,
            "link_id": link_id,
            "parent_id": parent,
            "permalink": f"/r/{sub}/comments/{link_id[3:]}/_/{id_}/",
        }
        if author_id:
            comment["author_fullname"] = author_id
        return comment


def write_posts(path: Path, posts: int, *, full: bool) -> None:
    """An RS_ file of `posts` posts. `full` gives each record the hundred-odd other fields
    a listing sends (tests/fakereddit.py's big posts), as a real dump holds them; without
    it a record has only what redpipe keeps: the same rows from a file a fifth the size."""
    from tests.fakereddit import FakeReddit

    corpus = Corpus(seed=15)
    fake = FakeReddit(big=True, keep=0) if full else None
    base: list[dict[str, Any]] = []
    with open(path, "w", encoding="utf-8") as out:
        for i in range(posts):
            post = corpus.post(i)
            if fake is not None:
                if not base:
                    base = fake.add_posts(1000)
                post = {**base.pop(), **post, "created": post["created_utc"]}
                post["selftext_html"] = html_of(post["selftext"]) if post["selftext"] else None
            out.write(json.dumps(post, ensure_ascii=False) + "\n")
    if fake is not None:
        fake.stop()


def write_comments(path: Path, comments: int, posts: int, *, full: bool) -> None:
    """An RC_ file of `comments` comments on the posts of write_posts(posts); `full` as
    there, with the fields of the fixture's comments that the fake's lack."""
    from tests.fakereddit import FakeReddit

    corpus = Corpus(seed=16)
    fake = FakeReddit(big=True, keep=0) if full else None
    base: list[dict[str, Any]] = []
    with open(path, "w", encoding="utf-8") as out:
        for j in range(comments):
            comment = corpus.comment(j, posts, comments)
            if fake is not None:
                if not base:
                    base = fake.add_comments(1000)
                comment = {**COMMENT_FIELDS, **base.pop(), **comment}
                comment["created"] = comment["created_utc"]
                comment["body_html"] = html_of(comment["body"])
                comment["link_permalink"] = "https://www.reddit.com" + comment["permalink"]
            out.write(json.dumps(comment, ensure_ascii=False) + "\n")
    if fake is not None:
        fake.stop()


def make_dump(folder: Path, posts: int, comments: int, *, full: bool) -> list[Path]:
    """RS_ and RC_ files, made by two processes at once (the machine's two cores): a
    million rows of text take a minute and a half of one core."""
    rs, rc = folder / f"RS_fts_{posts}.ndjson", folder / f"RC_fts_{comments}.ndjson"
    script = [sys.executable, str(Path(__file__)), "make"]
    more = ["--full"] if full else []
    makers = [
        subprocess.Popen([*script, "posts", str(rs), str(posts), "0", *more]),
        subprocess.Popen([*script, "comments", str(rc), str(comments), str(posts), *more]),
    ]
    for maker in makers:
        if maker.wait() != 0:
            raise RuntimeError(f"{maker.args!r} exited {maker.returncode}")
    return [rs, rc]


def html_of(text: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    inner = "\n\n".join(f"<p>{p}</p>" for p in escaped.split("\n\n"))
    return f'<!-- SC_OFF --><div class="md">{inner}\n</div><!-- SC_ON -->'


# The fields of a /r/all/comments child that tests/fakereddit.py's comments lack, with the
# values most of the fixture's comments have.
COMMENT_FIELDS: dict[str, Any] = {
    "all_awardings": [], "approved_at_utc": None, "approved_by": None,
    "associated_award": None, "author_flair_background_color": None,
    "author_flair_css_class": None, "author_flair_template_id": None,
    "author_flair_text": None, "author_flair_text_color": None, "awarders": [],
    "banned_at_utc": None, "can_gild": True, "can_mod_post": False,
    "collapsed_because_crowd_control": None, "collapsed_reason": None, "gildings": {},
    "likes": None, "mod_note": None, "mod_reason_by": None, "mod_reason_title": None,
    "mod_reports": [], "no_follow": True, "num_reports": None, "quarantine": False,
    "report_reasons": None, "saved": False, "send_replies": True, "top_awarded_type": None,
    "total_awards_received": 0, "treatment_tags": [], "user_reports": [],
}  # fmt: skip


# Running redpipe ----------------------------------------------------------------------------


def timed(cmd: Sequence[str], environ: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=environ, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def replay_cmd(pyz: Path, target: str, dumps: Sequence[Path], *more: str) -> list[str]:
    return [sys.executable, str(pyz), "replay", target, *map(str, dumps), "-q", *more]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def file_size(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def sqlite_index_size(db: Path) -> int | None:
    """Bytes in the FTS5 tables' pages (dbstat), None where this SQLite lacks dbstat."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            got = conn.execute(
                "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE '%\\_fts%' ESCAPE '\\'"
            ).fetchone()
        except sqlite3.OperationalError:
            return None
    return int(got[0])


def sqlite_matches(db: Path, word: str) -> tuple[int, int]:
    """Posts and comments whose index holds `word`."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        sql = "SELECT count(*) FROM {0}_fts WHERE {0}_fts MATCH ?"
        posts, comments = (
            conn.execute(sql.format(t), (word,)).fetchone()[0] for t in ("posts", "comments")
        )
    return int(posts), int(comments)


def rate(items: int, seconds: float) -> str:
    return f"{items / seconds:,.0f} items/s ({seconds:.1f} s)"


# 1. What the index costs a replay ------------------------------------------------------------


def insert_sqlite(
    pyz: Path, dumps: list[Path], items: int, runs: int, tmp: Path
) -> list[tuple[str, str]]:
    """Replays into fresh files without and with --fts, which goes first alternating from
    round to round; then --fts on the plain file, against the same replay without it."""
    plain, fts, noop, later = [], [], [], []
    sizes: dict[str, int] = {}
    index: dict[str, int | None] = {}
    same = True
    for i in range(runs):
        a, b = tmp / f"plain{i}.sqlite", tmp / f"fts{i}.sqlite"
        for with_fts in (i % 2 == 1, i % 2 == 0):
            if with_fts:
                fts.append(timed(replay_cmd(pyz, str(b), dumps, "--fts")))
            else:
                plain.append(timed(replay_cmd(pyz, str(a), dumps)))
        sizes["plain"], sizes["fts"] = file_size(a), file_size(b)
        index["fts"] = sqlite_index_size(b)
        noop.append(timed(replay_cmd(pyz, str(a), dumps)))  # every dump done: skipped
        later.append(timed(replay_cmd(pyz, str(a), dumps, "--fts")))
        sizes["later"], index["later"] = file_size(a), sqlite_index_size(a)
        same = same and sqlite_matches(a, "the") == sqlite_matches(b, "the")
        held = sqlite_matches(b, "the")
        a.unlink()
        b.unlink()
    ratio = median([f / p for f, p in zip(fts, plain)])
    extra_inline = median([f - p for f, p in zip(fts, plain)])
    extra_later = median([t - n for t, n in zip(later, noop)])
    shown = f"{index['fts']:,} bytes" if index["fts"] is not None else "(no dbstat)"
    return [
        ("SQLite: replay into a fresh file, no index", rate(items, median(plain))),
        (
            "SQLite: replay into a fresh file, --fts",
            f"{rate(items, median(fts))}: takes {ratio:.2f}x the time "
            f"({1e6 * extra_inline / items:.1f} µs more an item)",
        ),
        (
            "SQLite: file size, no index / --fts",
            f"{sizes['plain']:,} / {sizes['fts']:,} bytes ({sizes['fts'] / sizes['plain']:.2f}x; "
            f"the FTS5 tables {shown})",
        ),
        (
            f"SQLite: --fts on the file replayed without it (indexes the {items:,} rows held), "
            "whole process; the same replay without --fts (skips the dumps)",
            f"{median(later):.2f} s; {median(noop):.2f} s: indexing took {extra_later:.2f} s "
            f"({items / extra_later:,.0f} rows/s), against {extra_inline:.2f} s more for "
            f"--fts from the start",
        ),
        (
            "SQLite: the file indexed afterwards: size; the same matches as indexed from the "
            "start (`the`: posts, comments)",
            f"{sizes['later']:,} bytes; {'yes' if same else '**no**'} ({held[0]:,}, {held[1]:,})",
        ),
    ]


def pg_size(cluster: Any, name: str) -> tuple[int, int]:
    """Bytes of the posts and comments tables with their indexes and TOAST, and of the
    full-text part: the GIN indexes and the stored tsvector column."""
    with cluster.connect(name, tls=False) as conn:
        conn.run("VACUUM ANALYZE")  # no dead tuples or stale map counted in either
        total = conn.run(
            "SELECT sum(pg_total_relation_size(c)) FROM unnest(ARRAY['posts', 'comments']) c "
            "WHERE to_regclass(c) IS NOT NULL"
        )[0][0]
        fts = 0
        for table in ("posts", "comments"):
            has = conn.run(
                "SELECT 1 FROM information_schema.columns WHERE table_name = :t "
                "AND column_name = 'redpipe_fts'",
                t=table,
            )
            if has:
                fts += conn.run(
                    f"SELECT pg_relation_size('{table}_fts') + "
                    f"coalesce(sum(pg_column_size(redpipe_fts)), 0) FROM {table}"
                )[0][0]
    return int(total), int(fts)


def insert_postgres(
    pyz: Path, cluster: Any, dumps: list[Path], items: int, runs: int
) -> list[tuple[str, str]]:
    """As insert_sqlite, into fresh databases of one server over TCP without TLS (what
    the index costs, not the connection)."""
    from bench.run import env

    environ = {**env(), **cluster.env()}
    plain, fts, noop, later = [], [], [], []
    sizes: dict[str, tuple[int, int]] = {}
    for i in range(runs):
        names = {"plain": cluster.create_database(), "fts": cluster.create_database()}
        url = {k: f"{cluster.url(n)}?sslmode=disable" for k, n in names.items()}
        for with_fts in (i % 2 == 1, i % 2 == 0):
            if with_fts:
                fts.append(timed(replay_cmd(pyz, url["fts"], dumps, "--fts"), environ))
            else:
                plain.append(timed(replay_cmd(pyz, url["plain"], dumps), environ))
        noop.append(timed(replay_cmd(pyz, url["plain"], dumps), environ))
        sizes["plain"] = pg_size(cluster, names["plain"])
        sizes["fts"] = pg_size(cluster, names["fts"])
        later.append(timed(replay_cmd(pyz, url["plain"], dumps, "--fts"), environ))
        sizes["later"] = pg_size(cluster, names["plain"])
        for name in names.values():
            cluster.drop_database(name)
    ratio = median([f / p for f, p in zip(fts, plain)])
    extra_inline = median([f - p for f, p in zip(fts, plain)])
    extra_later = median([t - n for t, n in zip(later, noop)])
    p, f, a = sizes["plain"][0], sizes["fts"], sizes["later"]
    return [
        ("PostgreSQL: replay into a fresh database, no index", rate(items, median(plain))),
        (
            "PostgreSQL: replay into a fresh database, --fts",
            f"{rate(items, median(fts))}: takes {ratio:.2f}x the time "
            f"({1e6 * extra_inline / items:.1f} µs more an item)",
        ),
        (
            "PostgreSQL: posts and comments with their indexes, no index / --fts",
            f"{p:,} / {f[0]:,} bytes ({f[0] / p:.2f}x; the GIN indexes and the tsvector "
            f"column {f[1]:,} bytes)",
        ),
        (
            f"PostgreSQL: --fts on the database replayed without it (indexes the {items:,} "
            "rows held), whole process; the same replay without --fts (skips the dumps)",
            f"{median(later):.2f} s; {median(noop):.2f} s: indexing took {extra_later:.2f} s "
            f"({items / extra_later:,.0f} rows/s), against {extra_inline:.2f} s more for "
            f"--fts from the start; {a[0]:,} bytes after it (the index {a[1]:,})",
        ),
    ]


# 2. Search over a million rows -------------------------------------------------------------

RARE_RANK = 50_000  # drawn about 20 times in a million posts' text


def rare_word() -> str:
    return made_up(RARE_RANK - len(HEAD) - 1)


def queries(comments: bool = True) -> list[tuple[str, list[str]]]:
    """(what it shows, the arguments after `search <database>`), with or without those
    that search comments too."""
    rare = rare_word()
    every = [
        ("a word no row holds: start, open, schema checks", ["qqqq"]),
        ("a rare word", [rare]),
        ("a common word", ["the"]),
        ("a phrase", ['"last night"']),
        ("a prefix (6 terms)", ["play*"]),
        ("a short prefix (about 5,300 terms)", ["ka*"]),
        ("OR", ["cat OR dog"]),
        ("a common word, --subreddit gaming", ["the", "--subreddit", "gaming"]),
        ("a rare word, --comments", [rare, "--comments"]),
        ("a common word, --comments", ["the", "--comments"]),
    ]
    return [q for q in every if comments or "--comments" not in q[1]]


def build_sqlite(pyz: Path, posts: int, comments: int) -> tuple[Path, dict[str, Any]]:
    """The search file for this build and this generator, from the cache or made now: a
    replay of a dump made for it, then --fts on the file (a quarter of the time --fts
    from the start takes: part 1). The dump is deleted after: making it again is
    quicker than the replay, and it is 1.2 GB."""
    digest = hashlib.sha256(pyz.read_bytes()).hexdigest()[:12]
    CACHE.mkdir(exist_ok=True)
    db = CACHE / f"search-g{GENERATOR}-{posts}-{comments}-{digest}.sqlite"
    info = db.with_suffix(".json")
    if db.exists() and info.exists():
        return db, {**json.loads(info.read_text()), "cached": True}
    for stale in CACHE.glob("search-*"):  # another build's or generator's: 1-2 GB each
        stale.unlink()
    with tempfile.TemporaryDirectory(prefix="redpipe-bench-fts-") as folder:
        started = time.perf_counter()
        dumps = make_dump(Path(folder), posts, comments, full=False)
        made = time.perf_counter() - started
        dump_bytes = sum(d.stat().st_size for d in dumps)
        partial = db.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        replayed = timed(replay_cmd(pyz, str(partial), dumps))
        indexed = timed(replay_cmd(pyz, str(partial), dumps, "--fts"))
        partial.rename(db)
    meta = {
        "made": time.strftime("%Y-%m-%d %H:%M"),
        "dump_seconds": made,
        "dump_bytes": dump_bytes,
        "replay_seconds": replayed,
        "index_seconds": indexed,
    }
    info.write_text(json.dumps(meta))
    return db, {**meta, "cached": False}


POST_FIELDS = (
    "fullname", "id", "created_utc", "subreddit", "subreddit_id", "author", "author_fullname",
    "title", "selftext", "url", "permalink", "domain", "is_self", "over_18", "score",
    "num_comments", "edited", "retrieved_utc",
)  # fmt: skip


def export_posts(db: Path, path: Path) -> int:
    """The posts of the search file written back as an RS_ dump (a field for each column),
    for the PostgreSQL database to hold the same rows; how many."""
    count = 0
    with contextlib.closing(sqlite3.connect(db)) as conn, open(path, "w") as out:
        listed = ", ".join(POST_FIELDS)
        for row in conn.execute(f"SELECT {listed} FROM posts ORDER BY rowid"):
            record = dict(zip(POST_FIELDS, row))
            record["name"] = record.pop("fullname")
            record["is_self"], record["over_18"] = bool(row[12]), bool(row[13])
            record["edited"] = row[16] or False
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def end_to_end(
    pyz: Path, target: str, environ: dict[str, str] | None, repeats: int, comments: bool
) -> tuple[list[float], dict[str, list[float]]]:
    """Seconds of `--version` and of each search as a whole process, round by round (the
    floor, then every query once) so that a slow spell of the machine hits them all."""
    floor: list[float] = []
    each: dict[str, list[float]] = {label: [] for label, _ in queries(comments)}
    for _ in range(repeats):
        floor.append(timed([sys.executable, str(pyz), "--version"], environ))
        for label, args in queries(comments):
            each[label].append(timed([sys.executable, str(pyz), "search", target, *args], environ))
    return floor, each


def in_process(
    pyz: Path, target: str, environ: dict[str, str] | None, repeats: int, comments: bool
) -> dict[str, Any]:
    """The queries alone, timed inside one process (this file run with `inprocess`)."""
    cmd = [sys.executable, str(Path(__file__)), "inprocess", str(pyz), target, str(repeats)]
    cmd += [] if comments else ["--posts-only"]
    out = subprocess.run(cmd, env=environ, check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout))


def search_rows(
    pyz: Path,
    target: str,
    environ: dict[str, str] | None,
    repeats: int,
    what: str,
    comments: bool = True,
) -> list[tuple[str, str]]:
    floor, each = end_to_end(pyz, target, environ, repeats, comments)
    alone = in_process(pyz, target, environ, repeats, comments)
    base = median(floor)
    rows = [(f"{what}: process start, `redpipe.pyz --version` (the floor)", f"{1e3 * base:.0f} ms")]
    for label, args in queries(comments):
        got = alone[label]
        whole = median(each[label])
        matches = " + ".join(f"{n:,} {t}" for n, t in zip(got["matches"], ("posts", "comments")))
        rows.append(
            (
                f"{what}: `search {' '.join(args)}`, {label} ({matches} match)",
                f"{1e3 * whole:.0f} ms whole process ({1e3 * (whole - base):.0f} ms over the "
                f"floor); the query alone {1e3 * got['seconds']:.1f} ms",
            )
        )
    for label, plan in alone["plans"].items():
        rows.append((f"{what}: plan of {label}", plan))
    for label, seconds in alone.get("variants", {}).items():
        rows.append((f"{what}: {label}", f"the query alone {1e3 * seconds:.1f} ms"))
    return rows


def search_sqlite(
    pyz: Path, db: Path, meta: dict[str, Any], posts: int, comments: int, repeats: int
) -> list[tuple[str, str]]:
    index = sqlite_index_size(db)
    how = (
        f"cached, made {meta['made']}"
        if meta["cached"]
        else f"made in this run, the dump in {meta['dump_seconds']:.0f} s"
    )
    items = posts + comments
    rows = [
        (
            "search file (SQLite, warm page cache)",
            f"{posts:,} posts + {comments:,} comments, {file_size(db):,} bytes, the FTS5 tables "
            f"{index or 0:,}; a replay of a {meta['dump_bytes']:,}-byte dump holding only the "
            f"fields redpipe keeps in {meta['replay_seconds']:.0f} s "
            f"({items / meta['replay_seconds']:,.0f} items/s), then --fts in "
            f"{meta['index_seconds']:.0f} s ({items / meta['index_seconds']:,.0f} rows/s; {how})",
        )
    ]
    return rows + search_rows(pyz, str(db), None, repeats, "SQLite")


def search_postgres(
    pyz: Path, cluster: Any, db: Path, repeats: int, tmp: Path
) -> list[tuple[str, str]]:
    """The search file's posts in a database of their own: a replay of them written back
    as a dump, then --fts; the same searches but those of comments."""
    from bench.run import env

    environ = {**env(), **cluster.env()}
    dump = tmp / "RS_fts_export.ndjson"
    posts = export_posts(db, dump)
    name = cluster.create_database()
    url = f"{cluster.url(name)}?sslmode=disable"
    replayed = timed(replay_cmd(pyz, url, [dump]), environ)
    indexed = timed(replay_cmd(pyz, url, [dump], "--fts"), environ)
    dump.unlink()
    size = pg_size(cluster, name)
    rows = [
        (
            "search database (PostgreSQL, the file's posts, no comments; warm cache)",
            f"{posts:,} posts, {size[0]:,} bytes with indexes, the full-text part {size[1]:,}; "
            f"a replay in {replayed:.0f} s ({posts / replayed:,.0f} items/s), then --fts in "
            f"{indexed:.0f} s ({posts / indexed:,.0f} rows/s)",
        )
    ]
    try:
        return rows + search_rows(pyz, url, environ, repeats, "PostgreSQL", comments=False)
    finally:
        cluster.drop_database(name)


# The section --------------------------------------------------------------------------------


def section(
    pyz: Path, items: int, search_items: int, runs: int, postgres_too: bool = True
) -> list[tuple[str, str]]:
    """`items` posts and as many comments for the insert rounds, `search_items` posts and
    as many comments to search; PostgreSQL's rows too unless `postgres_too` is false."""
    rows: list[tuple[str, str]] = []
    cluster = None
    if postgres_too:
        from bench import postgres

        cluster = postgres.durable(postgres.pgcluster(pyz))
    try:
        with tempfile.TemporaryDirectory(prefix="redpipe-bench-fts-") as folder:
            tmp = Path(folder)
            dumps = make_dump(tmp, items, items, full=True)
            size = sum(d.stat().st_size for d in dumps)
            rows.append(
                (
                    "insert: dump",
                    f"{items:,} posts + {items:,} comments (RS_ and RC_ NDJSON, every field a "
                    f"listing sends), {size:,} bytes; {runs} rounds",
                )
            )
            rows += insert_sqlite(pyz, dumps, 2 * items, runs, tmp)
            if cluster is not None:
                rows += insert_postgres(pyz, cluster, dumps, 2 * items, runs)
            for dump in dumps:
                dump.unlink()
            db, meta = build_sqlite(pyz, search_items, search_items)
            repeats = max(5, runs)
            rows += search_sqlite(pyz, db, meta, search_items, search_items, repeats)
            if cluster is not None:
                rows += search_postgres(pyz, cluster, db, repeats, tmp)
    finally:
        if cluster is not None:
            cluster.close()
    return rows


# Run as a script: the two helpers above -------------------------------------------------------


def statements(conn: Any, target: str, args: list[str]) -> list[tuple[str, Any]]:
    """redpipe's own SQL and parameters for `search <target> *args`, one per table, from
    the build on sys.path."""
    query, subs, tables = args[0], [], ["posts"]
    if "--subreddit" in args:
        subs = args[args.index("--subreddit") + 1].lower().split("+")
    if "--comments" in args:
        tables.append("comments")
    out: list[tuple[str, Any]] = []
    for table in tables:
        kind = "t3" if table == "posts" else "t1"
        mapping = json.loads(meta_value(conn, target, f"columns:{table}"))
        columns, fields = tuple(mapping), tuple(mapping.values())
        if target.startswith("postgresql:"):
            from pipeline.sinks.postgres import fulltext as pg_fulltext

            class Capture:
                def run(self, sql: str, **params: Any) -> list[Any]:
                    out.append((sql, params))
                    return []

            pg_fulltext.search(Capture(), table, kind, (columns, fields), query,  # type: ignore[arg-type]
                               subreddits=subs, limit=20)  # fmt: skip
        else:
            from pipeline.sinks.sqlite.fulltext import search_sql

            sql = search_sql(table, kind, columns, fields, len(subs))
            out.append((sql, [query, *subs, 20]))
    return out


def meta_value(conn: Any, target: str, key: str) -> str:
    if target.startswith("postgresql:"):
        return str(conn.run("SELECT value FROM redpipe_meta WHERE key = :k", k=key)[0][0])
    return str(conn.execute("SELECT value FROM redpipe_meta WHERE key = ?", (key,)).fetchone()[0])


def execute(conn: Any, target: str, sql: str, params: Any) -> list[Any]:
    if target.startswith("postgresql:"):
        return list(conn.run(sql, **params))
    return list(conn.execute(sql, params).fetchall())


def counted(sql: str, params: Any) -> tuple[str, Any]:
    """The statement counting every match instead of fetching the newest 20."""
    where = sql.split(" FROM ", 1)[1].split(" ORDER BY ")[0]
    if isinstance(params, dict):
        return f"SELECT count(*) FROM {where}", {k: v for k, v in params.items() if k != "n"}
    return f"SELECT count(*) FROM {where}", params[:-1]


def connect(target: str) -> Any:
    if target.startswith("postgresql:"):
        import os
        from urllib.parse import urlsplit

        import pg8000.native

        url = urlsplit(target)
        return pg8000.native.Connection(
            url.username or "", host=url.hostname, port=url.port or 5432,
            database=url.path.lstrip("/"), password=os.environ["PGPASSWORD"],
        )  # fmt: skip
    return sqlite3.connect(target)


def inprocess(pyz: Path, target: str, repeats: int, comments: bool) -> dict[str, Any]:
    """Each query's median seconds over `repeats` after one untimed run, its matches per
    table, and plans: SQLite's of every query, PostgreSQL's of the common word."""
    sys.path.insert(0, str(pyz))
    conn = connect(target)
    pg = target.startswith("postgresql:")
    out: dict[str, Any] = {"plans": {}, "variants": {}}
    for label, args in queries(comments):
        planned = statements(conn, target, args)
        for sql, params in planned:
            execute(conn, target, sql, params)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            for sql, params in planned:
                execute(conn, target, sql, params)
            times.append(time.perf_counter() - started)
        matches = [execute(conn, target, *counted(sql, params))[0][0] for sql, params in planned]
        out[label] = {"seconds": median(times), "matches": matches}
        if not pg:
            sql, params = planned[0]
            steps = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            out["plans"].setdefault(" ".join(steps_of(steps)), []).append(label)
        elif label == "a common word":
            sql, params = planned[0]
            plan = execute(conn, target, f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            lines = [str(r[0]).strip() for r in plan]
            # The nodes and the total: the buffer counts and costs make it unreadable.
            kept = [x for x in lines if "actual time" in x or x.startswith(("Sort Method", "Exec"))]
            out["plans"][label] = "; ".join(f"`{x}`" for x in kept)
    if not pg:  # the queries that share a plan, together
        plans = out["plans"]
        out["plans"] = {", ".join(labels): plan for plan, labels in plans.items()}
        if len(plans) == 1:
            out["plans"] = {"every query": next(iter(plans))}
    if not pg:
        sql, params = statements(conn, target, ["the"])[0]
        variant = sql.replace("ORDER BY t.created_utc DESC, t.rowid DESC", "ORDER BY f.rowid DESC")
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            conn.execute(variant, params).fetchall()
            times.append(time.perf_counter() - started)
        label = "a common word ordered by `f.rowid DESC` instead (not what redpipe runs)"
        out["variants"][label] = median(times)
    return out


def steps_of(rows: list[Any]) -> list[str]:
    return [f"`{r[-1]}`" for r in rows]


def main() -> int:
    what = sys.argv[1]
    if what == "make":
        sys.path.insert(0, str(ROOT))
        kind, path, n, posts = sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        full = "--full" in sys.argv[6:]
        if kind == "posts":
            write_posts(path, n, full=full)
        else:
            write_comments(path, n, posts, full=full)
    elif what == "inprocess":
        comments = "--posts-only" not in sys.argv[5:]
        print(json.dumps(inprocess(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), comments)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
