"""Which due items a refresh checks: each handed to one sink at a time through rows of
`redpipe_checking`, so that several refreshes (and --refresh streams) of one database
split what is due instead of each fetching all of it.

A row says who checks an item until when; update() deletes it with the item's new
`refreshed_utc`. A refresh that dies leaves its items to the others once that runs out.
"""

from __future__ import annotations

from .connection import Connection, Session, in_transaction, rows

# Long enough for a batch that waits out a rate-limit window before it is fetched.
CHECKING_FOR = 600
TABLE = (
    "CREATE TABLE IF NOT EXISTS redpipe_checking (tbl text NOT NULL, fullname text NOT NULL, "
    "holder text NOT NULL, until timestamptz NOT NULL, PRIMARY KEY (tbl, fullname))"
)
_FREE = (
    "coalesce(refreshed_utc, created_utc) <= :cutoff AND NOT EXISTS (SELECT 1 FROM "
    "redpipe_checking c WHERE c.tbl = :t AND c.fullname = t.fullname AND c.holder <> :me "
    "AND c.until > clock_timestamp())"
)
# SKIP LOCKED passes over the rows another sink is taking right now; the key of
# redpipe_checking settles the rest: a row someone else holds, alive, is never taken over.
_TAKE = (
    "WITH due AS (SELECT fullname FROM {table} t WHERE " + _FREE + " "
    "ORDER BY created_utc LIMIT :n FOR UPDATE SKIP LOCKED) "
    "INSERT INTO redpipe_checking AS c SELECT :t, fullname, :me, "
    "clock_timestamp() + make_interval(secs => :ttl) FROM due "
    "ON CONFLICT (tbl, fullname) DO UPDATE SET holder = excluded.holder, "
    "until = excluded.until WHERE c.holder = excluded.holder "
    "OR c.until < clock_timestamp() RETURNING fullname"
)


def due(session: Session, table: str, *, cutoff: float, limit: int, holder: str) -> list[str]:
    """Up to `limit` due items of `table` for `holder` alone, oldest first."""
    params = {"cutoff": cutoff, "t": table, "me": holder}

    def take(conn: Connection) -> list[str]:
        got = rows(conn, _TAKE.format(table=table), n=limit, ttl=CHECKING_FOR, **params)
        return [r[0] for r in got]

    def left(conn: Connection) -> bool:
        return bool(rows(conn, f"SELECT 1 FROM {table} t WHERE {_FREE} LIMIT 1", **params))

    won: list[str] = []
    for _ in range(3):
        won = session.run(lambda conn: in_transaction(conn, take), f"reading {table}")
        # None won can also mean another sink took these very items a moment before:
        # ask again, and stop only when none is left to take.
        if won or not session.run(left, f"reading {table}"):
            break
    if not won:
        return []
    order = session.run(
        lambda conn: rows(
            conn,
            f"SELECT fullname FROM {table} WHERE fullname = ANY(CAST(:names AS text[])) "
            "ORDER BY created_utc, fullname",
            names=won,
        ),
        f"reading {table}",
    )
    return [r[0] for r in order]
