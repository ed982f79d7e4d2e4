"""All configuration in one typed object, read from the environment (and `.env`).

Every variable is documented in `.env.example`; nothing else in the code reads `os.environ`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.access import clients

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=32)
def known_timezone(value: str) -> str:
    """An IANA timezone name, checked (also for the restaurant profile's timezone)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {value!r}") from exc
    return value


def _parse_origins(text: str) -> frozenset[str]:
    origins = set()
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        origin = "*" if entry == "*" else clients.normalize_origin(entry)
        if origin is None:
            raise ValueError(
                f"ALLOWED_ORIGINS: {entry!r} is not an origin like https://host[:port]"
            )
        origins.add(origin)
    return frozenset(origins)


_UNITS = {"m": 60, "h": 3600, "d": 86400}


@functools.lru_cache(maxsize=32)
def _parse_offsets(text: str) -> tuple[dt.timedelta, ...]:
    """`24h,2h` / `90m` / `1d` -> durations; an empty string is no reminders."""
    offsets = set()
    for entry in text.split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        match = re.fullmatch(r"(\d{1,5})([mhd])", entry)
        if match is None or int(match.group(1)) == 0:
            raise ValueError(f"REMINDERS_BEFORE: {entry!r} is not a duration like 90m, 2h or 1d")
        offsets.add(dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)]))
    return tuple(sorted(offsets, reverse=True))


