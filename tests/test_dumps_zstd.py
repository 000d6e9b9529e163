"""Zstandard dumps as Pushshift and Arctic Shift write them (a 2 GiB window, above the
decoders' default limit), every frame of a file, truncated and corrupt files; and a dump
on standard input, through the real .pyz under every supported CPython, each with no
zstd module: plain, compressed (told by its first bytes), resumed by --name."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main as cli
from tests.conftest import SUPPORTED, query
from tests.test_replay import FIXTURES, items

zstandard = pytest.importorskip("zstandard")  # in requirements-dev.txt
pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"real Reddit responses not found at {FIXTURES}"
)
ZSTD = shutil.which("zstd")


def records(n: int) -> list[dict[str, Any]]:
    """n real comments, each with an id of its own."""
    real = items("reddit_all_comments_2020-07-15_limit100.json")
    return [
        dict(real[i % len(real)], id=f"z{i:05x}", name=f"t1_z{i:05x}", retrieved_on=1600000000)
        for i in range(n)
    ]


def ndjson(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def long_window(data: bytes) -> bytes:
    """`data` as zstd --long=31 writes a stream whose size it is not told: one frame with
    a 2 GiB window."""
    params = zstandard.ZstdCompressionParameters(
        window_log=31, enable_ldm=True, write_content_size=False
    )
    writer = zstandard.ZstdCompressor(compression_params=params).compressobj()
    return writer.compress(data) + writer.flush()


def stored(db: Path) -> list[str]:
    return [n for (n,) in query(db, "SELECT fullname FROM comments ORDER BY fullname")]


def test_a_zst_with_a_2_gib_window_loads_where_the_default_limit_refuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = records(300)
    dump = tmp_path / "RC_long.zst"
    dump.write_bytes(long_window(ndjson(rows)))
    assert zstandard.get_frame_parameters(dump.read_bytes()).window_size == 2**31
    with pytest.raises(zstandard.ZstdError, match="too much memory"):
        zstandard.ZstdDecompressor().decompressobj().decompress(dump.read_bytes())
    if ZSTD:  # the zstd tool too refuses it without --long=31
        plain = subprocess.run([ZSTD, "-dc", str(dump)], capture_output=True, check=False)
        assert plain.returncode != 0 and b"--long=31" in plain.stderr
    db = tmp_path / "c.sqlite"
    assert cli.main(["replay", str(db), str(dump)]) == 0
    assert "300 lines, 0 new posts, 300 new comments" in capsys.readouterr().err
    assert stored(db) == sorted(r["name"] for r in rows)


def test_every_frame_is_read_and_a_cut_or_corrupt_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = records(2500)
    data = ndjson(rows)
    half = data.index(b"\n", len(data) // 2) + 1
    frames = tmp_path / "RC_frames.zst"  # as pzstd, or two files joined with cat, write
    frames.write_bytes(long_window(data[:half]) + zstandard.ZstdCompressor().compress(data[half:]))
    db = tmp_path / "c.sqlite"
    assert cli.main(["replay", str(db), str(frames)]) == 0
    assert stored(db) == sorted(r["name"] for r in rows)
    capsys.readouterr()
    whole = long_window(data)
    for name, broken in (
        ("RC_cut.zst", whole[: len(whole) * 2 // 3]),
        ("RC_bad.zst", whole[:40] + bytes(64) + whole[104:]),
        ("RC_bad.gz", gzip.compress(data)[:60] + bytes(200) + gzip.compress(data)[260:]),
    ):
        (tmp_path / name).write_bytes(broken)
        assert cli.main(["replay", str(tmp_path / f"{name}.sqlite"), str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert f"{name}: unreadable after line" in err and "Traceback" not in err, err
        assert err.count("\n") == 1


@pytest.mark.skipif(sys.version_info < (3, 14), reason="compression.zstd is Python 3.14's")
def test_python_3_14s_own_decoder_is_used_with_the_long_window(tmp_path: Path) -> None:
    from compression import zstd  # type: ignore[import-not-found]

    from pipeline.sources.compressed import by_suffix

    dump = tmp_path / "RC_long.zst"
    dump.write_bytes(long_window(ndjson(records(50))))
    with open(dump, "rb") as raw:
        stream, errors = by_suffix(raw, str(dump))
        assert isinstance(stream, zstd.ZstdFile) and errors == (zstd.ZstdError,)
        assert len(stream.read().splitlines()) == 50


# -- standard input, through the built .pyz ---------------------------------------------

VERSIONS = [v for v, _ in SUPPORTED]


@pytest.fixture(params=VERSIONS)
def pipe(
    request: pytest.FixtureRequest, pyz: Path, empty_python: Callable[[str], Path]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The .pyz under one CPython (a venv with nothing installed: no zstd module below
    3.14), its standard input given."""
    python = empty_python(request.param)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/"),
        "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"],
    }

    def go(*args: str, data: bytes = b"", stdin: Any = None) -> subprocess.CompletedProcess[str]:
        """Run it with `data` through a pipe on its standard input, or `stdin`."""
        done = subprocess.run(
            [str(python), str(pyz), *args],
            input=None if stdin is not None else data,
            stdin=stdin,
            capture_output=True,
            timeout=60,
            env=env,
            check=False,
        )
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
        )

    return go


