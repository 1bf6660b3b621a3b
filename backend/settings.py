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
    # The origin browsers use for this site (e.g. https://forum.example.org behind a TLS proxy). Unset: the
    # request's own scheme and Host. Sign-in/registration and cookie websockets from other origins are 403.
    public_origin: str = ""
    # Failed sign-ins before 429: per account-and-address pair and per address in `login_failure_window_s`,
    # per account from all addresses (slower, so a stranger cannot lock an account out) in the longer window.
    login_max_failures_per_pair: int = 5
    login_max_failures_per_ip: int = 20
    login_failure_window_s: int = 900
    login_max_failures_per_account: int = 50
    login_account_window_s: int = 3600
    register_max_per_ip: int = 20
    register_window_s: int = 3600
    sweeper_interval_s: float = 5.0
    related_index_interval_s: float = 5.0  # worker: embeddings/term statistics upkeep (search/jobs.py); 0: off
    # Real time (websockets): per node limits and timings.
    ws_queue_size: int = 256  # messages waiting for one socket before it is closed as too slow (4008)
    ws_replay_buffer: int = 1024  # live messages held for one subscription while it replays
    ws_max_subscriptions: int = 50  # per socket
    ws_max_message_bytes: int = 4096  # largest client message
    ws_max_ops_per_s: int = 50  # client messages per second per socket
    ws_max_connections_per_user: int = 20
    ws_max_connections_per_ip: int = 200
    ws_ping_interval_s: float = 20.0  # protocol-level pings; a peer silent for interval+timeout is dropped
    ws_ping_timeout_s: float = 20.0
    ws_replay_max_entries: int = 10_000  # stream entries scanned for a resume before answering resync
    ws_recheck_interval_s: float = 300.0  # every signed-in socket is re-authorized this often (0: only on notices)
    ws_draft_ttl_s: int = 3600
    # Agents and LLM providers
    llm_provider: str = "auto"  # auto: anthropic when an API key is set, else offline; or "offline"/"anthropic"
    anthropic_api_key: str = ""  # FORUM_ANTHROPIC_API_KEY (ANTHROPIC_API_KEY is read too)
    anthropic_model: str = "claude-haiku-4-5"
    anthropic_base_url: str = ""  # e.g. a local fake Messages API in tests
    llm_timeout_s: float = 60.0
    llm_max_tokens: int = 600
    agent_max_directives_per_hour: int = 200  # per org, all packages together
    agent_daily_cost_cap_usd: float = 5.0  # per org
    agent_job_timeout_s: int = 120
    agent_job_retries: int = 3  # total attempts (SAQ counts the first)
    agent_claim_idle_ms: int = 30_000  # router: reclaim stream entries a dead consumer left this long
    agent_requeue_interval_s: float = 10.0
    agent_requeue_after_s: float = 10.0  # a pending directive this old with no job is enqueued again
    agent_job_heartbeat_s: int = 30  # a directive job silent this long is swept and retried by SAQ
    agent_worker_sweep_s: int = 5  # how often SAQ looks for stuck jobs
    agent_unanswered_sweep_s: float = 60.0  # how often the worker looks for questions nobody answered
    agent_digest_sweep_s: float = 3600.0  # how often the worker checks whether a weekly digest is due
    llm_offline_delay_s: float = 0.0  # per-token pause of the offline provider (demos, benchmarks)
    # Image proxy (remote images in posts, backend/media)
    image_proxy_max_bytes: int = 5 * 1024 * 1024
    image_proxy_timeout_s: float = 10.0
    image_proxy_allow_private: str = ""  # comma-separated host:port allowed despite a private address (tests)
    agent_draft_stale_s: float = 120.0  # the draft sweep ends a draft whose attempt is silent this long

    def require_urls(self) -> tuple[str, str]:
        if not self.database_url or not self.redis_url:
            raise RuntimeError("FORUM_DATABASE_URL and FORUM_REDIS_URL must be set (forum dev sets them for you)")
        return self.database_url, self.redis_url


_SECRET_NAMES = {"secret_key", "database_url", "redis_url", "anthropic_api_key"}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read `FORUM_<FIELD>` variables; raise ValueError naming the variable when one is invalid."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for name in Settings.__struct_fields__:
        value = env.get(PREFIX + name.upper())
        if value is not None and value != "":
            raw[name] = value
    if "anthropic_api_key" not in raw and env.get("ANTHROPIC_API_KEY"):
        raw["anthropic_api_key"] = env["ANTHROPIC_API_KEY"]
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
