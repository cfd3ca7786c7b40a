"""One settings object for the whole pipeline, built once at the edge and passed down.

Sources, highest priority first: explicit overrides (CLI flags), `SR_` environment variables
(nested keys with `__`, e.g. `SR_RULES__COOLDOWN_SECONDS=600`), a TOML file (`--config FILE` or
`SR_CONFIG`), then the defaults of the section models (`config/runtime.py`, `config/detection.py`,
`config/feeds.py`, `config/listen.py`, `config/notify.py`; all written out in
`config/default.toml`).
Unknown keys are errors everywhere, including unknown `SR_` environment variables.

Secrets (every `SecretStr` setting) may also be read from a file, so they stay out of the
environment of the process tree and out of the config file: `SR_REDIS__URL_FILE=/run/secrets/x`
(any secret: the variable's name plus `_FILE`; `SR_REDIS_URL_FILE` too), or in TOML the key plus
`_file` (`url_file = "/run/secrets/slack"`, also inside `[[notify.destinations]]`). The file's
content, less a trailing newline, is the value; giving both forms of one setting is an error.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from config.detection import InfluenceSettings, RuleSettings, WindowSettings
from config.feeds import JetstreamSettings, MastodonSettings
from config.listen import ListenSettings, SentimentSettings
from config.notify import NotifySettings, RouteSettings
from config.runtime import FlowSettings, RedisSettings
from operators.brands import BrandAccounts
from operators.events import describe_validation_error

ENV_PREFIX = "SR_"
CONFIG_ENV = "SR_CONFIG"
REDIS_URL_ENV = "SR_REDIS_URL"
"""A short alias of `SR_REDIS__URL`, the variable deployments set most."""
FILE_SUFFIX = "_FILE"
"""`SR_X__Y_FILE`: the secret setting `x.y` is read from the file this variable names."""
DEFAULT_TOML = Path(__file__).with_name("default.toml")

_config_file: ContextVar[Path | None] = ContextVar("sense_respond_config_file", default=None)


class Settings(BaseSettings):
    """All of sense-respond's settings."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
        # Errors name the key and the reason but never echo the value: it may be a secret
        # (a Slack webhook URL, a routing key, a password in a Redis URL).
        hide_input_in_errors=True,
    )

    input: str = Field(
        default="jsonl:-", description="jsonl:PATH | jsonl:- | redis:STREAM_KEY | ..."
    )
    alert_source: str = Field(default="urn:sense-respond", description="CloudEvents `source`.")
    brand_accounts: list[str] = Field(
        default_factory=list,
        description="`handle` (every platform), `platform:handle`, `platform:id` or a bare "
        "Bluesky `did:plc:…`; never alerted on, their interactions are not reach.",
    )
    redis: RedisSettings = Field(default_factory=RedisSettings)
    window: WindowSettings = Field(default_factory=WindowSettings)
    influence: InfluenceSettings = Field(default_factory=InfluenceSettings)
    rules: RuleSettings = Field(default_factory=RuleSettings)
    flow: FlowSettings = Field(default_factory=FlowSettings)
    jetstream: JetstreamSettings = Field(default_factory=JetstreamSettings)
    mastodon: MastodonSettings = Field(default_factory=MastodonSettings)
    listen: ListenSettings | None = Field(
        default=None, description="Listening rules; unset: brand mentions decide (or every post)."
    )
    sentiment: SentimentSettings = Field(default_factory=SentimentSettings)
    routes: list[RouteSettings] = Field(default_factory=list)
    notify: NotifySettings = Field(default_factory=NotifySettings)

    @field_validator("brand_accounts")
    @classmethod
    def _brand_entries(cls, value: list[str]) -> list[str]:
        BrandAccounts.parse(value)  # an ambiguous entry is an error at start, with a hint
        return value

    @model_validator(mode="after")
    def _sane(self) -> Settings:
        if self.rules.critical_mean_compound > self.rules.unhappy_mean_compound:
            raise ValueError("rules.critical_mean_compound must be <= rules.unhappy_mean_compound")
        listen = self.listen
        if (
            listen is not None
            and not listen.keywords
            and not (listen.brand_mentions and self.brand_accounts)
        ):
            raise ValueError(
                "[listen] matches nothing: set listen.keywords, or brand_accounts with "
                "listen.brand_mentions = true"
            )
        if self.rules.resolve_mean_compound <= self.rules.unhappy_mean_compound:
            # Otherwise an incident would resolve while the customer is still unhappy, and flap.
            raise ValueError("rules.resolve_mean_compound must be > rules.unhappy_mean_compound")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _WithoutSecretFileKeys(settings_cls, env_settings),
        ]
        config_file = _config_file.get()
        if config_file is not None:
            sources.append(_TomlWithSecretFiles(settings_cls, toml_file=config_file))
        return tuple(sources)

    def with_redis_url(self, url: str) -> Settings:
        """A copy with the Redis URL resolved (e.g. to the embedded server's)."""
        return self.model_copy(
            update={"redis": self.redis.model_copy(update={"url": SecretStr(url)})}
        )

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data, secrets masked: safe to log."""
        return self.model_dump(mode="json")


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The section model of a field typed `Section` or `Section | None` (e.g. `listen`)."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


# ---------------------------------------------------------------------------------------------
# secrets from files


def _annotation_parts(annotation: Any) -> Iterator[Any]:
    """The types inside an annotation: `X | None`, `list[X]`, `Annotated[X, ...]` give X."""
    origin = typing.get_origin(annotation)
    if origin is None:
        yield annotation
        return
    if origin is typing.Annotated:
        yield from _annotation_parts(typing.get_args(annotation)[0])
        return
    for arg in typing.get_args(annotation):
        yield from _annotation_parts(arg)


def _is_secret(annotation: Any) -> bool:
    return any(part is SecretStr for part in _annotation_parts(annotation))


def _models(annotation: Any) -> list[type[BaseModel]]:
    return [
        part
        for part in _annotation_parts(annotation)
        if isinstance(part, type) and issubclass(part, BaseModel)
    ]


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    return origin in (list, tuple, set, frozenset)


def secret_env_files(
    model: type[BaseModel] = BaseModel, prefix: tuple[str, ...] = ()
) -> dict[str, tuple[str, ...]]:
    """`SR_..._FILE` variable names of the secret settings reachable without a list, and the
    path of each setting: `{"SR_REDIS__URL_FILE": ("redis", "url"), ...}`."""
    model = Settings if model is BaseModel else model
    out: dict[str, tuple[str, ...]] = {}
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        if _is_secret(field.annotation):
            out[ENV_PREFIX + "__".join(p.upper() for p in path) + FILE_SUFFIX] = path
        elif not _is_list(field.annotation):
            for sub in _models(field.annotation):
                out.update(secret_env_files(sub, path))
    if model is Settings:
        out[REDIS_URL_ENV + FILE_SUFFIX] = ("redis", "url")
    return out


def read_secret_file(path: str | Path, what: str) -> str:
    """A secret's value from its file, less one trailing newline (never echoed in errors)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"{what}: cannot read the secret file {path}: {reason}") from None
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise ValueError(f"{what}: the secret file {path} is empty")
    return value


