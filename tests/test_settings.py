"""Settings: TOML file, SR_ environment, CLI overrides, unknown keys, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config.settings import DEFAULT_TOML, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith("SR_"):
            monkeypatch.delenv(key)


def test_default_toml_spells_out_the_defaults() -> None:
    assert load_settings(DEFAULT_TOML) == Settings()


def test_priority_overrides_env_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "sr.toml"
    cfg.write_text('[rules]\ncooldown_seconds = 100\nmin_posts = 3\n[redis]\nprefix = "toml:"\n')
    monkeypatch.setenv("SR_RULES__COOLDOWN_SECONDS", "200")
    s = load_settings(cfg, {"redis": {"prefix": "cli:"}, "input": None})
    assert s.rules.cooldown_seconds == 200  # env beats TOML
    assert s.rules.min_posts == 3  # TOML beats defaults
    assert s.redis.prefix == "cli:"  # flags beat everything
    assert s.input == "jsonl:-"  # an absent flag changes nothing


def test_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "sr.toml"
    cfg.write_text('brand_accounts = ["AcmeAir"]\n')
    monkeypatch.setenv("SR_CONFIG", str(cfg))
    assert load_settings().brand_accounts == ["AcmeAir"]


@pytest.mark.parametrize(
    "toml",
    [
        "colour = 1\n",
        "[rules]\ncooldown = 5\n",
        "[nosuchsection]\nx = 1\n",
        "[rules]\nmin_posts = 0\n",
    ],
)
def test_unknown_or_invalid_toml_keys_are_errors(tmp_path: Path, toml: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(ValidationError):
        load_settings(cfg)


@pytest.mark.parametrize("key", ["SR_COLOUR", "SR_RULES__COOLDOWN", "SR_NOPE__X"])
def test_unknown_env_keys_are_errors(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv(key, "1")
    with pytest.raises(ValueError, match="unknown setting"):
        load_settings()


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "absent.toml")


def test_redis_url_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SR_REDIS__URL", "redis://:hunter2@db:6379/0")
    s = load_settings()
    assert s.redis.url is not None
    assert s.redis.url.get_secret_value().endswith("@db:6379/0")
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.redacted())


def test_with_redis_url() -> None:
    s = Settings().with_redis_url("redis://127.0.0.1:7000/0")
    assert s.redis.url is not None and s.redis.url.get_secret_value() == "redis://127.0.0.1:7000/0"
    assert s.redis.prefix == "sr:"


def test_inconsistent_thresholds_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Settings(rules={"unhappy_mean_compound": -0.7, "critical_mean_compound": -0.5})


def test_sr_redis_url_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "sr.toml"
    cfg.write_text('[redis]\nurl = "redis://toml:6379/0"\nprefix = "t:"\n')
    monkeypatch.setenv("SR_REDIS_URL", "redis://alias:6379/0")
    s = load_settings(cfg)
    assert s.redis.url is not None and s.redis.url.get_secret_value() == "redis://alias:6379/0"
    assert s.redis.prefix == "t:"  # the rest of the section still comes from the file
    flag = load_settings(cfg, {"redis": {"url": "redis://flag:6379/0"}})
    assert flag.redis.url is not None
    assert flag.redis.url.get_secret_value() == "redis://flag:6379/0"
    monkeypatch.setenv("SR_REDIS__URL", "redis://nested:6379/0")
    nested = load_settings(cfg)
    assert nested.redis.url is not None
    assert nested.redis.url.get_secret_value() == "redis://nested:6379/0"
