"""Cleaning values before they become events: secrets masked, unstorable values refused.

Events are immutable, so redaction must happen before the write.  The same walk checks that
every value can be stored faithfully as JSON; anything that cannot (an arbitrary object, NaN,
a lone surrogate) is refused with :class:`UnstorableValueError` naming where it was, before
anything of the call is written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .secrets import MASK, SecretFinder, register_secret

__all__ = ["MASK", "Redactor", "UnstorableValueError", "clean", "register_secret"]

#: Mapping keys whose values are credentials, masked whole (headers, config dicts,
#: metadata): ``api_key``, ``openai_api_key``, ``x-goog-api-key``, ``client_secret``,
#: ``Cookie``, ``aws_secret_access_key``, ``private_key``, ``Authorization``...  Not a bare
#: ``token``, ``key`` or ``tokens``: logprobs and usage data have fields of those names.
DEFAULT_SENSITIVE_KEYS = (
    r"(?i)^(?:x-)?(?:[a-z0-9]+[-_])*(?:api[-_]?key|apikey|secret|secret[-_]?key|"
    r"client[-_]?secret|password|passwd|pwd|passphrase|private[-_]?key|access[-_]?key|"
    r"access[-_]?token|refresh[-_]?token|id[-_]?token|auth[-_]?token|session[-_]?token|"
    r"bearer[-_]?token|oauth[-_]?token|authorization|proxy-authorization|cookie|set-cookie|"
    r"credentials?|aws[-_]secret[-_]access[-_]key|secret[-_]access[-_]key)$"
)


class _KeyMatcher:
    """``pattern.match(key)``, remembered per key: the same few keys recur in every call."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)
        self.seen: dict[str, bool] = {}

    def match(self, key: str) -> bool:
        hit = self.seen.get(key)
        if hit is None:
            hit = self.pattern.match(key) is not None
            if len(self.seen) < 10_000:
                self.seen[key] = hit
        return hit


class Redactor:
    """Masks secrets in strings: the default finder (:mod:`.secrets`: gitleaks' rules,
    credentials of traffic, configured keys), then regex patterns, then callables."""

    def __init__(
        self,
        patterns: Iterable[str | re.Pattern[str]] | None = None,
        callables: Iterable[Callable[[str], str]] = (),
        *,
        include_defaults: bool = True,
        sensitive_keys: str | None = DEFAULT_SENSITIVE_KEYS,
    ) -> None:
        self.sensitive_keys = (
            _KeyMatcher(sensitive_keys) if sensitive_keys and include_defaults else None
        )
        self.finder = SecretFinder() if include_defaults else None
        self.patterns = [p if isinstance(p, re.Pattern) else re.compile(p) for p in patterns or ()]
        self.callables = list(callables)

    def __call__(self, text: str) -> str:
        if self.finder is not None:
            text = self.finder(text)
        if self.patterns:
            text = _mask(self.patterns, text)
        for fn in self.callables:
            text = fn(text)
        return text


def _mask(patterns: list[re.Pattern[str]], text: str) -> str:
    """Replace each match by its group 1 (the label kept, if the pattern has one) + MASK."""
    for pattern in patterns:
        if pattern.search(text):
            keep_label = pattern.groups >= 1
            text = pattern.sub((lambda m: (m.group(1) or "") + MASK) if keep_label else MASK, text)
    return text


NO_REDACTION = Redactor(include_defaults=False)

#: Deepest nesting of lists and dicts recorded: JSON decoders (msgspec, the stdlib) recurse,
#: and a value they cannot read back would make the store unreadable.
MAX_DEPTH = 200

_isfinite = math.isfinite


class UnstorableValueError(ValueError):
    """A value cannot be recorded faithfully; nothing was written."""


