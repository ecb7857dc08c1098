"""One credential-aware reading of every URL AMML handles, and redaction of any text.

Sources (SQL, InfluxDB, Redis, MQTT), the SQL sink and the metadata store all read URLs
through :func:`parse_url`, and everything AMML prints or stores goes through :func:`redact`.

Why not ``urllib.parse.urlsplit``: it ends the authority at the first ``/``, ``?`` or ``#``, so
in ``postgresql://u:ab/c@db/x`` it sees no password at all, while SQLAlchemy (which connects
with that URL) reads the password ``ab/c``; and its ``.port`` raises a ``ValueError`` quoting
part of that password. Here the user-info ends at the *last* ``@`` that is followed by
something shaped like ``host[:port]`` — the widest reading any client could make, so a check
never misses a password a client would use and a redaction never shows part of one. The
price: an unescaped ``@`` after the host (``?name=me@corp``) can be read as the end of a
user-info; ``%40`` is always safe.

Credentials are the user-info password and query parameters named like secrets
(:data:`SECRET_KEYS`: ``password``, ``pwd``, InfluxDB's ``p``, ``token``, ``api_key``...).
Secrets that AMML resolved from the environment or a profile are also remembered
(:func:`remember_secrets`) and hidden wherever they appear, even outside a URL (a driver
that quotes a DSN, a password split by a typo).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, unquote_plus

__all__ = ["MASK", "SECRET_KEYS", "ParsedUrl", "credentials_in", "encode_userinfo", "is_url",
           "parse_url", "redact", "redact_url", "remember_secrets"]

MASK = "***"

#: Query parameters whose value is a credential (compared case-insensitively).
SECRET_KEYS = frozenset({
    "password", "passwd", "pwd", "pass", "p",  # p: InfluxDB 1.x's ?u=...&p=...
    "sslpassword", "token", "access_token", "auth_token", "id_token", "refresh_token",
    "secret", "client_secret", "api_key", "apikey", "api-key", "x-api-key", "private_key",
    "sig", "signature", "x-amz-signature", "x-amz-security-token", "x-amz-credential",
    "credential", "credentials", "auth", "authorization", "sas", "sas_token",
})

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# what may follow the user-info's '@': host (IPv6 in brackets, several hosts with commas)
# and port, then the end or the start of the path, query or fragment
_HOST_AFTER_AT = re.compile(r"[A-Za-z0-9._~%,:\[\]-]*(?=[/?#]|[)}>,;.:!'\"]*$)")
# key=value credentials outside URLs: libpq DSNs, driver messages (long names only: a bare
# "p=" in prose is not a credential)
_SECRET_PAIR = re.compile(
    r"(?i)(?<![A-Za-z0-9_-])((?:ssl)?password|passwd|pwd|(?:access_|auth_|refresh_)?token|"
    r"(?:client_)?secret|api[_-]?key)(\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s&;,'\"]+)")
_MIN_REMEMBERED = 4  # shorter secrets would mask ordinary words in messages

_remembered: set[str] = set()
_remembered_lock = threading.Lock()


@dataclass(frozen=True)
class ParsedUrl:
    """A URL read the way the most generous client would read it."""

    scheme: str
    userinfo: str | None  # raw, as written
    hosts: str  # raw ``host[:port]`` (or several, comma-separated)
    path: str  # raw, from the first '/' after the host (may be empty)
    query: str  # raw, without the '?'
    fragment: str  # raw, without the '#'
    query_pairs: tuple[tuple[str, str], ...] = field(default=())  # decoded
    original: str = ""
    #: where credentials sit in ``original``, under every reading (see :func:`parse_url`)
    spans: tuple[tuple[int, int], ...] = field(default=())
    each_span: tuple[tuple[int, int], ...] = field(default=())  # before merging
    credentials: tuple[str, ...] = field(default=())  # where, in words (never the values)

    @property
    def username(self) -> str | None:
        if self.userinfo is None:
            return None
        return unquote(self.userinfo.split(":", 1)[0])

    @property
    def password(self) -> str | None:
        """The user-info password, decoded (None without one)."""
        if self.userinfo is None or ":" not in self.userinfo:
            return None
        return unquote(self.userinfo.split(":", 1)[1])

    @property
    def host(self) -> str | None:
        first = self.hosts.split(",", 1)[0]
        if first.startswith("["):
            return unquote(first[1:first.find("]")] if "]" in first else first[1:]) or None
        return unquote(first.rsplit(":", 1)[0] if ":" in first else first) or None

    @property
    def port(self) -> int | None:
        """The first host's port; None when absent or not a number (never an error)."""
        first = self.hosts.split(",", 1)[0]
        tail = first[first.find("]") + 1:] if first.startswith("[") else first
        digits = tail.rsplit(":", 1)[1] if ":" in tail else ""
        return int(digits) if digits.isdigit() and len(digits) <= 5 else None

    def query_value(self, key: str) -> str | None:
        for k, v in self.query_pairs:
            if k == key:
                return v
        return None

    @property
    def secret_query_keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.query_pairs if k.lower() in SECRET_KEYS)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every credential value: as written, and decoded."""
        values: list[str] = []
        for start, end in self.spans + self.each_span:
            raw = self.original[start:end]
            values += [raw, unquote(raw), unquote_plus(raw)]
        return tuple(dict.fromkeys(v for v in values if v))

    def host_port(self, default_port: int | None = None) -> str:
        """``host:port`` for messages: never the credentials."""
        host = self.host or "localhost"
        if ":" in host:
            host = f"[{host}]"
        port = self.port or default_port
        return f"{host}:{port}" if port else host

    def redacted(self) -> str:
        """The URL with every credential replaced by ``***``."""
        out, pos = [], 0
        for start, end in self.spans:  # sorted and merged
            out += [self.original[pos:start], MASK]
            pos = end
        return "".join(out) + self.original[pos:]

    def with_encoded_userinfo(self) -> str:
        """The same URL with the user name and password percent-encoded, so that clients
        reading it the RFC way (redis-py, urllib) see the same password as this parser."""
        if self.userinfo is None:
            return self.unparsed()
        userinfo = quote(self.username or "", safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password, safe="")
        return (f"{self.scheme}://{userinfo}@{self.hosts}{self.path}"
                + (f"?{self.query}" if self.query else "")
                + (f"#{self.fragment}" if self.fragment else ""))

    def unparsed(self) -> str:
        userinfo = f"{self.userinfo}@" if self.userinfo is not None else ""
        return (f"{self.scheme}://{userinfo}{self.hosts}{self.path}"
                + (f"?{self.query}" if self.query else "")
                + (f"#{self.fragment}" if self.fragment else ""))


def is_url(value: str) -> bool:
    """Whether ``value`` is shaped ``scheme://...`` (what every AMML connection needs)."""
    return bool(_SCHEME.match(value.strip()))