def _origin_part(url: str) -> str:
    """`https://host:8443/some/path` -> `https://host:8443`."""
    scheme, sep, rest = url.strip().partition("://")
    return scheme + sep + rest.split("/", 1)[0] if sep else url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # --- HTTP server ---
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"

    # --- who may connect ---
    access_token: SecretStr | None = None  # set: required on /v1/realtime and /api/*
    staff_token: SecretStr | None = None  # set: the staff routes need it; unset: loopback only
    # Comma-separated origins a browser page may open the socket from and frame the pages from,
    # besides the server's own; "*" lets any website in (deliberately).
    allowed_origins: str = ""
    public_base_url: str | None = None  # e.g. https://book.example.com: the server's own origin
    trusted_proxies: str = ""  # comma-separated addresses/CIDRs whose X-Forwarded-* we believe

    # --- per-client limits (0 = no limit) ---
    max_calls_per_client: int = Field(5, ge=0)  # concurrent calls per client address, all processes
    max_new_calls_per_min: int = Field(
        20, ge=0
    )  # calls started per address per minute, all processes
    max_requests_per_min: int = Field(
        120, ge=0
    )  # /api/* requests per address per minute, per process

    # --- database ---
    database_url: str | None = None  # unset: start the embedded PostgreSQL under data_dir
    data_dir: Path = PROJECT_ROOT / ".data"  # relative values are taken from the project root
    db_pool_min_size: int = Field(2, ge=0)
    db_pool_max_size: int = Field(10, ge=1)
    db_command_timeout_s: float = Field(5.0, gt=0)
    db_connect_timeout_s: float = Field(5.0, gt=0)
    db_startup_wait_s: float = Field(5.0, ge=0)  # retry window before start-up gives up
    db_statement_cache_size: int = Field(100, ge=0)  # 0 behind PgBouncer transaction pooling < 1.21
    # the live feed's LISTEN connection: checked this often, reconnected after this much backoff
    db_listen_check_s: float = Field(5.0, gt=0)
    db_listen_retry_max_s: float = Field(5.0, gt=0)
    staff_feed_keepalive_s: float = Field(15.0, gt=0)  # an SSE comment this often keeps it open

    # --- restaurant rules ---
    restaurant_name: str = "Luma Bistro"
    restaurant_timezone: str = "Asia/Singapore"
    default_region: str = "SG"
    # TOML seeding the restaurant profile (hours, closures, tables...) when the database has none
    restaurant_file: Path | None = None
    restaurant_refresh_s: float = Field(10.0, gt=0)  # each process re-reads the profile this often

    # --- realtime model ---
    openai_api_key: SecretStr | None = None  # unset: the offline model runs inside the server
    openai_base_url: str | None = None  # as the openai SDK reads it; points tests at a local model
    openai_websocket_base_url: str | None = None  # the SDK's option: sockets apart from base_url
    realtime_model: str = "gpt-realtime"
    realtime_voice: str = "marin"
    model_connect_timeout_s: float = Field(10.0, gt=0)
    tool_timeout_s: float = Field(8.0, gt=0)
    session_idle_timeout_s: float = Field(300.0, gt=0)
    send_timeout_s: float = Field(15.0, gt=0)  # a peer that stops reading this long ends the call
    max_sessions: int = Field(200, ge=1)
    max_client_frame_bytes: int = Field(256 * 1024, ge=1024)
    max_client_events_per_s: float = Field(200.0, gt=0)  # bursts of twice this are let through
    max_session_s: float = Field(3600.0, gt=0)
    model_session_max_s: float = Field(28 * 60.0, gt=0)  # fresh model session before its cap
    model_reconnect_attempts: int = Field(5, ge=0, le=6)  # after a drop: waits 0, .2, .5, 1, 2 s
    shutdown_grace_s: float = Field(10.0, ge=0)  # SIGTERM: time for calls in flight to finish

    # --- call records and metrics ---
    call_records: bool = True  # off: no calls table rows (benchmarks compare with and without)
    call_record_flush_s: float = Field(15.0, gt=0, le=30)  # live calls written at least this often
    transcript_retention_days: int = Field(30, ge=0)  # older transcripts removed; 0 = none stored
    metrics: bool = True  # off: no /metrics counting (benchmarks compare with and without)
    prometheus_multiproc_dir: Path | None = None  # --workers: metric files (default: a temp dir)
    # USD per 1M tokens, for the estimated cost of each call (OpenAI's gpt-realtime prices)
    model_price_text_in: float = Field(4.0, ge=0)
    model_price_text_in_cached: float = Field(0.4, ge=0)
    model_price_text_out: float = Field(16.0, ge=0)
    model_price_audio_in: float = Field(32.0, ge=0)
    model_price_audio_in_cached: float = Field(0.4, ge=0)
    model_price_audio_out: float = Field(64.0, ge=0)

    # --- spending ---
    model_daily_budget_usd: float | None = Field(None, gt=0)  # unset: no cap
    budget_check_s: float = Field(10.0, gt=0)  # how often each process reads today's cost

    # --- phone calls (Twilio Media Streams) ---
    twilio_auth_token: SecretStr | None = None  # set: webhooks signed, media streams need a token
    twilio_api_base_url: str | None = None  # Twilio's REST API; tests point it at a local fake
    twilio_timeout_s: float = Field(10.0, gt=0)  # one request to Twilio's REST API
    stream_token_ttl_s: float = Field(120.0, gt=0)  # a media stream must start this soon
    # Caller audio of a phone call goes to the model in appends of this many ms (Twilio sends
    # 20 ms frames; 20 = as received). Larger: fewer messages, the caller heard that much later.
    model_audio_chunk_ms: int = Field(20, ge=20, le=200, multiple_of=20)
    transfer_number: str | None = None  # set: the host can transfer a caller here (E.164)
    silence_prompt_s: float = Field(8.0, gt=0)  # caller silent this long: "are you there?"
    silence_hangup_s: float = Field(10.0, gt=0)  # ... and this much longer: goodbye, hang up

    # --- guest messages (SMS through Twilio's Messaging API; docs/guest-messages.md) ---
    twilio_account_sid: str | None = None  # AC...: with TWILIO_AUTH_TOKEN and SMS_FROM, texts go
    sms_from: str | None = None  # the sending number (E.164) or a Messaging Service SID (MG...)
    messages: bool = True  # off: the outbox writes no rows (benchmarks compare with and without)
    reminders_before: str = "24h,2h"  # reminder offsets before a booking (m, h, d); empty: none
    message_max_attempts: int = Field(5, ge=1, le=50)  # sends tried before a text is `failed`
    message_retry_s: float = Field(30.0, gt=0)  # first retry's wait; doubles each time (max 1 h)
    message_lease_s: float = Field(60.0, gt=0)  # a text being sent is retried after this long
    message_poll_s: float = Field(1.0, gt=0)  # each process looks for due texts this often
    manage_link_secret: SecretStr | None = None  # signs /r/<token>; unset: a key kept in the DB
    restaurant_phone: str | None = None  # told to guests who text HELP (default: SMS_FROM)

    # --- phone calls over SIP (OpenAI's SIP interface; the sideband carries no audio) ---
    openai_webhook_secret: SecretStr | None = None  # whsec_...: set turns POST /openai/webhook on
    sip_request_timeout_s: float = Field(10.0, gt=0)  # one accept/reject/refer/hangup request
    sip_playout_timeout_s: float = Field(15.0, gt=0)  # last words' playout awaited at most this

    @field_validator("restaurant_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return known_timezone(value)

    @field_validator("data_dir")
    @classmethod
    def _inside_project(cls, value: Path) -> Path:
        return value if value.is_absolute() else PROJECT_ROOT / value

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r}")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _valid_origins(cls, value: str) -> str:
        _parse_origins(value)
        return value

    @field_validator("public_base_url")
    @classmethod
    def _valid_base_url(cls, value: str | None) -> str | None:
        if value is not None and clients.normalize_origin(_origin_part(value)) is None:
            raise ValueError(f"PUBLIC_BASE_URL must be an http(s) URL, not {value!r}")
        return value

    @field_validator("reminders_before")
    @classmethod
    def _valid_reminders(cls, value: str) -> str:
        _parse_offsets(value)
        return value

    @field_validator("sms_from")
    @classmethod
    def _valid_sender(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\+[1-9]\d{6,14}|MG[0-9a-fA-F]{32}", value):
            raise ValueError(f"SMS_FROM must be an E.164 number or an MG... SID, not {value!r}")
        return value

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> Settings:
        if self.message_lease_s <= self.twilio_timeout_s:
            raise ValueError("MESSAGE_LEASE_S must be longer than TWILIO_TIMEOUT_S")
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        try:
            clients.parse_networks(value)
        except ValueError as exc:
            raise ValueError(f"TRUSTED_PROXIES: {exc}") from None
        return value

    # Derived values are plain properties over cached parsers, never cached_property: a
    # model_copy(update=...) copies an instance's cached values and would keep stale ones.

    @property
    def origins(self) -> frozenset[str]:
        """ALLOWED_ORIGINS, normalised (`*` stays `*`)."""
        return _parse_origins(self.allowed_origins)

    @property
    def any_origin(self) -> bool:
        return "*" in self.origins

    @property
    def public_origin(self) -> str | None:
        """PUBLIC_BASE_URL's scheme://host[:port], when set."""
        if self.public_base_url is None:
            return None
        return clients.normalize_origin(_origin_part(self.public_base_url))

    @property
    def reminder_offsets(self) -> tuple[dt.timedelta, ...]:
        """REMINDERS_BEFORE as durations, longest first, without repeats."""
        return _parse_offsets(self.reminders_before)

    @property
    def sms_configured(self) -> bool:
        """Whether texts can be sent: the account, its token and a sender are all set."""
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.sms_from)

    @property
    def proxies(self) -> clients.Networks:
        return clients.parse_networks(self.trusted_proxies)

    @cached_property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.restaurant_timezone)

    def today(self) -> dt.date:
        """Today's date in `RESTAURANT_TIMEZONE`: the day of the call records and the budget.
        Bookings are judged on the profile's timezone instead (`server.book.restaurant.today`),
        which this setting only seeds."""
        return dt.datetime.now(self.timezone).date()
