"""The one exception tree, and the exit code each fatal error maps to.

It imports nothing from the package, so every module can import it.
"""

from __future__ import annotations

from collections.abc import Mapping

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3
EXIT_AUTH = 4
EXIT_API = 5

# What an AuthError for missing credentials tells the user to do; the edge (before any
# request) and the client (when a server without them refuses) both say it.
CREDENTIALS_HINT = (
    "set REDPIPE_CLIENT_ID and REDPIPE_CLIENT_SECRET to a Reddit app's id and secret "
    "(see README: 'Reddit API credentials')"
)


class RedpipeError(Exception):
    """Base of every error redpipe raises on purpose.

    The CLI turns one of these into a one-line message and `exit_code`; anything else
    reaching the CLI is a bug and keeps its traceback.
    """

    exit_code = EXIT_FAILURE


class UsageError(RedpipeError):
    """An argument or environment value is unusable."""

    exit_code = EXIT_USAGE


class DatabaseError(RedpipeError):
    """The database cannot be used or written."""

    exit_code = EXIT_DATABASE


class DatabaseBusy(DatabaseError):
    """Another connection held the write lock for longer than the busy timeout."""


class DatabaseFull(DatabaseError):
    """The disk (or SQLite's size limit) is full; committed data is intact."""


class DatabaseGone(DatabaseError):
    """The database server went away (restarted, unreachable) and did not come back within
    the sink's patience; what was committed is intact, the batch in flight is not stored."""


class LeadLost(DatabaseError):
    """Another process took over the stream this one led (its lease ran out while this one
    could not renew it): stop polling and stand by."""


class OutputClosed(RedpipeError):
    """Whoever read standard output has gone (`| head`): stop, as a pipe's writer does."""

    exit_code = EXIT_OK


class AuthError(RedpipeError):
    """Reddit will not serve us: credentials missing, refused, or the client is blocked."""

    exit_code = EXIT_AUTH


class TransientError(RedpipeError):
    """A request failed in a way that is worth retrying after a pause."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # The headers of the failed answer, when there was one: errors count against
        # Reddit's budget too, and a 429's x-ratelimit-* say when the budget returns.
        self.headers = headers


class NetworkError(TransientError):
    """No usable HTTP response: refused, reset, timed out, DNS, TLS."""


class RateLimited(TransientError):
    """HTTP 429. `retry_after` holds the server's `retry-after`, if it sent one."""


class ServerError(TransientError):
    """A 5xx or other unexpected status that may clear up."""


class BadResponse(TransientError):
    """A 200 whose body is not the listing JSON we asked for (truncated, HTML, ...)."""


class ApiError(RedpipeError):
    """Reddit answered in a way that retrying will not fix (unknown subreddit, 404, ...)."""

    exit_code = EXIT_API
