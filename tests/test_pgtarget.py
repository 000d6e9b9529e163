"""A postgresql:// URL and the environment made into connection parameters, as libpq would
(pipeline/sinks/postgres/target.py): pure, so no server is needed here."""

from __future__ import annotations

import getpass
import ssl
import subprocess
from pathlib import Path

import pytest

from pipeline.errors import UsageError
from pipeline.sinks.postgres.target import Target, is_url, parse

SECRET = "s3cr3t-Pa55"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home, so that neither the real ~/.pgpass nor ~/.postgresql is read."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def make_cert(folder: Path) -> Path:
    """A new self-signed certificate for localhost in `folder`, its key beside it as `k`."""
    subprocess.run(
        ["/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
         "/CN=localhost", "-days", "1", "-keyout", str(folder / "k"), "-out", str(folder / "c")],
        check=True, capture_output=True,
    )  # fmt: skip
    return folder / "c"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and its key."""
    folder = tmp_path_factory.mktemp("tls")
    return make_cert(folder), folder / "k"


def at(home: Path, url: str, **environ: str) -> Target:
    return parse(url, environ, home=str(home))


def refused(home: Path, url: str, **environ: str) -> str:
    with pytest.raises(UsageError) as caught:
        at(home, url, **environ)
    message = str(caught.value)
    assert "\n" not in message and SECRET not in message
    return message


def passfile(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def handshake(client: ssl.SSLContext, cert: tuple[Path, Path], server_hostname: str) -> None:
    """A TLS handshake in memory between `client` and a server holding `cert`."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*cert)
    pipes = [(ssl.MemoryBIO(), ssl.MemoryBIO()) for _ in range(2)]
    ends = [
        client.wrap_bio(*pipes[0], server_hostname=server_hostname),
        server.wrap_bio(*pipes[1], server_side=True),
    ]
    done = [False, False]
    for _ in range(20):
        for n, end in enumerate(ends):
            try:
                end.do_handshake()
                done[n] = True
            except ssl.SSLWantReadError:
                pass
        for (_, mine), (theirs, _) in ((pipes[0], pipes[1]), (pipes[1], pipes[0])):
            theirs.write(mine.read())
        if all(done):
            return
    raise AssertionError("the handshake never finished")


def test_is_url_knows_both_schemes_in_any_case() -> None:
    assert is_url("postgresql://h/d") and is_url("postgres://h") and is_url("PostgreSQL://")
    assert not is_url("archive.db") and not is_url("-") and not is_url("postgresql:/h")
    assert not is_url("./postgresql://x") and not is_url("mysql://h/d")


def test_not_a_url_is_refused(home: Path) -> None:
    assert "not a PostgreSQL URL" in refused(home, "archive.db")


def test_defaults_without_url_parts_or_environment(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "osuser")
    got = at(home, "postgresql://")
    assert (got.host, got.port, got.user, got.database) == ("localhost", 5432, "osuser", "osuser")
    assert got.password is None and got.sslmode == "prefer" and got.sslrootcert is None
    assert got.connect_timeout is None and got.application_name is None and got.notes == ()
    assert got.where == "postgresql://osuser@localhost:5432/osuser"


def test_defaults_from_the_environment(home: Path) -> None:
    env = {
        "PGHOST": "db.example", "PGPORT": "6543", "PGUSER": "archiver", "PGDATABASE": "reddit",
        "PGSSLMODE": "require", "PGSSLROOTCERT": "/etc/ca.pem", "PGCONNECT_TIMEOUT": "7",
        "PGAPPNAME": "nightly",
    }  # fmt: skip
    got = at(home, "postgresql://", **env)
    assert got == Target(
        host="db.example", port=6543, user="archiver", database="reddit", sslmode="require",
        sslrootcert="/etc/ca.pem", connect_timeout=7.0, application_name="nightly",
    )  # fmt: skip
    assert got.where == "postgresql://archiver@db.example:6543/reddit"
    # The database defaults to the user, whichever way the user was given.
    assert at(home, "postgresql://h", PGUSER="pat").database == "pat"
    assert at(home, "postgresql://kim@h").database == "kim"


