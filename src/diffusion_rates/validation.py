"""One-line checks of config values: each error names the key, what is allowed and what it got."""

from __future__ import annotations

import math
import os


class ConfigError(ValueError):
    """A config value that is not allowed; its message is one line naming the key."""


def choice(key, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{key}: one of {', '.join(allowed)} (got {value!r})")
    return value


def integer(key, value, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}: an integer >= {low} (got {value!r})")
    return value


def number(key, value, low=-math.inf, high=math.inf, low_open=False, high_open=False, what=""):
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        bounds = [f"> {low:g}" if low_open else f">= {low:g}"] if math.isfinite(low) else []
        bounds += [f"< {high:g}" if high_open else f"<= {high:g}"] if math.isfinite(high) else []
        raise ConfigError(f"{key}: a number {' and '.join(bounds)}{what} (got {value!r})")
    return float(value)


def boolean(key, value):
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: true or false (got {value!r})")
    return value


def positive_env(name: str, unit: str) -> float | None:
    """The environment setting `name` as a number > 0, None when unset; ConfigError otherwise,
    so that a typo is refused once instead of failing every run."""
    text = os.environ.get(name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}: a number of {unit} > 0 (got {text!r})")
    return value
