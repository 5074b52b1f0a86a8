"""The one place that reads the environment. Bad values fail loudly at start-up."""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Env:
    def __init__(self, environ_: Mapping[builtins.str, builtins.str] | None = None) -> None:
        self._environ = os.environ if environ_ is None else environ_

    def export(self, name: builtins.str, value: builtins.str) -> None:
        """Hand a value to a library that reads the environment itself (prometheus-client
        reads `PROMETHEUS_MULTIPROC_DIR` when it is imported)."""
        if isinstance(self._environ, os._Environ):
            os.environ[name] = value

    def is_set(self, name: builtins.str) -> bool:
        return bool(self._environ.get(name, "").strip())

    def _raw(self, name: builtins.str) -> builtins.str | None:
        value = self._environ.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def _fail(
        self, name: builtins.str, value: builtins.str, expected: builtins.str
    ) -> ImproperlyConfigured:
        return ImproperlyConfigured(f"{name}={value!r} is not valid: expected {expected}.")

    def str(self, name: builtins.str, default: builtins.str) -> builtins.str:
        value = self._raw(name)
        return default if value is None else value

    def bool(self, name: builtins.str, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise self._fail(name, value, "true or false")

    def int(self, name: builtins.str, default: int) -> int:
        value = self._raw(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise self._fail(name, value, "a whole number") from None

    def float(self, name: builtins.str, default: float) -> float:
        value = self._raw(name)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise self._fail(name, value, "a number") from None

    def list(
        self, name: builtins.str, default: builtins.list[builtins.str]
    ) -> builtins.list[builtins.str]:
        value = self._raw(name)
        if value is None:
            return default
        return [item.strip() for item in value.split(",") if item.strip()]

    def path(self, name: builtins.str, default: Path) -> Path:
        value = self._raw(name)
        return default if value is None else Path(value).expanduser().resolve()

    DATABASE_FORMS = (
        "postgres://USER:PASSWORD@HOST:PORT/NAME (or postgresql://…), "
        "sqlite:///relative/path.sqlite3 or sqlite:////absolute/path.sqlite3"
    )

    def database(self, name: builtins.str) -> dict[builtins.str, Any]:
        """A PostgreSQL or SQLite database URL; any other scheme fails naming the forms."""
        value = self._raw(name) or ""
        scheme = value.partition("://")[0].lower()
        if scheme not in {"postgres", "postgresql", "sqlite"} or "://" not in value:
            raise self._fail(name, value, self.DATABASE_FORMS)
        config = self.db_url(name)
        if scheme == "sqlite" and config["NAME"] == ":memory:":
            # each process (web, worker) would have a database of its own
            raise self._fail(name, value, f"a database file: {self.DATABASE_FORMS}")
        return config

    def storage(self, name: builtins.str) -> dict[builtins.str, Any]:
        """Django's default storage from an URL: unset → the filesystem; `s3://bucket/prefix`
        → S3-compatible object storage (django-storages). boto3 reads the endpoint, region
        and credentials from the standard AWS_* variables itself."""
        value = self._raw(name)
        if value is None:
            return {"BACKEND": "django.core.files.storage.FileSystemStorage"}
        scheme, _, rest = value.partition("://")
        bucket, _, prefix = rest.partition("/")
        if scheme != "s3" or not bucket:
            raise self._fail(name, value, "s3://bucket or s3://bucket/prefix")
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "location": prefix.strip("/"),
                "file_overwrite": False,  # a taken name gets a suffix, as on the filesystem
                "default_acl": None,  # private: every download goes through Bunch
                "querystring_auth": True,
                "signature_version": "s3v4",
            },
        }

    def db_url(self, name: builtins.str) -> dict[builtins.str, Any]:
        value = self._raw(name) or ""
        try:
            config: dict[builtins.str, Any] = environ.Env.db_url_config(value)
        except Exception as exc:  # django-environ raises several types for bad URLs
            raise self._fail(name, value, f"a database URL ({exc})") from None
        if not config.get("NAME"):
            raise self._fail(name, value, "a database URL with a database name")
        return config