def parse_url(url: str) -> ParsedUrl:
    """Read ``scheme://[userinfo@]host[:port][/path][?query][#fragment]``.

    Raises ``ValueError`` for text that is not shaped like a URL; the message never quotes
    the text (it may be a secret).

    >>> u = parse_url("postgresql://amml:ab/c@d@db:5432/x?sslmode=require&password=p%40ss")
    >>> u.username, u.password, u.host, u.port, u.credentials
    ('amml', 'ab/c@d', 'db', 5432, ('a password in its user-info', "query parameter 'password'"))
    >>> u.redacted()
    'postgresql://amml:***@db:5432/x?sslmode=require&password=***'
    """
    match = _SCHEME.match(url)
    if not match:
        raise ValueError("not a URL: expected scheme://host[:port]/...")
    start = match.end()
    # the widest reading: the user-info ends at the last '@' followed by a host
    at = next((i for i in range(len(url) - 1, start - 1, -1)
               if url[i] == "@" and _HOST_AFTER_AT.match(url, i + 1)), None)
    host_start = start if at is None else at + 1
    end = _HOST_AFTER_AT.match(url, host_start)
    # without an '@' the host runs to the first '/', '?' or '#', whatever it holds
    host_end = end.end() if end else _first_of(url, "/?#", host_start)
    rest = url[host_end:]
    rest, _, fragment = rest.partition("#")
    path, _, query = rest.partition("?")
    pairs = []
    for piece in re.split(r"[&;]", query) if query else ():
        key, _, value = piece.partition("=")
        pairs.append((unquote_plus(key), unquote_plus(value)))
    # ...and the RFC reading (the authority ends at the first '/', '?' or '#'), which can put
    # a query string where the wide one saw a user-info: credentials under either are hidden
    rfc_end = _first_of(url, "/?#", start)
    rfc_at = url.rfind("@", start, rfc_end)
    spans, names = _credential_spans(url, start, at, host_end)
    more, more_names = _credential_spans(url, start, rfc_at if rfc_at >= 0 else None, rfc_end)
    return ParsedUrl(url[:start - 3], None if at is None else url[start:at],
                     url[host_start:host_end], path, query, fragment, tuple(pairs), url,
                     _merged(spans + more), tuple(spans + more),
                     tuple(dict.fromkeys(names + more_names)))


