"""The options of `freeze-tui run` (and the shared ones of `plan`), generated from RunConfig's fields.

A setting's name, type, default and help text are written once, in engine/run/config.py; this module turns
each field into a click option and the parsed values back into a RunConfig.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable

import click

from engine.run.config import RunConfig, parse_arm

_HINTS = typing.get_type_hints(RunConfig)
FIELDS = {f.name: f for f in dataclasses.fields(RunConfig) if f.metadata.get("cli", False)}


def flag_of(name: str) -> str:
    """The option's flag: `--max-steps` for max_steps, unless the field names its own."""
    return FIELDS[name].metadata.get("flag") or "--" + name.replace("_", "-")


def _option(name: str) -> Callable:
    f, hint = FIELDS[name], _HINTS[name]
    meta = f.metadata
    kwargs: dict = {"help": meta["help"], "metavar": meta.get("metavar")}
    flags = (flag_of(name), *meta.get("aliases", ()))
    if hint is bool:
        return click.option(*flags, name, is_flag=True, default=f.default, **kwargs)
    if typing.get_origin(hint) is tuple:  # repeatable: --data A --data B
        return click.option(*flags, name, multiple=True, **kwargs)
    base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)  # `float | None` -> float
    shown = f.default is not None and f.default != ""
    return click.option(*flags, name, type=base, default=f.default, show_default=shown, **kwargs)


def config_options(names: Iterable[str] | None = None) -> Callable:
    """A decorator adding the options of the named fields (all CLI fields when None), in field order."""
    chosen = [n for n in FIELDS if names is None or n in set(names)]

    def decorate(command: Callable) -> Callable:
        for name in reversed(chosen):
            command = _option(name)(command)
        return command

    return decorate


def config_from(opts: dict) -> RunConfig:
    """A validated RunConfig from parsed option values (only the fields that were options)."""
    values = {name: opts.pop(name) for name in list(opts) if name in FIELDS}
    if "arms" in values:
        values["arms"] = tuple(parse_arm(a) for a in values["arms"]) or RunConfig.arms
    if "data" in values:
        values["data"] = tuple(values["data"])
    return RunConfig(**values).validate()


def config_args(cfg: RunConfig, skip: Iterable[str] = ()) -> list[str]:
    """The options that give back `cfg` (what differs from the defaults): a launcher passes a parsed
    run on to the processes it starts."""
    args: list[str] = []
    for name, f in FIELDS.items():
        value = getattr(cfg, name)
        if name in skip or value == f.default:
            continue
        flag = flag_of(name)
        if isinstance(value, bool):
            args += [flag] if value else []
        elif name == "arms":
            args += [a for arm in value for a in (flag, "=".join(arm))]
        elif isinstance(value, tuple):
            args += [a for item in value for a in (flag, str(item))]
        elif value is not None:
            args += [flag, repr(value) if isinstance(value, float) else str(value)]
    return args
