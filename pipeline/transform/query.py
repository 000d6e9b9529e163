"""Pure: a search query in SQLite FTS5's syntax, read for a server that has no FTS5.

SQLite reads the query itself. PostgreSQL gets the same query as a tsquery expression
built here, so that one query finds the same items in both: words (all must match),
"a phrase", pre*, a + b (a phrase too), AND, OR, NOT and parentheses. FTS5's column
filters, NEAR() and ^ have no tsquery equivalent and are refused by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from ..errors import UsageError

# FTS5's barewords: ASCII letters and digits, "_", and anything beyond ASCII.
_TOKEN = re.compile(r'\s*(?:(")|([A-Za-z0-9_\x80-\U0010ffff\x1a]+)|(.))', re.S)
# What a word of text is to both tokenizers: letters and digits, split at anything else.
_WORD = re.compile(r"[^\W_]+")
_OPERATORS = ("OR", "AND", "NOT")  # loosest first
# FTS5's syntax that tsquery cannot say.
_REFUSED = {":": "column filters are", "^": "^ is"}


@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]
    stars: tuple[int, ...] = ()  # which words are prefixes (pre*)


@dataclass(frozen=True)
class Op:
    name: str  # AND, OR, NOT (a NOT b: a and not b); "" for phrases side by side
    left: Node
    right: Node


Node = Union[Phrase, Op]


def _tokens(query: str) -> list[tuple[str, str]]:
    """(kind, text): "word", "string", or a one-character "punct"."""
    out, at = [], 0
    while at < len(query):
        found = _TOKEN.match(query, at)
        if found is None:  # only trailing spaces are left
            break
        if found.group(1):
            end = at = found.end()
            text = []
            while True:
                close = query.find('"', end)
                if close < 0:
                    raise UsageError(f"search: unterminated string in {query!r}")
                text.append(query[end:close])
                if query.startswith('""', close):  # "" is one quote inside a string
                    text.append('"')
                    end = close + 2
                    continue
                at = close + 1
                break
            out.append(("string", "".join(text)))
            continue
        if found.group(2):
            out.append(("word", found.group(2)))
        elif found.group(3):
            out.append(("punct", found.group(3)))
        at = found.end()
    return out


@dataclass
class _Reader:
    query: str
    tokens: list[tuple[str, str]]
    at: int = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def fail(self, why: str) -> UsageError:
        return UsageError(f"search: {why} in {self.query!r}")

    def expression(self, level: int = 0) -> Node:
        """OR binds loosest, then AND, then NOT, then phrases side by side (FTS5's
        implicit AND, which joins phrases only, never a parenthesized group)."""
        if level == 3:
            return self.side_by_side()
        node = self.expression(level + 1)
        name = _OPERATORS[level]
        while self.peek() == ("word", name):
            self.at += 1
            node = Op(name, node, self.expression(level + 1))
        return node

    def side_by_side(self) -> Node:
        if self.peek() == ("punct", "("):
            return self.primary()  # a group: nothing may stand beside it
        node = self.primary()
        while True:
            token = self.peek()
            if token is None or token[0] == "punct" or token[1] in _OPERATORS:
                break
            if token == ("punct", "("):
                break
            node = Op("", node, self.primary())
        return node

    def primary(self) -> Node:
        token = self.peek()
        if token is None:
            raise self.fail("a word or phrase is missing at the end")
        self.at += 1
        kind, text = token
        if token == ("punct", "("):
            node = self.expression()
            if self.peek() != ("punct", ")"):
                raise self.fail("a ( is not closed")
            self.at += 1
            return node
        if kind == "word" and text == "NEAR" and self.peek() == ("punct", "("):
            raise self.fail("NEAR() is not supported on PostgreSQL")
        if kind == "punct" and text in _REFUSED:
            raise self.fail(f"{_REFUSED[text]} not supported on PostgreSQL")
        if kind == "punct" or text in _OPERATORS:
            raise self.fail(f"{text!r} is out of place")
        words: list[str] = []
        stars: list[int] = []
        while True:
            words += _WORD.findall(text)
            if self.peek() == ("punct", "*"):  # a prefix: of this part's last word
                self.at += 1
                stars += [len(words) - 1] if words else []
            if self.peek() != ("punct", "+"):  # a + b: one phrase
                break
            self.at += 1
            nxt = self.peek()
            if nxt is None or nxt[0] == "punct" or nxt[1] in _OPERATORS:
                raise self.fail("a + must join two phrases")
            self.at += 1
            text = nxt[1]
        after = self.peek()
        if after is not None and after[0] == "punct" and after[1] in _REFUSED:
            raise self.fail(f"{_REFUSED[after[1]]} not supported on PostgreSQL")
        return Phrase(tuple(words), tuple(stars))


def parse(query: str) -> Node:
    """The query as a tree; UsageError, saying why, for one FTS5 would refuse or that has
    no tsquery equivalent."""
    reader = _Reader(query, _tokens(query))
    if not reader.tokens:
        raise UsageError("search needs something to find: the query is empty")
    node = reader.expression()
    if reader.peek() is not None:
        raise reader.fail(f"{reader.peek()[1]!r} is out of place")  # type: ignore[index]
    return node


def _lexeme(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


def tsquery(node: Node, config: str = "simple") -> tuple[str, list[str]]:
    """SQL for `node` as a tsquery, with its parameters in order (%s-free: each is
    written as :q0, :q1, ... for pg8000's named style)."""
    params: list[str] = []

    def render(n: Node) -> str:
        if isinstance(n, Phrase):
            text = " <-> ".join(
                _lexeme(w) + (":*" if i in n.stars else "") for i, w in enumerate(n.words)
            )
            params.append(text)
            return f"to_tsquery('{config}', :q{len(params) - 1})"
        left, right = render(n.left), render(n.right)
        if n.name == "OR":
            return f"({left} || {right})"
        if n.name == "NOT":
            return f"({left} && !!{right})"
        return f"({left} && {right})"

    return render(node), params
