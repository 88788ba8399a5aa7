"""Process configuration from environment variables (and an optional ``.env`` file).

``REDIS_URL``, ``DATABASE_URL`` and ``PORT`` keep their conventional names; every
other variable has the ``HFTX_`` prefix. When ``REDIS_URL`` / ``DATABASE_URL`` are
unset the URLs point at the embedded servers (``ops.embedded``) and
``embedded_redis`` / ``embedded_database`` are true; the supervisor exports the
actual URLs to its children, so they always see them set.

When ``HFTX_JWT_SECRET`` is unset a random secret is generated once and kept in
``<data dir>/jwt_secret`` (mode 0600), so tokens survive restarts. Several web
nodes on different machines must share an explicit ``HFTX_JWT_SECRET``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_VALKEY_PORT = 6390
DEFAULT_PG_PORT = 5490
JWT_SECRET_FILE = "jwt_secret"
RUN_URLS_FILE = "urls.json"  # where a running ./hftx run's embedded servers really are


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HFTX_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    redis_url: str = Field(default="", validation_alias=AliasChoices("REDIS_URL"))
    database_url: str = Field(default="", validation_alias=AliasChoices("DATABASE_URL"))
    port: int = Field(default=9001, ge=1, le=65535, validation_alias=AliasChoices("PORT"))
    host: str = "127.0.0.1"
    data_dir: Path = Path(".hftx")
    jwt_secret: str = ""
    admin_email: str | None = None
    admin_password: str | None = None
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # addresses (comma-separated IPs or CIDRs) of the load balancers in front of the web
    # nodes, whose X-Forwarded-For names the client; empty: the peer is the client
    forwarded_allow_ips: str = ""
    node_id: int | None = Field(default=None, ge=0, le=1023)
    demo: bool = False
    log_level: str = "INFO"
    valkey_port: int = Field(default=DEFAULT_VALKEY_PORT, ge=1, le=65535)
    pg_port: int = Field(default=DEFAULT_PG_PORT, ge=1, le=65535)
    # fsync policy of the embedded Valkey's AOF: ``always`` loses no acknowledged write
    # to a crash (slower), ``everysec`` up to about a second (docs/internals.md)
    valkey_appendfsync: Literal["always", "everysec", "no"] = "everysec"

    _embedded_redis: bool = PrivateAttr(default=False)
    _embedded_database: bool = PrivateAttr(default=False)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        running = run_urls(self.data_dir)
        if not self.redis_url:
            self._embedded_redis = True
            self.redis_url = running.get("REDIS_URL", f"redis://127.0.0.1:{self.valkey_port}/0")
        if not self.database_url:
            self._embedded_database = True
            self.database_url = running.get(
                "DATABASE_URL", f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"
            )
        if not self.jwt_secret:
            self.jwt_secret = load_or_create_secret(self.data_dir / JWT_SECRET_FILE)
        return self

    @property
    def embedded_redis(self) -> bool:
        """True when ``REDIS_URL`` was not given: the embedded Valkey is meant."""
        return self._embedded_redis

    @property
    def embedded_database(self) -> bool:
        """True when ``DATABASE_URL`` was not given: the embedded PostgreSQL is meant."""
        return self._embedded_database


def run_urls(data_dir: Path) -> dict[str, str]:
    """The URLs of the embedded servers of the ``./hftx run`` using ``data_dir`` (they
    move to free ports when the configured ones are taken), or {} if none is running.
    Written by ``ops.embedded.EmbeddedServices`` while it runs, so that tools on the
    same data dir (``python -m api.admin``, ``python -m analytics``) find them."""
    try:
        urls = json.loads((data_dir / RUN_URLS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(urls, dict):
        return {}
    return {k: v for k, v in urls.items() if isinstance(k, str) and isinstance(v, str)}


def load_or_create_secret(path: Path, nbytes: int = 48) -> str:
    """The secret stored in ``path``; created (atomically, mode 0600) when missing."""
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(nbytes) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # a concurrent creator won: keep theirs
            os.link(tmp, path)  # atomic, never overwrites
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once; ``get_settings.cache_clear()`` to reread)."""
    return Settings()