def test_empty_variables_count_as_unset(home: Path) -> None:
    got = at(home, "postgresql://u@", PGHOST="", PGPORT="", PGSSLMODE="")
    assert (got.host, got.port, got.sslmode) == ("localhost", 5432, "prefer")


def test_the_url_beats_the_environment(home: Path) -> None:
    env = {"PGHOST": "envhost", "PGPORT": "1111", "PGUSER": "envuser", "PGDATABASE": "envdb"}
    env.update(PGSSLMODE="disable", PGCONNECT_TIMEOUT="9", PGAPPNAME="envapp")
    url = "postgresql://me@urlhost:2222/urldb?sslmode=verify-ca&connect_timeout=3"
    got = at(home, url + "&application_name=urlapp&sslrootcert=/ca", **env)
    assert (got.host, got.port, got.user, got.database) == ("urlhost", 2222, "me", "urldb")
    assert (got.sslmode, got.sslrootcert, got.connect_timeout) == ("verify-ca", "/ca", 3.0)
    assert got.application_name == "urlapp"


def test_query_parameters_name_the_parts_too_and_win(home: Path) -> None:
    url = "postgresql://a@h1:1/d1?host=h2&port=2&user=b&dbname=d2"
    got = at(home, url)
    assert (got.host, got.port, got.user, got.database) == ("h2", 2, "b", "d2")


def test_parts_are_percent_decoded(home: Path) -> None:
    got = at(home, "postgresql://ann%40corp@h/my%20db%2Fx?application_name=a%26b%3Dc+d")
    assert (got.user, got.database) == ("ann@corp", "my db/x")
    assert got.application_name == "a&b=c+d"  # a "+" stays a plus, as in libpq
    assert at(home, "postgresql://caf%C3%A9@h/d").user == "café"
    assert "%-escape" in refused(home, "postgresql://h/100%")
    assert "UTF-8" in refused(home, "postgresql://h/%FF")


def test_a_socket_directory_as_host(home: Path) -> None:
    got = at(home, "postgresql://u@%2Fvar%2Frun%2Fpostgresql:5433/d")
    assert got.host == "/var/run/postgresql"
    assert got.unix_socket() == "/var/run/postgresql/.s.PGSQL.5433"
    assert got.where == "postgresql://u@/var/run/postgresql:5433/d"
    assert at(home, "postgresql:///d?host=/tmp&user=u").unix_socket() == "/tmp/.s.PGSQL.5432"
    assert at(home, "postgresql://u@db/d").unix_socket() is None


def test_ipv6_addresses_in_brackets(home: Path) -> None:
    got = at(home, "postgresql://u@[::1]:6543/d")
    assert (got.host, got.port) == ("::1", 6543)
    assert got.where == "postgresql://u@[::1]:6543/d"
    assert at(home, "postgresql://u@[fe80::1%25eth0]/d").host == "fe80::1%eth0"
    assert at(home, "postgresql://u@[2001:db8::7]").port == 5432
    for bad in ("[::1", "[]:5432", "[::1]x"):
        assert "IPv6" in refused(home, f"postgresql://u@{bad}/d")


def test_a_password_in_the_url_is_refused_without_showing_it(home: Path) -> None:
    for url in (
        f"postgresql://archiver:{SECRET}@db/reddit",
        f"postgres://archiver:{SECRET}@[::1]:5432/reddit?sslmode=require",
        f"postgresql://archiver:{SECRET}@db:notaport/reddit?bogus=1",
        "postgresql://archiver:s3cr/3t@db/reddit",  # a "/" in it must not make it a database
        "postgresql://archiver:@db/reddit",
    ):
        message = refused(home, url)
        assert "must not be in the URL" in message and "ps" in message, message
        for where in ("PGPASSWORD", "~/.pgpass", "PGPASSFILE", "LoadCredential=", "database-"):
            assert where in message
        assert "s3cr" not in message


