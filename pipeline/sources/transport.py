"""HTTP transports: the only module that touches a network library.

On Python 3.10+ redpipe uses one `requests.Session` (keep-alive, connection pool). No
release of urllib3 that runs on 3.9 carries every published security fix (2.7.0 needs
3.10; 2.6.x has CVE-2026-44432; older lines miss the 2.6 fixes), so on 3.9 requests is
never imported and a small `http.client` transport with the same behaviour is used.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast
from urllib.parse import urlencode, urlsplit

from ..errors import NetworkError

if TYPE_CHECKING:  # pragma: no cover
    import requests

# A Reddit listing page is about 0.5 MB; anything far larger is not a listing, and
# refusing it bounds memory against a decompression bomb.
MAX_BODY = 32 * 1024 * 1024


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: Mapping[str, str]
    params: Mapping[str, str] | None = None
    form: Mapping[str, str] | None = None
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)


class Transport(Protocol):
    def request(self, req: Request) -> Response: ...

    def close(self) -> None: ...


def make_transport(
    *,
    connect_timeout: float,
    read_timeout: float,
    use_requests: bool = sys.version_info >= (3, 10),
) -> Transport:
    """The transport for this interpreter (see the module docstring for why two)."""
    if use_requests:
        return RequestsTransport(connect_timeout=connect_timeout, read_timeout=read_timeout)
    return StdlibTransport(connect_timeout=connect_timeout, read_timeout=read_timeout)


def _describe(exc: BaseException, timeout: float) -> str:
    """A short, secret-free description of a network failure for a one-line log."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cur, ConnectionResetError):
            return "connection reset"
        if isinstance(cur, (socket.timeout, TimeoutError)) or "timed out" in str(cur).lower():
            return f"no answer within {timeout:g}s"
        if isinstance(cur, socket.gaierror):
            return "host name lookup failed"
        if isinstance(cur, ssl.SSLError):
            return f"TLS error ({cur.reason or cur.__class__.__name__})"
        if isinstance(cur, http.client.RemoteDisconnected):
            return "server closed the connection without answering"
        cur = cur.__cause__ or cur.__context__
    return exc.__class__.__name__


class RequestsTransport:
    """requests.Session-backed transport (Python 3.10+)."""

    def __init__(self, *, connect_timeout: float, read_timeout: float) -> None:
        import requests  # imported here so --help/--version never load the HTTP stack

        self._requests = requests
        self._session = requests.Session()
        self._timeout = (connect_timeout, read_timeout)

    def request(self, req: Request) -> Response:
        try:
            resp = self._session.request(
                req.method,
                req.url,
                headers=dict(req.headers),
                params=dict(req.params) if req.params else None,
                data=dict(req.form) if req.form else None,
                auth=req.basic_auth,
                timeout=self._timeout,
                # A redirect from Reddit means "not what you asked for" (an unknown
                # subreddit redirects to search); the caller reports it.
                allow_redirects=False,
                stream=True,
            )
            try:
                body = self._read(resp)
            finally:
                resp.close()
        except self._requests.RequestException as exc:
            raise NetworkError(_describe(exc, self._timeout[1])) from exc
        return Response(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, body)

    @staticmethod
    def _read(resp: requests.Response) -> bytes:
        chunks = []
        size = 0
        for chunk in resp.iter_content(65536):
            size += len(chunk)
            if size > MAX_BODY:
                raise NetworkError(f"response body larger than {MAX_BODY} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self._session.close()


def _body(req: Request) -> tuple[dict[str, str], bytes | None]:
    """The headers and body http.client must be given for `req`."""
    hdrs = {"Accept-Encoding": "gzip, deflate", "Connection": "keep-alive", **req.headers}
    body = None
    if req.form is not None:
        body = urlencode(req.form).encode("ascii")
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    if req.basic_auth is not None:
        token = base64.b64encode(":".join(req.basic_auth).encode("utf-8")).decode("ascii")
        hdrs["Authorization"] = "Basic " + token
    return hdrs, body


class StdlibTransport:
    """http.client transport with one kept-alive connection per origin (Python 3.9)."""

    def __init__(self, *, connect_timeout: float, read_timeout: float) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._conns: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self._ssl: ssl.SSLContext | None = None

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            # certifi's bundle, read from inside the .pyz without extracting it to disk;
            # the system store if certifi is not there.
            try:
                import pkgutil

                pem = pkgutil.get_data("certifi", "cacert.pem")
            except (ImportError, OSError):
                pem = None
            self._ssl = ssl.create_default_context(cadata=pem.decode("ascii") if pem else None)
        return self._ssl

    def _connection(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        key = (scheme, host, port)
        conn = self._conns.get(key)
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(
                    host, port, timeout=self._connect_timeout, context=self._context()
                )
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
            self._conns[key] = conn
        return conn

    def request(self, req: Request) -> Response:
        parts = urlsplit(req.url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise NetworkError(f"unsupported URL {req.url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        target = parts.path or "/"
        query = "&".join(q for q in (parts.query, urlencode(req.params or {})) if q)
        if query:
            target += "?" + query
        key = (scheme, parts.hostname, port)
        status, headers, raw = self._exchange(key, req.method, target, *_body(req))
        return Response(status, headers, self._decode(raw, headers))

    def _exchange(
        self,
        key: tuple[str, str, int],
        method: str,
        target: str,
        hdrs: dict[str, str],
        body: bytes | None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on the kept-alive connection to `key`, retried once on a fresh
        connection if the kept one turns out to be closed."""
        for attempt in (1, 2):
            conn = self._connection(*key)
            reused = conn.sock is not None
            try:
                if conn.sock is None:
                    conn.connect()
                    # http.client has one timeout; connecting gets the short one.
                    cast(socket.socket, conn.sock).settimeout(self._read_timeout)
                conn.request(method, target, body=body, headers=hdrs)
                resp = conn.getresponse()
                raw = resp.read(MAX_BODY + 1)
                if len(raw) > MAX_BODY:
                    raise NetworkError(f"response body larger than {MAX_BODY} bytes")
                if resp.will_close:
                    self._drop(key)
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw
            except (OSError, http.client.HTTPException) as exc:
                self._drop(key)
                # A kept-alive connection the server has closed meanwhile fails on first
                # use; that is not a fault of the server, so try once on a fresh one.
                stale = isinstance(
                    exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                )
                if attempt == 1 and reused and stale:
                    continue
                raise NetworkError(_describe(exc, self._read_timeout)) from exc
            except BaseException:
                self._drop(key)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _decode(raw: bytes, headers: Mapping[str, str]) -> bytes:
        encoding = headers.get("content-encoding", "").strip().lower()
        try:
            if encoding == "gzip":
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif encoding == "deflate":
                d = zlib.decompressobj()
            else:
                return raw
            out = d.decompress(raw, MAX_BODY + 1)
        except zlib.error as exc:
            raise NetworkError(f"undecodable {encoding} body") from exc
        if len(out) > MAX_BODY:
            raise NetworkError(f"response body larger than {MAX_BODY} bytes")
        return out

    def _drop(self, key: tuple[str, str, int]) -> None:
        conn = self._conns.pop(key, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for key in list(self._conns):
            self._drop(key)