def checkpoints(db: Path) -> list[tuple[str, int, int]]:
    return query(db, "SELECT dump, lines, finished FROM redpipe_replay ORDER BY dump")


@pytest.mark.slow
def test_standard_input_is_read_plain_or_compressed_and_resumed_only_by_name(
    pipe: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    rows = records(3000)
    data = ndjson(rows)
    db = tmp_path / "c.sqlite"
    once = pipe("replay", str(db), "-", data=data[: len(data) // 3])
    assert once.returncode == 0, once.stderr
    first = len(data[: len(data) // 3].splitlines())
    assert once.stderr == (
        f"redpipe: standard input: {first:,} lines, 0 new posts, {first:,} new comments, "
        "0 already stored, 0 malformed; not resumable (give --name to resume)\n"
    )
    assert query(db, "SELECT name FROM sqlite_master WHERE name = 'redpipe_replay'") == []
    # gzip, cut short: what was read is kept, under the name, and the rest is read later.
    packed = gzip.compress(data)
    cut = pipe("replay", str(db), "-", "--name", "RC_test",
               data=packed[: len(packed) // 2])  # fmt: skip
    assert cut.returncode == 2 and "Traceback" not in cut.stderr, cut.stderr
    done = int(cut.stderr.split("unreadable after line ")[1].split()[0].replace(",", ""))
    assert 1000 < done < 3000 and checkpoints(db) == [("RC_test:stdin", done, 0)]
    rest = pipe("replay", str(db), "-", "--name", "RC_test", data=packed)
    assert rest.returncode == 0, rest.stderr
    assert rest.stderr == (
        f"redpipe: RC_test: 3,000 lines, 0 new posts, {3000 - done:,} new comments, "
        f"{max(0, first - done):,} already stored, 0 malformed\n"
    )
    assert stored(db) == sorted(r["name"] for r in rows)
    again = pipe("replay", str(db), "-", "--name", "RC_test", data=packed)
    assert again.stderr == "redpipe: RC_test: replayed to its end before; skipped\n"
    # Zstandard on standard input needs a decoder this Python lacks: one line, no change.
    zst = pipe("replay", str(db), "-", data=long_window(data))
    assert zst.returncode == 2 and zst.stderr.count("\n") == 1
    assert (
        "standard input is Zstandard-compressed: pipe it through zstd -dc --long=31" in zst.stderr
    )


@pytest.mark.slow
@pytest.mark.skipif(ZSTD is None, reason="the zstd tool is not installed")
def test_zstd_dc_long_31_piped_into_a_filtered_replay(
    pipe: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    rows = records(1500)
    dump = tmp_path / "RC_2020-07.zst"
    subprocess.run([str(ZSTD), "-q", "--long=31", "-o", str(dump)], input=ndjson(rows), check=True)
    assert zstandard.get_frame_parameters(dump.read_bytes()).window_size == 2**31
    db = tmp_path / "c.sqlite"
    unpack = subprocess.Popen([str(ZSTD), "-dc", "--long=31", str(dump)], stdout=subprocess.PIPE)
    try:
        got = pipe("replay", str(db), "-", "--name", "RC_2020-07", "--subreddit", "AskReddit",
                   stdin=unpack.stdout)  # fmt: skip
    finally:
        assert unpack.stdout is not None
        unpack.stdout.close()
        unpack.wait()
    assert got.returncode == 0, got.stderr
    wanted = sorted(r["name"] for r in rows if r["subreddit"].lower() == "askreddit")
    assert 0 < len(wanted) < len(rows) and stored(db) == wanted
    assert (
        f"RC_2020-07: 1,500 lines, {len(wanted):,} kept, {1500 - len(wanted):,} filtered out"
        in (got.stderr)
    )
    assert checkpoints(db) == [("RC_2020-07:stdin subreddit=askreddit", 1500, 1)]