def test_a_password_query_parameter_is_refused_like_userinfo(home: Path) -> None:
    for query in (f"password={SECRET}", f"sslmode=nope&pass%77ord={SECRET}", "password="):
        assert "must not be in the URL" in refused(home, f"postgresql://u@h/d?{query}")


def test_unknown_query_parameters_are_named(home: Path) -> None:
    message = refused(home, "postgresql://u@h/d?sslmode=require&target_session_attrs=any")
    assert "'target_session_attrs'" in message and "sslmode" in message
    assert "'='" in refused(home, "postgresql://u@h/d?sslmode")
    # A key that is not a word may be a mistyped password's tail: it is not shown.
    assert "in the query" in refused(home, f"postgresql://u@h/d?{SECRET}!=1")


def test_several_hosts_are_refused(home: Path) -> None:
    urls = ("postgresql://h1,h2/d", "postgresql://h1:1,h2:2/d", "postgresql://[::1],[::2]/d")
    for url in (*urls, "postgresql://h/d?host=a,b"):
        assert "several hosts" in refused(home, url)
    assert "several hosts" in refused(home, "postgresql://u@/d", PGHOST="a,b")
    assert "several hosts" in refused(home, "postgresql://u@h/d", PGPORT="1,2")


@pytest.mark.parametrize("port", ["0", "65536", "99999", "http", "-1", "5432x", "123456"])
def test_a_bad_port_is_refused(home: Path, port: str) -> None:
    message = refused(home, f"postgresql://u@h:{port}/d")
    assert "port" in message and port not in message  # a URL's bad port may be a password
    assert f"PGPORT {port!r}" in refused(home, "postgresql://u@h/d", PGPORT=port)
    assert at(home, "postgresql://u@h:65535/d").port == 65535


def test_a_bad_sslmode_or_timeout_is_refused(home: Path) -> None:
    message = refused(home, "postgresql://u@h/d?sslmode=Require")
    assert "'Require'" in message and "verify-full" in message and "allow" in message
    assert "'x'" in refused(home, "postgresql://u@h/d", PGSSLMODE="x")
    assert "connect_timeout" in refused(home, "postgresql://u@h/d?connect_timeout=soon")
    assert "connect_timeout" in refused(home, "postgresql://u@h/d", PGCONNECT_TIMEOUT="inf")


def test_connect_timeout_of_zero_or_less_waits_for_ever(home: Path) -> None:
    assert at(home, "postgresql://u@h/d?connect_timeout=2.5").connect_timeout == 2.5
    assert at(home, "postgresql://u@h/d?connect_timeout=0").connect_timeout is None
    assert at(home, "postgresql://u@h/d", PGCONNECT_TIMEOUT="-3").connect_timeout is None


