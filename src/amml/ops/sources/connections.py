"""Where sources get connection strings and secrets: never from the workflow text itself.

A source config names its server with one of:

* ``url``: a URL without a password (``postgresql+psycopg://amml@db:5432/metrics``);
* ``url_env``: the name of an environment variable holding the URL (secrets stay out of the
  workflow, the IR, the run metadata and the logs);
* ``profile``: a named entry of the profile file (``AMML_PROFILES``, default
  ``~/.amml/profiles.yaml``), e.g. ``warehouse: {url: postgresql+psycopg://...}``.

Anything printed goes through :func:`redact`, which hides passwords and tokens.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, model_validator

from amml._exceptions import OpError

_SECRET_QUERY = re.compile(r"(?i)((?:password|passwd|pwd|token|secret|api_key|apikey)=)[^&;\s]+")


def redact(text: str) -> str:
    """Hide the password of a URL and secret-looking query values.

    >>> redact("postgresql://amml:s3cret@db:5432/x?sslmode=require&token=abc")
    'postgresql://amml:***@db:5432/x?sslmode=require&token=***'
    """
    def one(url: str) -> str:
        try:
            parts = urlsplit(url)
        except ValueError:
            return url
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    text = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+", lambda m: one(m.group(0)), text)
    return _SECRET_QUERY.sub(lambda m: m.group(1) + "***", text)


def profiles_path() -> Path:
    return Path(os.environ.get("AMML_PROFILES") or Path.home() / ".amml" / "profiles.yaml")


def load_profile(name: str) -> dict[str, Any]:
    path = profiles_path()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise OpError(f"connection profile '{name}' requested but {path} does not exist "
                      "(set AMML_PROFILES or create it)") from None
    if not isinstance(data, dict) or name not in data:
        known = ", ".join(sorted(data)) if isinstance(data, dict) else "none"
        raise OpError(f"no connection profile '{name}' in {path} (profiles: {known})")
    profile = data[name]
    if isinstance(profile, str):
        profile = {"url": profile}
    if not isinstance(profile, dict):
        raise OpError(f"profile '{name}' in {path} must be a URL or a mapping")
    return profile


class ConnectionConfig(BaseModel):
    """Mixin for source configs that talk to a server."""

    url: str | None = None
    url_env: str | None = None
    profile: str | None = None

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> ConnectionConfig:
        given = [n for n in ("url", "url_env", "profile") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"give one of url, url_env or profile, not {' and '.join(given)}")
        if self.url and urlsplit(self.url).password:
            raise ValueError("the URL contains a password: put it in an environment variable "
                             "(url_env) or a profile instead of the workflow")
        return self

    def resolve_url(self, default: str | None = None) -> str:
        """The URL to connect to, from wherever the config says it lives."""
        if self.url:
            return self.url
        if self.url_env:
            value = os.environ.get(self.url_env)
            if not value:
                raise OpError(f"environment variable {self.url_env} (url_env) is not set")
            return value
        if self.profile:
            profile = load_profile(self.profile)
            if "url" not in profile:
                raise OpError(f"profile '{self.profile}' has no 'url'")
            return str(profile["url"])
        if default is not None:
            return default
        raise OpError("no server given: set url, url_env or profile")


def host_port(url: str, default_port: int | None = None) -> str:
    """``host:port`` of a URL, for error messages (never the credentials)."""
    parts = urlsplit(url)
    port = parts.port or default_port
    return f"{parts.hostname or 'localhost'}:{port}" if port else (parts.hostname or "localhost")
