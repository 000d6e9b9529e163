"""The CLI in-process: arguments, environment, exit codes and messages."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from pipeline import __version__
from pipeline.cli import main as cli
from pipeline.cli.config import (
    DEFAULT_USER_AGENT,
    RefreshConfig,
    ReplayConfig,
    StreamConfig,
    from_args,
)
from pipeline.errors import AuthError, UsageError
from tests.conftest import query
from tests.fakereddit import FakeReddit


def parse(*argv: str) -> dict:
    from docopt import docopt

    return docopt(cli.__doc__, argv=list(argv))


def test_help_is_the_usage_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code in (0, None)
    assert capsys.readouterr().out.strip() == cli.__doc__.strip()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"redpipe {__version__}"


@pytest.mark.parametrize(
    "argv",
    [[], ["a.db", "b.db"], ["a.db", "--nope"], ["a.db", "--interval"]],
)
def test_bad_arguments_exit_2_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert "Usage:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["a.db", "--interval", "0"], "--interval must be a number above 0"),
        (["a.db", "--interval", "nan"], "--interval"),
        (["a.db", "--timeout", "0"], "--timeout must be a number above 0"),
        (["a.db", "--max-records", "-3"], "--max-records must be a whole number"),
        (["a.db", "--subreddit", "../etc"], "--subreddit"),
        (["a.db", "--subreddit", "python+"], "--subreddit"),
        (["a.db", "--base-url", "ftp://x"], "--base-url"),
        (["a.db", "--user-agent", "x"], "--user-agent"),
        (["-", "--refresh"], "--refresh needs a database file, not -"),
        (["a.db", "--refresh", "--older-than", "soon"], "--older-than"),
    ],
)
def test_invalid_values_exit_2_with_one_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("redpipe: error: ")
    assert message in err.splitlines()[0]
    assert "Usage:" in err


def stream_config(argv: list[str], environ: dict[str, str]) -> StreamConfig:
    config = from_args(parse(*argv), environ)
    assert isinstance(config, StreamConfig)
    return config


def test_half_set_credentials_are_a_usage_error() -> None:
    for environ in ({"REDPIPE_CLIENT_ID": "abc"}, {"REDPIPE_CLIENT_SECRET": "abc"}):
        with pytest.raises(UsageError, match="is not set; set both"):
            from_args(parse("a.db"), environ)


NO_CREDENTIALS = (
    "Reddit's API needs credentials: set REDPIPE_CLIENT_ID and REDPIPE_CLIENT_SECRET to a "
    "Reddit app's id and secret (see README: 'Reddit API credentials')"
)


@pytest.mark.parametrize(
    "argv", [["a.db"], ["-", "--comments"], ["refresh", "a.db", "--purge-deleted"]]
)
def test_without_credentials_reddit_itself_is_refused_at_once(argv: list[str]) -> None:
    with pytest.raises(AuthError) as refused:
        from_args(parse(*argv), {})
    assert str(refused.value) == NO_CREDENTIALS and refused.value.exit_code == 4


def test_without_credentials_a_given_base_url_is_asked_and_a_replay_needs_none() -> None:
    mirror = stream_config(["a.db", "--base-url", "http://127.0.0.1:9/r"], {})
    assert mirror.api.base_url == "http://127.0.0.1:9/r" and mirror.api.credentials is None
    refresh = from_args(parse("refresh", "a.db", "--base-url", "http://mirror.test"), {})
    assert isinstance(refresh, RefreshConfig) and refresh.api.credentials is None
    assert isinstance(from_args(parse("replay", "a.db", "RS.zst"), {}), ReplayConfig)


def test_argument_mistakes_are_told_before_missing_credentials() -> None:
    with pytest.raises(UsageError, match="--timeout"):
        from_args(parse("a.db", "--timeout", "0"), {})


def test_missing_credentials_are_one_line_exit_4_and_no_database_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("REDPIPE_CLIENT_ID", "REDPIPE_CLIENT_SECRET", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    db = tmp_path / "p.sqlite"
    # Were Reddit asked after all, offline that is retried until stopped: a stop turns
    # the hang into exit 0, a failure.
    stop = threading.Timer(20, os.kill, (os.getpid(), signal.SIGTERM))
    stop.start()
    try:
        for argv in ([str(db)], [str(db), "--comments", "-v"], ["refresh", str(db)]):
            assert cli.main(argv) == 4, argv
            assert capsys.readouterr().err == f"redpipe: error: {NO_CREDENTIALS}\n"
            assert list(tmp_path.iterdir()) == []
    finally:
        stop.cancel()


def test_defaults_follow_the_credentials() -> None:
    secret = {"REDPIPE_CLIENT_ID": "i", "REDPIPE_CLIENT_SECRET": "s3cr3t-x"}
    authed = stream_config(["a.db"], secret)
    assert authed.api.base_url == "https://oauth.reddit.com"
    assert authed.api.auth_url == "https://www.reddit.com"
    assert authed.api.user_agent == DEFAULT_USER_AGENT and "redpipe:v1.0.0" in DEFAULT_USER_AGENT
    assert authed.subreddits == "all" and [t.name for t in authed.tables] == ["posts"]
    assert authed.api.credentials == ("i", "s3cr3t-x") and "s3cr3t-x" not in repr(authed)


def test_each_command_gets_its_own_config() -> None:
    environ = {"REDPIPE_CLIENT_ID": "i", "REDPIPE_CLIENT_SECRET": "s"}
    both = stream_config(["a.db", "--comments"], environ)
    assert [t.name for t in both.tables] == ["posts", "comments"]
    replay = from_args(parse("replay", "a.db", "x.ndjson", "y.zst", "-q"), {})
    assert isinstance(replay, ReplayConfig) and replay.dumps == ("x.ndjson", "y.zst")
    assert replay.verbosity == -1
    refresh = from_args(parse("refresh", "a.db", "--older-than", "2d"), environ)
    assert isinstance(refresh, RefreshConfig) and refresh.older_than == 2 * 86400


def test_a_stream_takes_refreshs_options_only_with_refresh(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = {"REDPIPE_CLIENT_ID": "i", "REDPIPE_CLIENT_SECRET": "s"}
    assert stream_config(["a.db"], environ).refresh is None
    config = stream_config(["a.db", "--refresh", "--older-than", "2d", "--purge-deleted"], environ)
    assert config.refresh is not None
    assert (config.refresh.older_than, config.refresh.purge_deleted) == (2 * 86400, True)
    assert stream_config(["a.db", "--refresh"], environ).refresh.older_than == 36 * 3600
    assert cli.main(["a.db", "--older-than", "2d"]) == 2
    assert "only refresh and --refresh take --older-than" in capsys.readouterr().err
    assert cli.main(["refresh", "a.db", "--refresh"]) == 2
    assert "refresh takes no --refresh" in capsys.readouterr().err


def test_run_in_process_stores_posts_and_restores_signal_handlers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = signal.getsignal(signal.SIGINT)
    started = time.time()
    with FakeReddit() as fake:
        fake.add_posts(25)
        monkeypatch.setenv("REDPIPE_CLIENT_ID", "test-client")
        monkeypatch.setenv("REDPIPE_CLIENT_SECRET", "test-secret")
        db = tmp_path / "p.sqlite"
        status = cli.main(
            [str(db), "--base-url", fake.url, "--auth-url", fake.url, "--max-records", "25"]
        )
    assert status == 0
    assert signal.getsignal(signal.SIGINT) is before
    assert query(db, "SELECT count(*) FROM posts") == [(25,)]
    ((low, high),) = query(db, "SELECT min(retrieved_utc), max(retrieved_utc) FROM posts")
    assert started <= low <= high <= time.time()  # a date, not a monotonic clock reading
    err = capsys.readouterr().err
    assert "stored 25 new posts" in err


def test_credentials_come_from_systemd_credential_files(tmp_path: Path) -> None:
    (tmp_path / "client-id").write_text("file-id\n", encoding="utf-8")
    (tmp_path / "client-secret").write_text("file-secret\n", encoding="utf-8")
    creds = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert stream_config(["a.db"], creds).api.credentials == ("file-id", "file-secret")
    # the environment wins over the files
    both = {**creds, "REDPIPE_CLIENT_ID": "i", "REDPIPE_CLIENT_SECRET": "s"}
    assert stream_config(["a.db"], both).api.credentials == ("i", "s")
    (tmp_path / "client-secret").unlink()
    with pytest.raises(UsageError, match="REDPIPE_CLIENT_SECRET is not set"):
        from_args(parse("a.db"), creds)
    (tmp_path / "client-secret").mkdir()  # unreadable as a file
    with pytest.raises(UsageError, match="cannot read the credential"):
        from_args(parse("a.db"), creds)