def test_without_an_os_user_name_the_url_must_give_one(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", fail)
    assert "PGUSER" in refused(home, "postgresql://h/d")
    assert at(home, "postgresql://h/d", PGUSER="u").user == "u"


def test_disable_and_allow_and_prefer(home: Path) -> None:
    assert at(home, "postgresql://u@h/d?sslmode=disable").ssl_context() is None
    assert at(home, "postgresql://u@h/d?sslmode=disable").attempts() == [None]
    for mode, order in (("allow", [None, "tls"]), ("prefer", ["tls", None])):
        attempts = at(home, f"postgresql://u@h/d?sslmode={mode}").attempts()
        assert [None if a is None else "tls" for a in attempts] == order
        ctx = next(a for a in attempts if a is not None)
        assert not ctx.check_hostname and ctx.verify_mode == ssl.CERT_NONE


def test_require_encrypts_without_verifying(home: Path, cert: tuple[Path, Path]) -> None:
    got = at(home, "postgresql://u@localhost/d?sslmode=require")
    ctx = got.ssl_context()
    assert ctx is not None and not ctx.check_hostname and ctx.verify_mode == ssl.CERT_NONE
    assert [a is None for a in got.attempts()] == [False]
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    handshake(ctx, cert, "anything")  # any certificate will do


def test_with_a_root_certificate_at_hand_require_verifies_the_chain(
    home: Path, cert: tuple[Path, Path]
) -> None:
    # libpq's compatibility rule: ~/.postgresql/root.crt makes require act as verify-ca.
    (home / ".postgresql").mkdir()
    (home / ".postgresql" / "root.crt").write_bytes(cert[0].read_bytes())
    got = at(home, "postgresql://u@h/d?sslmode=require")
    assert got.sslrootcert == str(home / ".postgresql" / "root.crt")
    ctx = got.ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and not ctx.check_hostname
    # A named root file that is not there leaves require unverified, as in libpq.
    ctx = at(home, "postgresql://u@h/d?sslmode=require&sslrootcert=/no/such.crt").ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_NONE


def test_verify_ca_checks_the_chain_but_not_the_name(home: Path, cert: tuple[Path, Path]) -> None:
    got = at(home, "postgresql://u@h/d?sslmode=verify-ca", PGSSLROOTCERT=str(cert[0]))
    ctx = got.ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and not ctx.check_hostname
    assert [a is None for a in got.attempts()] == [False]
    handshake(ctx, cert, "not-the-name")
    # Trusting another root, the same server's certificate fails.
    other = at(home, "postgresql://u@h/d?sslmode=verify-ca", PGSSLROOTCERT=str(make_cert(home)))
    other_ctx = other.ssl_context()
    assert other_ctx is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(other_ctx, cert, "localhost")


def test_verify_full_checks_the_chain_and_the_name(home: Path, cert: tuple[Path, Path]) -> None:
    url = f"postgresql://u@localhost/d?sslmode=verify-full&sslrootcert={cert[0]}"
    got = at(home, url)
    ctx = got.ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "localhost"),),)]
    assert [a is None for a in got.attempts()] == [False]
    handshake(ctx, cert, "localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(ctx, cert, "db.example")


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_verification_without_a_root_certificate_is_refused(home: Path, mode: str) -> None:
    got = at(home, f"postgresql://u@h/d?sslmode={mode}")
    assert got.sslrootcert is None
    for call in (got.ssl_context, got.attempts):
        with pytest.raises(UsageError, match="PGSSLROOTCERT"):
            call()
    with pytest.raises(UsageError, match=r"cannot read the root certificate /no/such\.crt"):
        at(home, f"postgresql://u@h/d?sslmode={mode}&sslrootcert=/no/such.crt").ssl_context()
    garbage = passfile(home / "garbage.crt", "not a certificate\n")
    with pytest.raises(UsageError, match="not a PEM certificate"):
        at(home, f"postgresql://u@h/d?sslmode={mode}&sslrootcert={garbage}").ssl_context()


def test_no_tls_over_a_unix_socket_whatever_the_sslmode(home: Path) -> None:
    for mode in ("allow", "prefer", "require", "verify-full"):
        assert at(home, f"postgresql://u@%2Ftmp/d?sslmode={mode}").attempts() == [None]


def test_password_precedence(home: Path) -> None:
    creds = home / "creds"
    creds.mkdir()
    (creds / "database-password").write_text("from-credential\n", encoding="utf-8")
    passfile(home / ".pgpass", "*:*:*:*:from-pgpass\n")
    url = "postgresql://u@h/d"
    both = {"CREDENTIALS_DIRECTORY": str(creds)}
    assert at(home, url, PGPASSWORD="from-env", **both).password == "from-env"
    assert at(home, url, **both).password == "from-credential"  # its newline stripped
    assert at(home, url, PGPASSWORD="", **both).password == "from-credential"
    assert at(home, url, CREDENTIALS_DIRECTORY=str(home / "none")).password == "from-pgpass"
    assert at(home, url).password == "from-pgpass"
    (creds / "database-password").write_text("two\nlines\r\n", encoding="utf-8")
    assert at(home, url, **both).password == "two\nlines"


def test_pgpassfile_replaces_the_home_file(home: Path) -> None:
    passfile(home / ".pgpass", "*:*:*:*:home\n")
    other = passfile(home / "elsewhere", "*:*:*:*:named\n")
    assert at(home, "postgresql://u@h/d", PGPASSFILE=str(other)).password == "named"
    assert at(home, "postgresql://u@h/d", PGPASSFILE=str(home / "none")).password is None


def test_pgpass_matching(home: Path) -> None:
    passfile(
        home / ".pgpass",
        "# host:port:database:username:password\n"
        "\n"
        "db.example:5432:reddit:archiver:first\n"
        "db.example:5432:reddit:archiver:second\n"
        "db.example:5432:we\\:ird\\\\db:archiver:pa\\:ss\\\\wd:ignored-tail\n"
        "db.example:5432:\\*:archiver:literal-star\n"
        "db.example:*:*:archiver:any-db\n"
        "*:6543:*:*:port-6543\n"
        "short:5432:reddit\n"
        "localhost:5432:*:sock:via-localhost\n"
        "/run/pg:5432:*:dir:via-directory\n"
        "other:5432:*:*:\n",
    )

    def password(url: str) -> str | None:
        return at(home, url).password

    assert password("postgresql://archiver@db.example/reddit") == "first"  # first match wins
    assert password("postgresql://archiver@db.example:7777/other") == "any-db"
    assert password("postgresql://anyone@anywhere:6543/x") == "port-6543"
    assert password("postgresql://archiver@db.example/we%3Aird%5Cdb") == "pa:ss\\wd"
    assert password("postgresql://archiver@db.example/%2A") == "literal-star"
    assert password("postgresql://archiver@db.example/anything") == "any-db"
    assert password("postgresql://nobody@db.example/reddit") is None
    assert password("postgresql://sock@localhost/x") == "via-localhost"
    assert password("postgresql://sock@%2Fvar%2Frun%2Fpostgresql/x") == "via-localhost"
    assert password("postgresql://dir@%2Frun%2Fpg/x") == "via-directory"
    assert password("postgresql://dir@localhost/x") is None
    assert password("postgresql://x@short/reddit") is None
    assert password("postgresql://x@other/reddit") is None  # an empty password is none


def test_pgpass_readable_by_others_is_ignored_with_a_note(home: Path) -> None:
    path = passfile(home / ".pgpass", f"*:*:*:*:{SECRET}\n", mode=0o644)
    got = at(home, "postgresql://u@h/d")
    assert got.password is None
    assert got.notes == (f"{path} is accessible by others; ignored (chmod 0600 it)",)
    assert SECRET not in repr(got)
    path.chmod(0o640)
    assert at(home, "postgresql://u@h/d").password is None
    path.chmod(0o600)
    assert at(home, "postgresql://u@h/d") == Target("h", 5432, "u", "d", password=SECRET)
    assert at(home, "postgresql://u@h/d").notes == ()


def test_a_pgpass_that_is_not_a_file_is_ignored_with_a_note(home: Path) -> None:
    (home / ".pgpass").mkdir()
    got = at(home, "postgresql://u@h/d")
    assert got.password is None and "not a plain file" in got.notes[0]


def test_an_unreadable_credential_is_refused(home: Path) -> None:
    creds = home / "creds"
    (creds / "database-password").mkdir(parents=True)  # unreadable even for root
    with pytest.raises(UsageError, match="cannot read the credential"):
        at(home, "postgresql://u@h/d", CREDENTIALS_DIRECTORY=str(creds))


def test_repr_and_where_never_show_the_password(home: Path) -> None:
    got = at(home, "postgresql://u@h/d", PGPASSWORD=SECRET)
    assert got.password == SECRET
    assert SECRET not in repr(got) and SECRET not in str(got) and SECRET not in got.where
    assert "password" not in repr(got)
