"""The params schema: every key of ``params.yaml`` declared once, with its type, range and
default, as a :class:`Key` in a :data:`Section` (a mapping of key name to Key).

The fixed sections are declared in :mod:`vaemix.config` (``SCHEMA``); each model declares
its own options in its module (``Model.options``), beside the training loop's
(``config.TRAINING``). :func:`parse_section` is the one place that reads a section: an
unknown key stops it with the closest declared one ("'train.vade.lrr': unknown key; did
you mean 'lr'?"), a missing required key or a bad value with one line naming the key, and
what it returns has every default filled in.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vaemix.errors import ParamError

REQUIRED: Any = object()  # the default of a key params.yaml must set


def is_int(v: Any) -> bool:
    """An integer, not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (is_int(v) or isinstance(v, float)) and math.isfinite(v)


def fail(name: str, expected: str, got: Any) -> ParamError:
    """The one-line error of a bad value: "'<name>' must be <expected>, got <got>"."""
    return ParamError(f"params.yaml: '{name}' must be {expected}, got {got!r}")


# --- value types ----------------------------------------------------------------------

@dataclass(frozen=True)
class Int:
    """An integer of at least ``low`` (1: positive, 0: non-negative); null if ``nullable``."""

    low: int = 1
    nullable: bool = False

    def check(self, name: str, v: Any) -> int | None:
        if v is None and self.nullable:
            return None
        if not is_int(v) or v < self.low:
            what = {1: "a positive integer", 0: "a non-negative integer"}.get(
                self.low, f"an integer of at least {self.low}")
            raise fail(name, what + (" or null" if self.nullable else ""), v)
        return v


@dataclass(frozen=True)
class Number:
    """A finite number above ``low`` (``strict``) or from ``low`` on, and below ``high``
    (``high_open``) or up to it, if given; null if ``nullable``. Read as a float."""

    low: float = 0.0
    strict: bool = True
    high: float | None = None
    high_open: bool = True
    nullable: bool = False

    def check(self, name: str, v: Any) -> float | None:
        if v is None and self.nullable:
            return None
        ok = _is_number(v) and (v > self.low if self.strict else v >= self.low)
        if ok and self.high is not None:
            ok = v < self.high if self.high_open else v <= self.high
        if not ok:
            raise fail(name, self.describe() + (" or null" if self.nullable else ""), v)
        return float(v)

    def describe(self) -> str:
        lo = f"{self.low:g}"
        if self.high is not None:
            hi = f"{self.high:g}"
            if self.strict and self.high_open:
                return f"a number strictly between {lo} and {hi}"
            left, right = "(" if self.strict else "[", ")" if self.high_open else "]"
            return f"a number in {left}{lo}, {hi}{right}"
        if self.low == 0:
            return "a positive number" if self.strict else "a non-negative number"
        return f"a number above {lo}" if self.strict else f"a number of at least {lo}"


@dataclass(frozen=True)
class Bool:
    def check(self, name: str, v: Any) -> bool:
        if not isinstance(v, bool):
            raise fail(name, "true or false", v)
        return v


@dataclass(frozen=True)
class Text:
    """A non-empty string."""

    def check(self, name: str, v: Any) -> str:
        if not isinstance(v, str) or not v:
            raise fail(name, "a non-empty string", v)
        return v


@dataclass(frozen=True)
class OneOf:
    options: tuple[str, ...]
    nullable: bool = False

    def check(self, name: str, v: Any) -> str | None:
        if v is None and self.nullable:
            return None
        if v not in self.options:
            raise fail(name, "one of " + ", ".join(self.options)
                       + (" or null" if self.nullable else ""), v)
        return v


@dataclass(frozen=True)
class IntList:
    """A non-empty list of positive integers (layer sizes); null if ``nullable``."""

    nullable: bool = False

    def check(self, name: str, v: Any) -> list[int] | None:
        if v is None and self.nullable:
            return None
        if isinstance(v, tuple):
            v = list(v)
        if not isinstance(v, list) or not v or not all(is_int(i) and i > 0 for i in v):
            raise fail(name, "a non-empty list of positive integers"
                       + (" or null" if self.nullable else ""), v)
        return list(v)


@dataclass(frozen=True)
class Names:
    """A list of distinct names, each one of ``options`` (possibly empty)."""

    options: tuple[str, ...]

    def check(self, name: str, v: Any) -> list[str]:
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise fail(name, "a list of names", v)
        for s in v:
            if s not in self.options:
                known = ", ".join(self.options) if self.options else "none yet"
                raise ParamError(f"params.yaml: '{name}' has unknown entry {s!r} "
                                 f"(known: {known})")
        if len(set(v)) != len(v):
            raise fail(name, "a list without repeats", v)
        return list(v)


@dataclass(frozen=True)
class Any_:
    """A value checked elsewhere (a nested section, or a cross-key rule)."""

    def check(self, name: str, v: Any) -> Any:
        return v


@dataclass(frozen=True)
class Key:
    """One params key: its value type and its default (:data:`REQUIRED`: no default)."""

    type: Int | Number | Bool | Text | OneOf | IntList | Names | Any_
    default: Any = REQUIRED


Section = Mapping[str, Key]


# --- reading a section ----------------------------------------------------------------

def refuse_unknown(where: str, keys: Iterable[Any], known: Iterable[str],
                   retired: Mapping[str, str] | None = None) -> None:
    """Stop at the first of ``keys`` (of the section ``where``; "" = the top level) that is
    not ``known``, naming the closest known key: "'train.vade.lrr': unknown key; did you
    mean 'lr'?" (or, for a key of ``retired``, what replaced it)."""
    known = sorted(set(known))
    for key in keys:
        if key in known:
            continue
        name = f"{where}.{key}" if where else str(key)
        if retired and name in retired:
            raise ParamError(f"params.yaml: '{name}' is retired: {retired[name]}")
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}"
        raise ParamError(f"params.yaml: '{name}': unknown key; {hint}")


def parse_section(where: str, values: Any, *sections: Section, ignore: Iterable[str] = (),
                  retired: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``values`` (the params section at the dotted path ``where``) checked against the
    union of ``sections``: unknown keys refused (``ignore``: keys another check owns, left
    out of the result), required keys present, each value of its type. Returns the values
    with every default filled in."""
    if values is None:
        raise ParamError(f"params.yaml: missing key '{where}'")
    if not isinstance(values, Mapping):
        raise fail(where, "a mapping", values)
    schema: dict[str, Key] = {}
    for section in sections:
        schema.update(section)
    ignore = set(ignore)
    refuse_unknown(where, [k for k in values if k not in ignore], schema, retired)
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        if key in ignore:
            continue
        name = f"{where}.{key}" if where else key
        if key in values:
            out[key] = spec.type.check(name, values[key])
        elif spec.default is REQUIRED:
            raise ParamError(f"params.yaml: missing key '{name}'")
        else:
            out[key] = spec.default
    return out


def defaults(*sections: Section) -> dict[str, Any]:
    """The declared defaults of ``sections`` (required keys left out)."""
    return {k: spec.default for section in sections for k, spec in section.items()
            if spec.default is not REQUIRED}
