"""All configuration in one typed object, read from the environment (and `.env`).

Every variable is documented in `.env.example`; nothing else in the code reads `os.environ`.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # --- HTTP server ---
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"

    # --- who may connect ---
    access_token: SecretStr | None = None  # set: required on /v1/realtime and /api/*
    allowed_origins: str = ""  # comma-separated; set: a browser's Origin must be one of them
    staff_token: SecretStr | None = None  # set: the staff routes need it; unset: loopback only

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

    # --- realtime model ---
    openai_api_key: SecretStr | None = None  # unset: the offline model runs inside the server
    openai_base_url: str | None = None  # as the openai SDK reads it; points tests at a local model
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

    @field_validator("restaurant_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

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

    @cached_property
    def origins(self) -> frozenset[str]:
        listed = (origin.strip().rstrip("/") for origin in self.allowed_origins.split(","))
        return frozenset(origin for origin in listed if origin)

    @cached_property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.restaurant_timezone)

    def today(self) -> dt.date:
        """Today's date where the restaurant is: what "not in the past" means."""
        return dt.datetime.now(self.timezone).date()