def check_text(value: str, where: str) -> None:
    """Refuse strings that JSON-in-UTF-8 cannot hold (lone surrogates)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise UnstorableValueError(
                f"{where} contains a character that cannot be stored "
                f"(lone surrogate {value[e.start]!r} at position {e.start})"
            ) from None


def clean_text(value: str, redact: Redactor, where: str) -> str:
    check_text(value, where)
    return redact(value)


def clean(value: Any, redact: Redactor, where: str) -> Any:
    """Return a JSON-safe, redacted copy of ``value`` or raise :class:`UnstorableValueError`."""
    return _clean(value, redact, where, ())


def _where(where: str, path: tuple[str | int, ...]) -> str:
    """``where`` plus the keys and indexes leading to a value: ``params['a'][0]``."""
    return where + "".join(f"[{k!r}]" for k in path)


def _clean(value: Any, redact: Redactor, where: str, path: tuple[str | int, ...]) -> Any:
    # ``path`` is turned into text only for an error message: most values are fine, and
    # formatting a location for every one of them was most of the cost of cleaning.
    cls = type(value)
    if cls is dict:  # the usual containers first: ``isinstance(x, Mapping)`` is slow
        return _mapping(value, redact, where, path)
    if cls is list:
        return _sequence(value, redact, where, path)
    if value is None or value is True or value is False:
        return value
    if cls is str or isinstance(value, str):
        if not value.isascii():
            check_text(value, _where(where, path))
        return redact(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnstorableValueError(
                f"{_where(where, path)} is {value!r}, which JSON cannot store"
            )
        return float(value)
    if isinstance(value, Mapping):
        return _mapping(value, redact, where, path)
    if isinstance(value, (list, tuple)):
        return _sequence(value, redact, where, path)
    raise UnstorableValueError(
        f"{_where(where, path)} holds a {type(value).__module__}.{type(value).__qualname__} "
        "object, which cannot be recorded as JSON; convert it to str, dict or list first"
    )


def _too_deep(where: str) -> UnstorableValueError:
    return UnstorableValueError(
        f"{where} is nested deeper than {MAX_DEPTH} levels, which cannot be recorded"
    )


def _mapping(
    value: Mapping[Any, Any], redact: Redactor, where: str, path: tuple[str | int, ...]
) -> dict[str, Any]:
    if len(path) >= MAX_DEPTH:
        raise _too_deep(where)
    sensitive = redact.sensitive_keys
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise UnstorableValueError(
                f"{_where(where, path)} has a key {k!r} of type {type(k).__name__}; "
                "keys must be strings"
            )
        if (
            sensitive is not None
            and isinstance(v, (str, int, float))
            and v is not True
            and v is not False
            and sensitive.match(k)
        ):
            if isinstance(v, str):
                check_text(v, _where(where, (*path, k)))
            out[k] = MASK
            continue
        if type(v) is str:  # most values: cleaned here, without a call and a path
            if not v.isascii():
                check_text(v, _where(where, (*path, k)))
            v = redact(v)
        elif not (
            v is None
            or v is True
            or v is False
            or type(v) is int
            or (type(v) is float and _isfinite(v))
        ):
            # (containers directly: one frame per level, as deep as MAX_DEPTH allows)
            kind = _mapping if type(v) is dict else _sequence if type(v) is list else _clean
            v = kind(v, redact, where, (*path, k))
        if not k.isascii():
            check_text(k, _where(where, path))
        out[redact(k)] = v
    return out


def _sequence(
    value: list[Any] | tuple[Any, ...], redact: Redactor, where: str, path: tuple[str | int, ...]
) -> list[Any]:
    if len(path) >= MAX_DEPTH:
        raise _too_deep(where)
    items = []
    for i, v in enumerate(value):
        if type(v) is str:
            if not v.isascii():
                check_text(v, _where(where, (*path, i)))
            items.append(redact(v))
        elif (
            v is None
            or v is True
            or v is False
            or type(v) is int
            or (type(v) is float and _isfinite(v))
        ):
            items.append(v)
        else:
            kind = _mapping if type(v) is dict else _sequence if type(v) is list else _clean
            items.append(kind(v, redact, where, (*path, i)))
    return items
