"""How every BILLOPS_* variable is read: one parser, one set of rules, one error.

Each group of settings is a pydantic-settings model whose fields name their variable (``validation_alias``); each
function's settings are the union of the groups it uses (billops.settings.functions), read once at its cold start
by ``load``. The rules, the same for every variable:

* unset or blank means the default; surrounding white space is ignored;
* anything else must parse (a number, ``true``/``false``, one of a list of words, a URL...) and be in range; a value
  that does not is never replaced by the default nor clamped into range: ``load`` raises ``SettingsError`` naming
  every variable that is wrong (values of secret variables are never repeated), so a function with a broken
  configuration refuses to start rather than run with a setting nobody chose;
* defaults fail closed: without ``BILLOPS_ENV=local`` nothing meant for the local stack applies (loopback sources,
  plain-http URLs, the sandbox, fixed development keys).

Models are also constructed directly (tests, the CLI) by field name; a model built that way reads no environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BeforeValidator, ValidationError
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError

LOCAL = "local"


class SettingsError(ValueError):
    """Settings that cannot be honoured, raised at start-up (container init); ``problems`` lists (variable, why)
    for every one of them, and the message names them all."""

    def __init__(self, problems: list[tuple[str, str]] | str) -> None:
        if isinstance(problems, str):
            problems = [("", problems)]
        self.problems = problems
        described = [f"{name}: {why}" if name else why for name, why in problems]
        count = len(problems)
        super().__init__(f"{count} setting{'s' if count != 1 else ''} cannot be honoured: " + "; ".join(described))

    @classmethod
    def from_validation(cls, error: ValidationError, secret: frozenset[str] = frozenset()) -> SettingsError:
        problems = []
        for detail in error.errors(include_url=False):
            name = ".".join(str(part) for part in detail.get("loc") or ())
            why = str(detail.get("msg") or "invalid").removeprefix("Value error, ")
            if name and name not in secret and detail.get("type") not in ("value_error", "missing"):
                why += f" (got {detail.get('input')!r})"
            problems.append((name, why))
        return cls(problems)


class SettingsModel(BaseSettings):
    """A group of settings. Fields name their variable with ``validation_alias``."""

    # defer_build: a model builds its validator when it is first read, not at import. A group is mostly a base of
    # the model a function reads (billops.settings.functions), and building every group it imports cost the
    # receiver's cold start CPU for models it never reads.
    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, extra="ignore", validate_by_name=True,
                                      validate_by_alias=True, env_ignore_empty=False,
                                      validate_default=True, defer_build=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what the caller gives: ``load`` reads the environment explicitly (os.environ or a given mapping),
        # and nothing is ever read from a .env file or a secrets directory in a Lambda container.
        return (init_settings,)

    settings_error: ClassVar[type[SettingsError]] = SettingsError
    """What ``load`` raises for this model (a subclass of SettingsError that callers of a group may also catch as
    their own configuration error, e.g. billops.ccbill.errors.CCBillConfigurationError)."""

    @classmethod
    def from_env(cls: type[M], env: Mapping[str, str] | None = None) -> M:
        """This model read from ``env`` (default: os.environ): ``load(cls, env)``."""
        return load(cls, env)

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Variable name -> field name, for every field of the model."""
        return {str(field.validation_alias or name): name for name, field in cls.model_fields.items()}


M = TypeVar("M", bound=SettingsModel)


class _Variables(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ, or a stack's function environment
    read by the CLI)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return dict(self._environ)


def load(model: type[M], env: Mapping[str, str] | None = None) -> M:
    """``model`` read from ``env`` (default: os.environ); raises SettingsError naming every wrong variable."""
    try:
        return model(**_Variables(model, os.environ if env is None else env)())
    except ValidationError as error:
        # The registry (every variable, ~1 ms to import) only to word the error: not on a cold start that reads well.
        from billops.settings.registry import secret_variables

        raise model.settings_error.from_validation(error, secret_variables()) from None
    except _SourceError as error:
        raise model.settings_error(str(error)) from None


# --- value types: the rules above, once ------------------------------------------------------------------------


def _blank_is_default(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise PydanticUseDefault()
    return value


def _lower_blank_is_default(value: Any) -> Any:
    value = _blank_is_default(value)
    return value.lower() if isinstance(value, str) else value


def _comma_separated(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


Text = Annotated[str | None, BeforeValidator(_blank_is_default)]
"""Optional text: unset or blank is None (or the field's default)."""
Word = Annotated[str, BeforeValidator(_lower_blank_is_default)]
"""A choice, case-insensitive (checked by the field's Literal or validator)."""
Number = Annotated[float, BeforeValidator(_blank_is_default)]
Whole = Annotated[int, BeforeValidator(_blank_is_default)]
Flag = Annotated[bool, BeforeValidator(_lower_blank_is_default)]
"""true/false (also 1/0, yes/no, on/off)."""
CommaSeparated = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_separated)]
"""A comma-separated list; set but blank is the empty list (not the default)."""
