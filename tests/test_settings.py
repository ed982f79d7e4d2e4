"""Settings: one typed object, every variable documented in .env.example."""

import re

import pytest
from pydantic import ValidationError

from server.settings import PROJECT_ROOT, Settings


def test_env_example_documents_every_setting():
    text = (PROJECT_ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_env_example_values_parse():
    values = {}
    for line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]+)=(\S*)", line)
        if match:
            values[match.group(1).lower()] = match.group(2)
    settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
    assert settings.restaurant_timezone == "Asia/Singapore"


@pytest.mark.parametrize(
    ("field", "value"),
    [("restaurant_timezone", "Mars/Olympus"), ("default_region", "XX"), ("port", 70000)],
)
def test_bad_values_are_refused_at_start(field, value):
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **{field: value})  # type: ignore[arg-type]


def test_relative_data_dir_is_inside_the_project():
    assert Settings(_env_file=None, data_dir="x").data_dir == PROJECT_ROOT / "x"  # type: ignore[call-arg]


def test_origins_are_normalised():
    s = Settings(_env_file=None, allowed_origins=" https://a.example/, http://b:8000 ")  # type: ignore[call-arg]
    assert s.origins == frozenset({"https://a.example", "http://b:8000"})
