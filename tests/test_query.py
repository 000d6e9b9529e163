"""The FTS5 query reader PostgreSQL's search relies on, held against real FTS5: it must
accept exactly the queries FTS5 accepts (but for the syntax it refuses by name)."""

from __future__ import annotations

import random
import sqlite3

import pytest

from pipeline.errors import UsageError
from pipeline.transform.query import Op, Phrase, parse, tsquery

PIECES = ["a", "b", "café", "x_y", "9", "OR", "AND", "NOT", "(", ")", '"a b"', '""', "*", "+",
          '"q ""x"""', "and", "-", ".", "a-b"]  # fmt: skip


def fts5_accepts(conn: sqlite3.Connection, query: str) -> bool:
    try:
        conn.execute("SELECT * FROM f WHERE f MATCH ?", (query,)).fetchall()
    except sqlite3.OperationalError:
        return False
    return True


def ours_accepts(query: str) -> bool:
    try:
        parse(query)
    except UsageError:
        return False
    return True


def test_random_queries_are_accepted_exactly_as_fts5_accepts_them() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(t)")
    rng = random.Random(15)
    queries = {" ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6))) for _ in range(4000)}
    queries |= {"a*b", "(a)b", "a(b)", "a+b*", "((a))", "a OR (b AND NOT c)", "a* + b"}
    differ = [q for q in sorted(queries) if fts5_accepts(conn, q) != ours_accepts(q)]
    assert differ == []
    assert sum(map(ours_accepts, queries)) > len(queries) // 10  # not all refused


@pytest.mark.parametrize(
    ("query", "why"),
    [("title:a", "column filters"), ("NEAR(a b)", "NEAR"), ("^a", r"\^ is"), ("a OR", "missing")],
)
def test_what_tsquery_cannot_say_is_refused_by_name(query: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        parse(query)


def test_the_tree_and_its_tsquery() -> None:
    tree = parse('x OR "y z"* NOT w')
    assert tree == Op("OR", Phrase(("x",)), Op("NOT", Phrase(("y", "z"), (1,)), Phrase(("w",))))
    sql, params = tsquery(tree)
    assert sql == ("(to_tsquery('simple', :q0) || (to_tsquery('simple', :q1) && "
                   "!!to_tsquery('simple', :q2)))")  # fmt: skip
    assert params == ["'x'", "'y' <-> 'z':*", "'w'"]
    assert tsquery(parse('"it\'s"'))[1] == ["'it' <-> 's'"]  # quotes cannot break out
    assert tsquery(parse('"a b"* + c*'))[1] == ["'a' <-> 'b':* <-> 'c':*"]
