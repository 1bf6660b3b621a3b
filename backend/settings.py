"""One typed settings object, read from `FORUM_*` environment variables once and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

PREFIX = "FORUM_"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None  # unset: embedded PostgreSQL under data_dir (forum dev)
    redis_url: str | None = None  # unset: embedded Redis under data_dir (forum dev)
    data_dir: str = ".forum"
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str = ""  # HMAC key for IP hashing; generated into data_dir when unset
    frontend_dist: str = "frontend/dist"
    log_level: str = "INFO"
    db_pool_min: int = 2
    db_pool_max: int = 10
    stream_partitions: int = 4
    stream_maxlen: int = 100_000
    max_body_bytes: int = 1_048_576
    session_ttl_s: int = 14 * 24 * 3600
    cookie_secure: bool = False
    login_max_failures_per_account: int = 5
    login_max_failures_per_ip: int = 20
    login_failure_window_s: int = 900
    register_max_per_ip: int = 20
    register_window_s: int = 3600
    sweeper_interval_s: float = 5.0

    def require_urls(self) -> tuple[str, str]:
        if not self.database_url or not self.redis_url:
            raise RuntimeError(
                "FORUM_DATABASE_URL and FORUM_REDIS_URL must be set (forum dev sets them for you)"
            )
        return self.database_url, self.redis_url


_SECRET_NAMES = {"secret_key", "database_url", "redis_url"}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read `FORUM_<FIELD>` variables; raise ValueError naming the variable when one is invalid."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for name in Settings.__struct_fields__:
        value = env.get(PREFIX + name.upper())
        if value is not None and value != "":
            raw[name] = value
    raw.update(overrides)
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid configuration: {exc} (check the FORUM_* environment)") from None


def redacted(settings: Settings) -> dict[str, object]:
    """Settings safe to print: secrets and credentials never appear in logs."""
    out: dict[str, object] = {}
    for name in Settings.__struct_fields__:
        value = getattr(settings, name)
        out[name] = "***" if name in _SECRET_NAMES and value else value
    return out
