"""The CLI in-process: arguments, environment, exit codes and messages."""

from __future__ import annotations

import signal
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
from pipeline.errors import UsageError
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


def test_defaults_follow_the_credentials() -> None:
    anon = stream_config(["a.db"], {})
    assert anon.api.base_url == "https://www.reddit.com" and anon.api.credentials is None
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
