"""Configuration: a bad file stops start-up with a message naming file, field and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.config import load_settings, resolve_config_path
from governance.errors import ConfigError

GOOD = """
database_url: sqlite:///./x.db
upstreams:
  - name: vllm-a
    base_url: "http://10.0.0.5:8000/v1/"
    destination: internal
    api_key_env: VLLM_KEY
models:
  - name: chat-default
    deployments: [{upstream: vllm-a, model: meta-llama/Llama-3.1-8B-Instruct}]
spend:
  currency: EUR
  prices_file: prices.yaml
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tollhouse.yaml"
    path.write_text(text)
    return path


def test_valid_file_with_environment_overrides(tmp_path: Path) -> None:
    env = {"VLLM_KEY": "sk-fake", "TOLLHOUSE_DATABASE_URL": "postgresql://u@h/db"}
    settings = load_settings(write(tmp_path, GOOD), env)
    assert settings.database_url == "postgresql://u@h/db"
    assert settings.upstreams[0].base_url == "http://10.0.0.5:8000/v1"
    assert settings.upstream_api_keys["vllm-a"].get_secret_value() == "sk-fake"
    assert "sk-fake" not in repr(settings)
    assert (settings.spend.currency, settings.spend.prices_file) == ("EUR", "prices.yaml")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("destination: internal", "destination: elsewhere"), "upstreams[0].destination"),
        (("upstream: vllm-a", "upstream: vllm-b"), "unknown upstream 'vllm-b'"),
        (("currency: EUR", "currency: euro"), "spend.currency"),
        (("database_url:", "databse_url:"), "databse_url: Extra inputs are not permitted"),
    ],
)
def test_invalid_files_name_the_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {"VLLM_KEY": "x"})
    assert str(path) in caught.value.message
    assert expected in caught.value.message


def test_missing_secret_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="VLLM_KEY is not set"):
        load_settings(write(tmp_path, GOOD), {})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.yaml", {})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "models: [unclosed"), {})
    with pytest.raises(ConfigError, match="secrets never go in the file"):
        load_settings(write(tmp_path, "upstream_api_keys: {a: b}"), {})


def test_config_path_resolution() -> None:
    assert resolve_config_path("a.yaml", {"TOLLHOUSE_CONFIG": "b.yaml"}) == Path("a.yaml")
    assert resolve_config_path(None, {"TOLLHOUSE_CONFIG": "b.yaml"}) == Path("b.yaml")
    assert resolve_config_path(None, {}) == Path("tollhouse.yaml")
