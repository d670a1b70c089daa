"""Reading the config file: strict YAML in, pydantic's complaints out in plain words.

Private to ``settings.py``. A key given twice is an error (YAML would keep the last); a
syntax error names its line and column but never quotes the text, which could hold the
token; every validation problem becomes one line ``source: dotted.path: what is wrong``,
with a suggestion for a mistyped option and never the value of anything under ``putio``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from putio_mirror.config.schema import MirrorFile
from putio_mirror.core.errors import ConfigError

#: where a hint sends the reader for the file's shape: the example ``config init`` writes
EXAMPLE_HINT = (
    "every option is documented in the example that "
    "`putio-mirror config init --path mirror.example.yaml` writes"
)


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> dict[str, Any]:
    """Given a config path, return its top-level mapping; raise ConfigError if unusable."""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        hint = f"check that {path} is a readable UTF-8 text file"
        raise ConfigError(f"cannot read config file {path}: {reason}", hint) from None
    except yaml.YAMLError as error:
        raise _syntax_error(path, error) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level should be a mapping of sections (putio:, paths:, …), "
            f"not a {type(data).__name__}",
            EXAMPLE_HINT,
        )
    # A section whose options are all commented out reads as null: treat it as empty.
    return {
        key: {} if value is None and key != "log_level" else value for key, value in data.items()
    }


def _syntax_error(path: Path, error: yaml.YAMLError) -> ConfigError:
    # Only the parser's description and position: the snippet could show the token.
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(error, "problem", None) or "invalid YAML"
    return ConfigError(
        f"{path}: YAML syntax error{where}: {problem}",
        "fix the YAML (indent with spaces, quote values holding ': ' or '#')",
    )


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, object]) -> dict[str, Any]:
    """Given the file's data and dotted-key overrides, return a new dict with them applied."""
    result: dict[str, Any] = {
        key: dict(value) if isinstance(value, dict) else value for key, value in raw.items()
    }
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        target = result
        for part in parents:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[leaf] = value
    return result


def validate(
    raw: dict[str, Any], source: str, override_keys: set[str], config_path: Path | None
) -> MirrorFile:
    """Given the file's data (overrides applied), return it validated; raise ConfigError
    listing every problem, each named by where it came from (the file or the flags)."""
    try:
        return MirrorFile.model_validate(raw)
    except ValidationError as error:
        problems = tuple(_describe(detail, source, override_keys) for detail in error.errors())
    raise config_error(config_path, problems)


#: where a problem of an option given as a flag (``--window``, ``--chunk-size``) comes from
COMMAND_LINE = "command line"


def config_error(config_path: Path | None, problems: tuple[str, ...]) -> ConfigError:
    """Given the config file (or None) and its problems, return the error that lists them."""
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    if all(problem.startswith(f"{COMMAND_LINE}:") for problem in problems):
        # the file is fine: blaming it would send the person to the wrong place
        hint = "fix the option and run again; `--help` shows the form each option takes"
        return ConfigError(f"the command line has {count}", hint, problems=problems)
    where = str(config_path) if config_path else "the configuration"
    return ConfigError(
        f"{where} has {count}",
        f"fix each one and run again; {EXAMPLE_HINT}",
        problems=problems,
    )


def _describe(detail: ErrorDetails, source: str, override_keys: set[str]) -> str:
    """Given one pydantic error, return ``source: dotted.path: what is wrong``."""
    loc = detail["loc"]
    dotted = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    dotted = dotted.lstrip(".") or "(top level)"
    from_flags = any(
        dotted == key or dotted.startswith((f"{key}.", f"{key}[")) for key in override_keys
    )
    origin = COMMAND_LINE if from_flags else source
    return f"{origin}: {dotted}: {_explain(detail)}"


def _explain(detail: ErrorDetails) -> str:
    kind = detail["type"]
    if kind == "extra_forbidden":
        return "unknown option" + _suggestion(detail["loc"])
    if kind == "model_type":
        return "should be a section (a mapping of options)"
    message = detail["msg"].removeprefix("Value error, ")
    if kind == "value_error" or not _may_quote(detail):
        return message
    shown = repr(detail["input"])
    return f"{message} (got {shown if len(shown) <= 60 else shown[:57] + '...'})"


def _may_quote(detail: ErrorDetails) -> bool:
    # Anything under putio.token, or the putio section as a whole, may be the secret itself.
    loc = detail["loc"]
    holds_token = bool(loc) and loc[0] == "putio" and (len(loc) == 1 or loc[1] == "token")
    scalar = isinstance(detail.get("input"), str | int | float | bool)
    return scalar and not holds_token and detail["type"] != "missing"


def _suggestion(loc: tuple[int | str, ...]) -> str:
    model: type[BaseModel] = MirrorFile
    for part in loc[:-1]:
        annotation = (
            model.model_fields[str(part)].annotation if part in model.model_fields else None
        )
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    # an option of another section ("download.window" for "schedule.windows")
    elsewhere = {
        f"{name}.{option}": option
        for name, field in MirrorFile.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        for option in field.annotation.model_fields
    }
    near = difflib.get_close_matches(str(loc[-1]), list(elsewhere.values()), n=1)
    where = [path for path, option in elsewhere.items() if near and option == near[0]]
    return f" (did you mean {where[0]!r}? it is in another section)" if where else ""
