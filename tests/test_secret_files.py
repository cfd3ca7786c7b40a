"""Secrets from files: `SR_..._FILE` variables and `<secret>_file` keys in TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import load_settings, secret_env_files

SECRET = "s3cret-from-a-file"


def _file(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    path.chmod(0o600)
    return str(path)


def test_every_reachable_secret_has_a_file_variable() -> None:
    names = secret_env_files()
    assert names["SR_REDIS__URL_FILE"] == ("redis", "url")
    assert names["SR_REDIS_URL_FILE"] == ("redis", "url")
    assert names["SR_MASTODON__ACCESS_TOKEN_FILE"] == ("mastodon", "access_token")


@pytest.mark.parametrize("var", ["SR_REDIS__URL_FILE", "SR_REDIS_URL_FILE"])
def test_redis_url_from_a_file(tmp_path: Path, var: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:6379/0"
    monkeypatch.setenv(var, _file(tmp_path, "url", url + "\n"))
    monkeypatch.setenv("SR_REDIS__PREFIX", "p:")
    settings = load_settings()
    assert settings.redis.url is not None
    assert settings.redis.url.get_secret_value() == url  # the trailing newline is dropped
    assert settings.redis.prefix == "p:"  # other variables of the section still apply
    assert SECRET not in repr(settings) and SECRET not in str(settings.redacted())


def test_mastodon_token_from_a_file(tmp_path: Path) -> None:
    env = {"SR_MASTODON__ACCESS_TOKEN_FILE": _file(tmp_path, "token", SECRET)}
    token = load_settings(environ=env).mastodon.access_token
    assert token is not None and token.get_secret_value() == SECRET


def test_the_file_ranks_as_its_variable(tmp_path: Path) -> None:
    cfg = tmp_path / "sr.toml"
    cfg.write_text('[redis]\nurl = "redis://toml:6379/0"\n')
    env = {"SR_REDIS__URL_FILE": _file(tmp_path, "url", "redis://file:6379/0")}
    from_file = load_settings(cfg, environ=env).redis.url
    assert from_file is not None and from_file.get_secret_value() == "redis://file:6379/0"
    flag = load_settings(cfg, {"redis": {"url": "redis://flag:6379/0"}}, environ=env).redis.url
    assert flag is not None and flag.get_secret_value() == "redis://flag:6379/0"


@pytest.mark.parametrize(
    "env",
    [
        {"SR_REDIS__URL": "redis://a:6379/0"},
        {"SR_REDIS_URL": "redis://a:6379/0"},
        {"SR_REDIS_URL_FILE": "x"},
    ],
)
def test_two_sources_of_one_secret_are_an_error(tmp_path: Path, env: dict[str, str]) -> None:
    env = {**env, "SR_REDIS__URL_FILE": _file(tmp_path, "url", "redis://b:6379/0")}
    with pytest.raises(ValueError, match="both set"):
        load_settings(environ=env)


def test_unreadable_or_empty_files_are_named_not_shown(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"SR_REDIS__URL_FILE: cannot read .*/missing"):
        load_settings(environ={"SR_REDIS__URL_FILE": str(tmp_path / "missing")})
    with pytest.raises(ValueError, match="is empty"):
        load_settings(environ={"SR_REDIS__URL_FILE": _file(tmp_path, "empty", "\n")})


def test_file_variables_of_non_secrets_are_unknown(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown setting in environment: SR_REDIS__PREFIX_FILE"):
        load_settings(environ={"SR_REDIS__PREFIX_FILE": _file(tmp_path, "p", "x:")})


def test_toml_secret_file_keys_at_any_depth(tmp_path: Path) -> None:
    slack = _file(tmp_path, "slack", "https://hooks.example/T0/B0/" + SECRET + "\n")
    token = _file(tmp_path, "token", SECRET)
    cfg = tmp_path / "sr.toml"
    cfg.write_text(
        f'[mastodon]\naccess_token_file = "{token}"\n'
        "[[notify.destinations]]\n"
        f'name = "oncall"\ntype = "slack"\nurl_file = "{slack}"\n'
    )
    settings = load_settings(cfg, environ={})
    assert settings.mastodon.access_token is not None
    assert settings.mastodon.access_token.get_secret_value() == SECRET
    assert settings.notify.destinations[0].url.get_secret_value().endswith(SECRET)
    cfg.write_text(f'[mastodon]\naccess_token = "x"\naccess_token_file = "{token}"\n')
    with pytest.raises(ValueError, match="both set"):
        load_settings(cfg, environ={})
    cfg.write_text('[redis]\nprefix_file = "/etc/hostname"\n')
    with pytest.raises(ValueError, match="prefix_file"):
        load_settings(cfg, environ={})


def test_secret_file_keys_in_a_list_of_sections_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`SR_NOTIFY__DESTINATIONS` as JSON takes `url_file` as the TOML does."""
    slack = _file(tmp_path, "slack", "https://hooks.example/T0/B0/" + SECRET + "\n")
    monkeypatch.setenv(
        "SR_NOTIFY__DESTINATIONS", f'[{{"name": "oncall", "type": "slack", "url_file": "{slack}"}}]'
    )
    settings = load_settings()
    assert settings.notify.destinations[0].url.get_secret_value().endswith(SECRET)
    monkeypatch.setenv(
        "SR_NOTIFY__DESTINATIONS", '[{"name": "a", "type": "slack", "url_file": "/nonexistent"}]'
    )
    with pytest.raises(ValueError, match=r"notify\.destinations\[0\]\.url_file"):
        load_settings()
