"""Where sources get connection strings and secrets: never from the workflow text itself.

A source config names its server with one of:

* ``url``: a URL without a password (``postgresql+psycopg://amml@db:5432/metrics``);
* ``url_env``: the name of an environment variable holding the URL (secrets stay out of the
  workflow, the IR, the run metadata and the logs);
* ``profile``: a named entry of the profile file (``AMML_PROFILES``, default
  ``~/.amml/profiles.yaml``), e.g. ``warehouse: {url: postgresql+psycopg://...}``.

URLs are read by :mod:`amml._urls` (credential-aware) and anything printed goes through
:func:`redact`, which hides passwords and tokens wherever they appear.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, field_validator, model_validator

from amml._exceptions import OpError
from amml._urls import MASK, credentials_in, is_url, parse_url, redact, redact_url, remember_secrets

__all__ = ["ConnectionConfig", "host_port", "load_profile", "profiles_path", "redact"]


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

    @model_validator(mode="before")
    @classmethod
    def _hide_credentials_from_errors(cls, data: Any) -> Any:
        # Validation errors quote their input (and `amml validate` prints it): a URL carrying
        # credentials is swapped for its redacted form here, so the refusal below can only
        # ever quote "***"; the config is refused either way.
        if isinstance(data, dict) and isinstance(data.get("url"), str) \
                and credentials_in(data["url"]):
            data = {**data, "url": redact_url(data["url"])}
        return data

    @field_validator("url")
    @classmethod
    def _no_credentials_in_the_workflow(cls, url: str | None) -> str | None:
        where = credentials_in(url) if url else []
        if url and not where and MASK in url:  # hidden above, in a way that hid its shape too
            where = ["hidden here as ***"]
        if where:
            raise ValueError(
                f"the URL contains a password or other credentials ({', '.join(where)}): the "
                "workflow, its IR and the run metadata must not hold secrets; put the URL in an "
                "environment variable (url_env) or a profile")
        return url

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> ConnectionConfig:
        given = [n for n in ("url", "url_env", "profile") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"give one of url, url_env or profile, not {' and '.join(given)}")
        return self

    def resolve_url(self, default: str | None = None) -> str:
        """The URL to connect to, from wherever the config says it lives.

        A URL from the environment or a profile must be shaped ``scheme://...``; its
        credentials are remembered so that no later message can show them.
        """
        if self.url:
            return self.url
        if self.url_env:
            value = os.environ.get(self.url_env)
            if not value:
                raise OpError(f"environment variable {self.url_env} (url_env) is not set")
            return _checked(value, f"environment variable {self.url_env} (url_env)")
        if self.profile:
            profile = load_profile(self.profile)
            if "url" not in profile:
                raise OpError(f"profile '{self.profile}' has no 'url'")
            return _checked(str(profile["url"]), f"the 'url' of profile '{self.profile}'")
        if default is not None:
            return default
        raise OpError("no server given: set url, url_env or profile")


def _checked(value: str, where: str) -> str:
    value = value.strip()
    remember_secrets(value)
    if not is_url(value):
        # the value is never quoted: a variable named by mistake may hold a bare password
        raise OpError(f"{where} does not hold a URL (expected scheme://host[:port]/...; "
                      "its value is not shown because it may be a secret)")
    return value


def host_port(url: str, default_port: int | None = None) -> str:
    """``host:port`` of a URL, for error messages (never the credentials, never an error)."""
    try:
        return parse_url(url.strip()).host_port(default_port)
    except ValueError:
        return "an unparseable address"