def _first_of(text: str, chars: str, start: int) -> int:
    found = [i for i in (text.find(c, start) for c in chars) if i >= 0]
    return min(found, default=len(text))


def _credential_spans(url: str, start: int, at: int | None, host_end: int
                      ) -> tuple[list[tuple[int, int]], list[str]]:
    """Where one reading of ``url`` puts a password and secret query values."""
    spans: list[tuple[int, int]] = []
    names: list[str] = []
    if at is not None:
        colon = url.find(":", start, at)
        if 0 <= colon < at - 1:
            spans.append((colon + 1, at))
            names.append("a password in its user-info")
    query = url.find("?", host_end)
    fragment = url.find("#", host_end)
    if query < 0 or 0 <= fragment < query:
        return spans, names
    end = fragment if fragment > query else len(url)
    pos = query + 1
    while pos <= end:
        stop = min(_first_of(url, "&;", pos), end)
        key, eq, value = url[pos:stop].partition("=")
        if eq and value and unquote_plus(key).lower() in SECRET_KEYS:
            names.append(f"query parameter '{unquote_plus(key)}'")
            spans.append((pos + len(key) + 1, stop))
        pos = stop + 1
    return spans, names


def _merged(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1] + 1:  # touching or overlapping (an '@' between)
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


def redact_url(url: str) -> str:
    """One URL (or URL-like text without a scheme) with its credentials hidden."""
    text = url.strip()
    if is_url(text):
        return parse_url(text).redacted()
    # "user:pw@host/db" (a forgotten scheme) still hides the password
    return parse_url("x://" + text).redacted()[4:]


def encode_userinfo(url: str) -> str:
    """``url`` with its user name and password percent-encoded (unchanged without them), for
    clients that read URLs differently from :func:`parse_url`."""
    try:
        parsed = parse_url(url)
    except ValueError:
        return url
    if parsed.userinfo is None or "?" in parsed.userinfo:
        return url  # an '@' in a query value, or a '?' in a password: too ambiguous to rewrite
    return parsed.with_encoded_userinfo()


def credentials_in(value: str) -> list[str]:
    """Where ``value`` (a URL, or a URL that lacks its scheme) carries credentials."""
    text = value.strip()
    return list(parse_url(text if is_url(text) else "x://" + text).credentials)


def remember_secrets(url: str) -> None:
    """Hide this URL's credentials wherever they show up later in this process.

    Text that is not a URL is remembered whole: it came from where a URL with credentials
    was expected, so it may be a bare password.
    """
    try:
        secrets = parse_url(url.strip()).secrets
    except ValueError:
        secrets = (url.strip(),)
    with _remembered_lock:
        for secret in secrets:
            if len(secret) >= _MIN_REMEMBERED:
                _remembered.add(secret)
                _remembered.add(quote(secret, safe=""))


def redact(text: str) -> str:
    """Hide every credential in free text: in URLs, ``key=value`` pairs and remembered ones.

    >>> redact("failed: postgresql://amml:s3cret@db:5432/x?sslmode=require&token=abc")
    'failed: postgresql://amml:***@db:5432/x?sslmode=require&token=***'
    >>> redact("connection to host=db password=s3cret failed")
    'connection to host=db password=*** failed'
    """
    if not text:
        return text
    with _remembered_lock:
        remembered = sorted(_remembered, key=len, reverse=True)
    for secret in remembered:  # first: a password may itself contain spaces or quotes
        text = text.replace(secret, MASK)
    out: list[str] = []
    pos = 0
    for match in _SCHEME.finditer(text):
        if match.start() < pos:
            continue
        end = match.end()
        while end < len(text) and not text[end].isspace():
            end += 1
        opener = text[match.start() - 1] if match.start() else ""
        if opener in "'\"" and opener in text[match.end():end]:
            end = text.rindex(opener, match.end(), end)  # the URL was quoted: stop there
        out.append(text[pos:match.start()])
        out.append(parse_url(text[match.start():end]).redacted())
        pos = end
    out.append(text[pos:])
    return _SECRET_PAIR.sub(lambda m: m.group(1) + m.group(2) + MASK, "".join(out))
