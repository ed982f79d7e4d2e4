"""The pure decisions behind the safety defaults, without sockets or time passing.

Client addresses and origins (`server.clients`), the Origin rule (`server.access`), the
in-memory limiters with an injected clock (`server.ratelimit`), the security headers and the
start-up warnings. The same rules end to end, over real sockets: `test_safety.py`.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from server.access import clients
from server.access.credentials import origin_allowed
from server.access.ratelimit import CallLimiter, RequestLimiter
from server.settings import Settings
from server.startup_warnings import startup_warnings
from server.web.http_guard import security_headers


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


# --- client address ---------------------------------------------------------------------------

PROXIES = clients.parse_networks("10.0.0.0/8, 2001:db8:ffff::/48")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # No trusted proxy in between: the peer, whatever the header says.
        ("198.51.100.7", ["203.0.113.9"], "198.51.100.7"),
        ("198.51.100.7", [], "198.51.100.7"),
        # A trusted proxy: the entry it appended (the rightmost), not what the client wrote.
        ("10.0.0.2", ["203.0.113.9"], "203.0.113.9"),
        ("10.0.0.2", ["1.1.1.1, 203.0.113.9"], "203.0.113.9"),
        # Two trusted proxies: skip the inner one's address.
        ("10.0.0.2", ["1.1.1.1, 203.0.113.9, 10.0.0.3"], "203.0.113.9"),
        ("10.0.0.2", ["1.1.1.1", "203.0.113.9, 10.0.0.3"], "203.0.113.9"),  # two header lines
        # Ports and brackets as some proxies write them.
        ("10.0.0.2", ["203.0.113.9:5555"], "203.0.113.9"),
        ("10.0.0.2", ["[2001:db8:1:2::7]:443"], "2001:db8:1:2::/64"),
        # A trusted proxy with no header, or junk in it: the proxy is the best we know.
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ["unknown"], "10.0.0.2"),
        ("10.0.0.2", ["203.0.113.9, unknown"], "10.0.0.2"),
        # IPv6 by /64; IPv4-mapped IPv6 as IPv4; no peer at all.
        ("2001:db8:1:2:aaaa::1", [], "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", [], "198.51.100.7"),
        (None, ["203.0.113.9"], clients.UNKNOWN_CLIENT),
    ],
)
def test_client_address(peer, forwarded_for, client):
    assert clients.client_address(peer, forwarded_for, PROXIES) == client


def test_a_forged_header_cannot_make_two_clients_of_one():
    untrusted = [clients.client_address("198.51.100.7", [f"203.0.113.{i}"], ()) for i in range(5)]
    assert set(untrusted) == {"198.51.100.7"}
    behind = [
        clients.client_address("10.0.0.2", [f"203.0.113.{i}, 198.51.100.7"], PROXIES)
        for i in range(5)
    ]
    assert set(behind) == {"198.51.100.7"}


# --- origins ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("HTTPS://Book.Example.com:443", "https://book.example.com"),
        ("http://[::1]:80", "http://[::1]"),
        ("wss://book.example.com", "https://book.example.com"),
        ("null", None),
        ("https://book.example.com/path", None),
        ("https://user@book.example.com", None),
        ("ftp://book.example.com", None),
        ("https://a;script-src *", None),
        ("http://x:99999", None),
    ],
)
def test_normalize_origin(text, origin):
    assert clients.normalize_origin(text) == origin


OWN = "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("origin", "allowed", "ok"),
    [
        (None, frozenset(), True),  # not a browser: the token decides
        ("http://127.0.0.1:8000", frozenset(), True),
        ("http://127.0.0.1:8000/", frozenset(), True),
        ("https://evil.example", frozenset(), False),
        ("http://127.0.0.1:8001", frozenset(), False),  # another port is another origin
        ("http://localhost:8000", frozenset(), False),
        ("null", frozenset(), False),
        ("https://book.example.com", frozenset({"https://book.example.com"}), True),
        ("http://127.0.0.1:8000", frozenset({"https://book.example.com"}), True),
        ("https://evil.example", frozenset({"https://book.example.com"}), False),
        ("https://evil.example", frozenset({"*"}), True),
        ("null", frozenset({"*"}), True),
    ],
)
def test_origin_rule(origin, allowed, ok):
    assert origin_allowed(origin, OWN, allowed) is ok


def test_no_own_origin_known_means_only_listed_origins():
    assert not origin_allowed("http://127.0.0.1:8000", None, frozenset())
    assert origin_allowed("https://a.example", None, frozenset({"https://a.example"}))


@pytest.mark.parametrize(
    ("peer", "headers", "origin"),
    [
        ("198.51.100.7", {}, "http://book.example.com:8000"),
        # Forwarded headers from an untrusted peer change nothing.
        (
            "198.51.100.7",
            {"x-forwarded-proto": "https", "x-forwarded-host": "evil.example"},
            "http://book.example.com:8000",
        ),
        # From a trusted proxy they are the truth; with several, the nearest proxy's word.
        (
            "10.0.0.2",
            {"x-forwarded-proto": "https", "x-forwarded-host": "book.example.com"},
            "https://book.example.com",
        ),
        ("10.0.0.2", {"x-forwarded-proto": "http, https"}, "https://book.example.com:8000"),
    ],
)
def test_request_origin(peer, headers, origin):
    assert clients.request_origin("ws", "book.example.com:8000", peer, headers, PROXIES) == origin


def test_scope_readers_use_public_base_url_first():
    scope = {
        "type": "websocket",
        "scheme": "ws",
        "client": ("10.0.0.2", 4000),
        "headers": [
            (b"host", b"internal:8000"),
            (b"x-forwarded-for", b"203.0.113.9"),
            (b"origin", b"https://book.example.com"),
        ],
    }
    assert clients.scope_client(scope, PROXIES) == "203.0.113.9"
    assert clients.scope_client(scope, ()) == "10.0.0.2"
    assert clients.scope_own_origin(scope, (), None) == "http://internal:8000"
    assert clients.scope_own_origin(scope, (), "https://book.example.com") == (
        "https://book.example.com"
    )


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("allowed_origins", "https://ok.example, not an origin"),
        ("allowed_origins", "https://ok.example/path"),
        ("trusted_proxies", "10.0.0.0/8, proxy.example"),
        ("public_base_url", "book.example.com"),
        ("max_calls_per_client", -1),
    ],
)
def test_bad_safety_settings_are_refused_at_start(field, value):
    with pytest.raises(ValidationError):
        settings(**{field: value})


def test_derived_settings_follow_a_copy():
    """model_copy(update=...) must not keep values derived from the original."""
    base = settings()
    assert base.origins == frozenset() and base.proxies == () and base.public_origin is None
    copy = base.model_copy(
        update={
            "allowed_origins": "https://a.example",
            "trusted_proxies": "10.0.0.1",
            "public_base_url": "https://Book.example.com/app",
        }
    )
    assert copy.origins == frozenset({"https://a.example"})
    assert [str(n) for n in copy.proxies] == ["10.0.0.1/32"]
    assert copy.public_origin == "https://book.example.com"


def test_the_defaults_are_the_safe_ones():
    defaults = settings()
    assert defaults.max_calls_per_client == 5
    assert defaults.max_new_calls_per_min == 20
    assert defaults.max_requests_per_min == 120
    assert defaults.origins == frozenset() and not defaults.any_origin
    assert defaults.proxies == ()


# --- REST limiter -----------------------------------------------------------------------------


def test_request_limiter_allows_a_burst_then_one_per_share_of_the_minute():
    clock = FakeClock()
    limiter = RequestLimiter(per_min=3, clock=clock)
    assert [limiter.hit("a") for _ in range(3)] == [None, None, None]
    refused = limiter.hit("a")
    assert refused is not None and refused.limit == "too_many_requests"
    assert refused.retry_after_s == pytest.approx(20.0)
    assert refused.retry_after_header == "20"
    assert limiter.hit("b") is None  # another address has its own allowance
    clock.now += 19.9
    assert limiter.hit("a") is not None  # refusals are not counted: still the same wait, less
    clock.now += 0.1
    assert limiter.hit("a") is None
    assert limiter.hit("a") is not None


def test_request_limiter_retry_after_is_whole_seconds_rounded_up():
    clock = FakeClock()
    limiter = RequestLimiter(per_min=7, clock=clock)  # 60/7 = 8.57 s per request
    for _ in range(7):
        assert limiter.hit("a") is None
    refused = limiter.hit("a")
    assert refused is not None and refused.retry_after_header == "9"


def test_request_limiter_forgets_addresses_that_owe_nothing():
    clock = FakeClock()
    limiter = RequestLimiter(per_min=60, clock=clock)
    for i in range(1000):
        limiter.hit(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 1000
    clock.now += 1.0  # each owed one second
    limiter.hit("192.0.2.1")
    assert len(limiter) == 1


def test_request_limiter_memory_is_capped():
    clock = FakeClock()
    limiter = RequestLimiter(per_min=1, clock=clock, max_tracked=100)
    for i in range(500):
        limiter.hit(str(i))
    assert len(limiter) <= 101


def test_request_limiter_zero_means_no_limit():
    limiter = RequestLimiter(per_min=0, clock=FakeClock())
    assert all(limiter.hit("a") is None for _ in range(10_000))
    assert len(limiter) == 0


# --- call limiter -----------------------------------------------------------------------------


def test_call_limiter_caps_concurrent_calls_and_frees_a_place_when_one_ends():
    limiter = CallLimiter(max_live=2, per_min=0, clock=FakeClock())
    assert limiter.try_start("a") is None
    assert limiter.try_start("a") is None
    refused = limiter.try_start("a")
    assert refused is not None and refused.limit == "too_many_calls"
    assert limiter.try_start("b") is None
    limiter.end("a")
    assert limiter.try_start("a") is None


def test_call_limiter_caps_new_calls_per_minute_even_when_they_ended():
    clock = FakeClock()
    limiter = CallLimiter(max_live=0, per_min=2, clock=clock)
    for _ in range(2):
        assert limiter.try_start("a") is None
        limiter.end("a")
    clock.now += 15.0
    refused = limiter.try_start("a")
    assert refused is not None and refused.limit == "too_many_new_calls"
    assert refused.retry_after_s == pytest.approx(45.0)
    clock.now += 45.0
    assert limiter.try_start("a") is None


def test_call_limiter_undo_takes_back_the_place_and_the_start():
    clock = FakeClock()
    limiter = CallLimiter(max_live=1, per_min=1, clock=clock)
    assert limiter.try_start("a") is None
    limiter.undo("a")  # refused later on (by the shared count, or the endpoint)
    assert limiter.tracked() == 0
    assert limiter.try_start("a") is None  # neither the place nor the minute's allowance spent
    assert limiter.try_start("a") is not None


def test_call_limiter_forgets_idle_addresses():
    clock = FakeClock()
    limiter = CallLimiter(max_live=5, per_min=20, clock=clock)
    for i in range(100):
        assert limiter.try_start(str(i)) is None
        limiter.end(str(i))
    assert limiter.tracked() == 100
    clock.now += 61.0
    assert limiter.try_start("new") is None
    assert limiter.tracked() == 1


def test_call_limiter_keeps_an_address_while_its_call_lasts():
    clock = FakeClock()
    limiter = CallLimiter(max_live=1, per_min=20, clock=clock)
    assert limiter.try_start("a") is None
    clock.now += 3600.0
    assert limiter.try_start("b") is None
    assert limiter.try_start("a") is not None  # still on its first call
    limiter.end("a")
    assert limiter.try_start("a") is None


# --- security headers -------------------------------------------------------------------------


def test_security_headers_allow_only_the_servers_own_sources():
    headers = dict(security_headers("https://book.example.com", frozenset()))
    policy = headers[b"content-security-policy"].decode()
    directives = dict(d.split(" ", 1) for d in policy.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["worker-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self' wss://book.example.com"
    assert directives["frame-ancestors"] == "'self'"
    assert "unsafe" not in policy
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"referrer-policy"] == b"no-referrer"


def test_frame_ancestors_follow_allowed_origins():
    listed = dict(security_headers(None, frozenset({"https://b.example", "https://a.example"})))
    policy = listed[b"content-security-policy"].decode()
    assert "frame-ancestors 'self' https://a.example https://b.example" in policy
    assert "connect-src 'self';" in policy
    opened = dict(security_headers(None, frozenset({"*"})))
    assert b"frame-ancestors *" in opened[b"content-security-policy"]


# --- start-up warnings ------------------------------------------------------------------------


def phone_ready(**values: object) -> Settings:
    """Settings with TWILIO_AUTH_TOKEN set, so only the internet-facing warnings remain."""
    return settings(twilio_auth_token=SecretStr("twilio"), **values)


def test_no_warnings_on_loopback():
    assert startup_warnings(phone_ready(host="127.0.0.1")) == []
    assert startup_warnings(phone_ready(host="::1")) == []
    assert startup_warnings(phone_ready(host="localhost", allowed_origins="*")) == []


def test_one_warning_per_unsafe_variable_beyond_loopback():
    lines = startup_warnings(phone_ready(host="0.0.0.0", allowed_origins="*"))
    assert len(lines) == 3
    assert [line.split(" ", 1)[0] for line in lines] == [
        "ACCESS_TOKEN",
        "STAFF_TOKEN",
        "ALLOWED_ORIGINS=*",
    ]
    assert all("0.0.0.0" in line for line in lines)


def test_warnings_go_as_each_variable_is_set():
    tokens = {"access_token": SecretStr("a"), "staff_token": SecretStr("s")}
    assert startup_warnings(phone_ready(host="0.0.0.0", **tokens)) == []
    only_staff = startup_warnings(phone_ready(host="0.0.0.0", access_token=SecretStr("a")))
    assert len(only_staff) == 1 and only_staff[0].startswith("STAFF_TOKEN")


def test_a_public_base_url_counts_as_exposed_even_on_loopback():
    """Behind a proxy on the same machine the server listens on loopback but is public."""
    lines = startup_warnings(
        phone_ready(host="127.0.0.1", public_base_url="https://book.example.com")
    )
    assert [line.split(" ", 1)[0] for line in lines] == ["ACCESS_TOKEN", "STAFF_TOKEN"]


def test_an_unset_twilio_token_is_warned_about_even_on_loopback():
    lines = startup_warnings(settings(host="127.0.0.1"))
    assert len(lines) == 1 and lines[0].startswith("TWILIO_AUTH_TOKEN is not set")