def resolve_secret_files(
    model: type[BaseModel], data: dict[str, Any], where: str = ""
) -> dict[str, Any]:
    """`data` (one model's raw settings) with every `<secret>_file` key replaced by `<secret>`
    read from that file, at any depth, lists of sections included."""
    out = dict(data)
    fields = model.model_fields
    for key, value in data.items():
        name = key.removesuffix("_file")
        if key != name and name in fields and _is_secret(fields[name].annotation):
            if name in data:
                raise ValueError(f"{where}{name} and {where}{key} are both set: give one")
            out[name] = read_secret_file(value, f"{where}{key}")
            del out[key]
        elif key in fields:
            sub_models = _models(fields[key].annotation)
            if len(sub_models) != 1:
                continue
            sub = sub_models[0]
            if isinstance(value, dict):
                out[key] = resolve_secret_files(sub, value, f"{where}{key}.")
            elif isinstance(value, list):
                out[key] = [
                    resolve_secret_files(sub, item, f"{where}{key}[{i}].")
                    if isinstance(item, dict)
                    else item
                    for i, item in enumerate(value)
                ]
    return out


def _drop_secret_file_keys(
    model: type[BaseModel], data: dict[str, Any], where: str = ""
) -> dict[str, Any]:
    """`data` less its `<secret>_file` keys (the `SR_..._FILE` variables, which `load_settings`
    reads itself), at any depth; in a list of sections given as JSON (e.g.
    `SR_NOTIFY__DESTINATIONS`) a `<secret>_file` key is read from its file, as in TOML."""
    out = dict(data)
    fields = model.model_fields
    for key, value in data.items():
        name = key.removesuffix("_file")
        if key != name and name in fields and _is_secret(fields[name].annotation):
            del out[key]
        elif key in fields:
            sub_models = _models(fields[key].annotation)
            if len(sub_models) != 1:
                continue
            if isinstance(value, dict):
                out[key] = _drop_secret_file_keys(sub_models[0], value, f"{where}{key}.")
            elif isinstance(value, list):
                out[key] = resolve_secret_files(model, {key: value}, where)[key]
    return out


class _WithoutSecretFileKeys(PydanticBaseSettingsSource):
    """The `SR_` environment less the `SR_..._FILE` variables: `load_settings` reads those
    files itself (the environment source would take `SR_REDIS__URL_FILE` for `redis.url_file`)."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self._inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ delegates to the real source

    def __call__(self) -> dict[str, Any]:
        return _drop_secret_file_keys(Settings, self._inner())


class _TomlWithSecretFiles(TomlConfigSettingsSource):
    """The TOML file, with `<secret>_file` keys read from their files."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            data = super()._read_file(file_path)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{file_path}: not valid TOML: {exc}") from None
        return resolve_secret_files(Settings, data)


def _secrets_from_env_files(environ: Mapping[str, str]) -> dict[str, Any]:
    """Nested settings from `SR_..._FILE` variables; both a variable and its `_FILE` form (or
    the alias and the nested name) set at once is an error."""
    by_name = {key.upper(): value for key, value in environ.items()}
    found: dict[str, Any] = {}
    paths: dict[tuple[str, ...], str] = {}
    for var, path in secret_env_files().items():
        if var not in by_name:
            continue
        plain = var.removesuffix(FILE_SUFFIX)
        others = {plain, ENV_PREFIX + "__".join(p.upper() for p in path)}
        if path == ("redis", "url"):
            others |= {REDIS_URL_ENV}
        clash = sorted(name for name in others if name in by_name)
        if clash or path in paths:
            raise ValueError(
                f"{var} and {', '.join(clash or [paths[path]])} are both set: give one"
            )
        paths[path] = var
        node = found
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = read_secret_file(by_name[var], var)
    return found


def _merge_absent(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Add `extra`'s leaves to `base` where `base` has none (explicit overrides win)."""
    for key, value in extra.items():
        if isinstance(value, dict):
            node = base.get(key)
            if node is None:
                base[key] = node = {}
            if isinstance(node, dict):
                _merge_absent(node, value)
        elif base.get(key) is None:
            base[key] = value


def _check_env(environ: Mapping[str, str]) -> None:
    """Reject `SR_` variables that name no setting (a typo must not be silently ignored)."""
    files = secret_env_files()
    top = {name.upper() for name in Settings.model_fields}
    sections = {
        name.upper(): model
        for name, field in Settings.model_fields.items()
        if (model := _section_model(field.annotation)) is not None
    }
    for key in environ:
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX) or upper in (CONFIG_ENV, REDIS_URL_ENV):
            continue
        if upper in files:
            continue
        name = upper[len(ENV_PREFIX) :]
        head, _, rest = name.partition("__")
        if head not in top:
            raise ValueError(f"unknown setting in environment: {key}")
        if rest and not _names_a_setting(sections.get(head), rest.split("__")):
            raise ValueError(f"unknown setting in environment: {key}")


def _names_a_setting(section: type[BaseModel] | None, path: list[str]) -> bool:
    """Whether `path` (upper-cased names below a section) leads to a setting: each name a field
    of the model it is in, and only a section or a mapping has names below it (a deeper name
    under a plain value, `SR_REDIS__URL__FILE`, would be dropped without a word)."""
    model: Any = section
    for depth, part in enumerate(path):
        if model is None:
            return False
        fields = {name.upper(): f for name, f in model.model_fields.items()}
        field = fields.get(part)
        if field is None:
            return False
        if depth == len(path) - 1:
            return True
        if _is_mapping(field.annotation):
            return True  # a mapping's keys are the user's own (e.g. kind weights)
        model = _section_model(field.annotation)
    return True


def _is_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_mapping(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_mapping(arg) for arg in typing.get_args(annotation))
    return annotation is dict or origin in (dict, Mapping)


def describe_settings_error(exc: ValidationError) -> str:
    """A settings validation error on one line (see `describe_validation_error`)."""
    return describe_validation_error(exc, "settings", 5, {"extra_forbidden": "unknown setting"})


def load_settings(
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings: overrides > `SR_` environment > TOML file > defaults.

    `config_file` defaults to `$SR_CONFIG` when set. `overrides` are keyword values as from CLI
    flags (nested sections as dicts); None values are dropped so absent flags change nothing.
    """
    env = os.environ if environ is None else environ
    _check_env(env)
    if config_file is None and env.get(CONFIG_ENV):
        config_file = env[CONFIG_ENV]
    path = Path(config_file) if config_file is not None else None
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    clean = {k: v for k, v in (overrides or {}).items() if v is not None}
    # Same rank as the variables they stand for: above the TOML file, below explicit flags.
    clean = {k: dict(v) if isinstance(v, Mapping) else v for k, v in clean.items()}
    _merge_absent(clean, _secrets_from_env_files(env))
    alias = next((v for k, v in env.items() if k.upper() == REDIS_URL_ENV), None)
    nested = any(k.upper() == "SR_REDIS__URL" for k in env)
    if alias and not nested and not (clean.get("redis") or {}).get("url"):
        # Same rank as SR_REDIS__URL: above the TOML file, below an explicit --redis-url.
        clean["redis"] = {**(clean.get("redis") or {}), "url": alias}
    token = _config_file.set(path)
    try:
        return Settings(**clean)
    finally:
        _config_file.reset(token)
