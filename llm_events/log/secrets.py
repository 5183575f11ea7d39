"""Finding secrets in text: gitleaks' rules, the credentials of traffic, configured keys.

Three sources, each masked by :class:`SecretFinder`:

1. **gitleaks' default rules** (``secret_rules.json``: data converted from gitleaks'
   ``config/gitleaks.toml`` by ``scripts/update_secret_rules.py``): 220 token formats
   (AWS, Google, GitHub, GitLab, Slack, Stripe, JWTs, private keys, ...), each with the
   keywords gitleaks pre-filters on and its entropy threshold.  A maintained list beats a
   hand-grown one; refreshing it is re-running the script on a newer gitleaks.
2. **Credentials of HTTP traffic** that gitleaks' code-oriented rules do not cover in
   prose: ``Authorization: Basic/Bearer/Token ...``, ``password=``, ``access_token=``,
   ``client_secret=``, ``?key=`` in URLs, OpenAI/Anthropic ``sk-`` keys of any length, and
   the provider's masked echo of a key (``sk-proj-****...abcd``).
3. **The keys this process was configured with** (``*_API_KEY``-style environment
   variables, keys given to backends): their exact values and OpenAI's echo of them (whole
   when short, else the first 8 characters, ``*`` for the middle, the last 4).

Cheap on the hot path: a recorded call cleans dozens of strings, most short or plain
prose.  Strings under 16 characters are only compared with the configured keys; gitleaks'
rules run only on strings holding a token-like run of 16+ characters, and only the rules
whose keywords occur next to such a run.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

MASK = "[REDACTED]"
RULES_FILE = Path(__file__).with_name("secret_rules.json")

#: A token-like run: the shape every gitleaks-format secret has.
_RUN = re.compile(r"[A-Za-z0-9_\-+/=.~]{16,}")
#: The same test without the regex (which restarts inside every word: 20 ns a character):
#: the text's UTF-8 bytes with each run character made ``x`` and every other byte (non-ASCII
#: ones too, which ``_RUN`` never matches) a space hold 16 ``x`` in a row iff ``_RUN`` matches.
_RUN_BYTES = bytes(
    0x78
    if chr(i) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/=.~"
    else 0x20
    for i in range(256)
)
_RUN_MIN = b"x" * 16


def has_run(text: str) -> bool:
    """``_RUN.search(text) is not None``, nine times faster on long text."""
    return _RUN_MIN in text.encode("utf-8", "surrogatepass").translate(_RUN_BYTES)


#: How far before a run gitleaks' rules look for their keyword (``mailchimp_key = ...``).
_CONTEXT = 80
_NEAR = 32


@dataclass(frozen=True)
class Rule:
    id: str
    regex: str
    keywords: tuple[str, ...]
    group: int = 0
    entropy: float = 0.0

    @property
    def compiled(self) -> re.Pattern[str]:
        return _compile(self.regex)


@cache
def _compile(regex: str) -> re.Pattern[str]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "possible nested set": gitleaks' [[...]] classes
        return re.compile(regex)


@lru_cache(maxsize=1)
def gitleaks_rules() -> tuple[tuple[Rule, ...], dict[str, tuple[Rule, ...]]]:
    """The rules and, for each keyword, the rules that need it (loaded once)."""
    with open(RULES_FILE, "rb") as f:
        data = json.load(f)
    rules = tuple(
        Rule(
            id=r["id"],
            regex=r["regex"],
            keywords=tuple(r["keywords"]),
            group=int(r.get("secretGroup", 0)),
            entropy=float(r.get("entropy", 0.0)),
        )
        for r in data["rules"]
    )
    by_keyword: dict[str, list[Rule]] = {}
    for rule in rules:
        for kw in rule.keywords:
            by_keyword.setdefault(kw, []).append(rule)
    return rules, {k: tuple(v) for k, v in by_keyword.items()}


def shannon_entropy(text: str) -> float:
    """Bits per character (gitleaks' measure: a random key scores high, a word low)."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


# --- credentials of traffic (ours) ---------------------------------------------------------

#: ``(pattern, hints)``: each match is replaced by its group 1 (the label kept) + MASK; the
#: pattern runs only if one of its hints (lower-case) is in the text.
TRAFFIC_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # OpenAI (sk-, sk-proj-, sk-svcacct-, sk-admin-) and Anthropic (sk-ant-...) keys: a
    # known kind, 20+ characters with a digit or mixed case, or an unbroken run of 12+
    # ("sk-learn-contrib-library" is a package, not a key)
    (
        r"\b(sk-)(?:(?:proj|ant|svcacct|admin)-[A-Za-z0-9_\-]{8,}"
        r"|(?=[A-Za-z0-9_\-]*[0-9])[A-Za-z0-9_\-]{20,}"
        r"|(?=[A-Za-z0-9_\-]*[A-Z])(?=[A-Za-z0-9_\-]*[a-z])[A-Za-z0-9_\-]{20,}"
        r"|(?=[A-Za-z0-9_\-]*[A-Za-z0-9]{12})[A-Za-z0-9_\-]{12,})",
        ("sk-",),
    ),
    # a provider's masked echo of a key: "sk-proj-****...abcd", "AIzaSy****...wxyz"
    (r"(?<![\w*])[A-Za-z0-9_\-:/.]{2,8}\*{6,}[A-Za-z0-9_\-]{0,4}(?![\w*])", ("***",)),
    (r"(?i)(incorrect api key provided:\s*)[^\s.,;]+", ("incorrect api key",)),
    # Authorization / Proxy-Authorization headers in text, with or without their scheme
    (
        r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
        r"(?:basic|bearer|token|digest|negotiate|apikey)?\s*)[^\s\"',;}]+",
        ("authorization",),
    ),
    (r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/\-]{8,}=*", ("bearer",)),
    # key=value / "key": "value" credentials (not a bare "token": logprobs have those)
    (
        r"(?i)((?<![A-Za-z0-9])[\"']?(?:[a-z0-9]+[_-])*(?:api[_-]?key|apikey|x-api-key|"
        r"password|passwd|pwd|secret|client[_-]?secret|secret[_-]?key|private[_-]?key|"
        r"access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token|session[_-]?token|"
        r"aws[_-]?secret[_-]?access[_-]?key)[\"']?\s*[:=]\s*[\"']?)"
        r"(?![\"']?\s*(?:null|none|true|false)\b)[^\s\"'&,;}\]]{3,}",
        ("key", "pass", "pwd", "secret", "token"),
    ),
    # secrets in URL query strings: ?key=, &api_key=, &token=, &sig=, ...
    (
        r"(?i)([?&](?:key|api[_-]?key|apikey|token|access[_-]?token|auth|sig|signature|"
        r"secret|password|client[_-]?secret|code)=)[^&\s#\"'<>]+",
        ("=",),
    ),
    # user:password@ in URLs
    (r"(?i)(\b[a-z][a-z0-9+.\-]*://[^:/?#\s@\"']+:)[^@/?#\s\"']+(?=@)", ("://",)),
)


@lru_cache(maxsize=1)
def _traffic() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    """The compiled rules, each with its hints (tested as substrings: one regex finding any
    hint scanned the text two to three times slower, since common letters start one)."""
    return tuple((re.compile(p), hints) for p, hints in TRAFFIC_RULES)


# --- configured keys -----------------------------------------------------------------------

#: Environment variables whose values are keys (``OPENAI_API_KEY``, ``HF_TOKEN``, ...).
SECRET_ENV = re.compile(r"(?i)(?:^|_)(?:api_?key|key|token|secret|password|passwd|pat)$")
_MIN_SECRET = 8
_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Scrub ``value`` (and its masked echo) from everything recorded from now on: backends
    call this with the keys they are given."""
    if isinstance(value, str) and len(value) >= _MIN_SECRET and value not in _registered:
        with _lock:
            _registered.add(value)
            _state.names_for = -1  # recompute


class _State:
    """The configured keys as last computed, and what they were computed from."""

    names_for = -1  # len(os.environ) when ``names`` was computed
    names: tuple[str, ...] = ()
    values: tuple[str | None, ...] | None = None
    forms: tuple[str, ...] = ()


_state = _State()


def echo_form(key: str) -> str:
    """How OpenAI's 401 message quotes a key: the first 8 and last 4 characters with ``*``
    between (``sk-proj-****...abcd``); whole when 12 characters or fewer."""
    if len(key) <= 12:
        return key
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


def configured_secrets() -> tuple[str, ...]:
    """The configured keys and their echo forms, longest first.

    Called for every recorded string, so it costs two C-level reads of the environment's
    own dict: the names of the secret-holding variables are found again only when the
    environment changes size, the forms only when one of their values changed.
    """
    st = _state
    data = _ENV_DATA if _ENV_DATA is not None else os.environ
    if st.names_for != len(data):
        st.names = tuple(
            k
            for k in data
            if SECRET_ENV.search(k if isinstance(k, str) else k.decode("utf-8", "replace"))
        )
        st.names_for = len(data)
        st.values = None  # forms recomputed: a key registered meanwhile joins them
    values = tuple(map(data.get, st.names))
    if values != st.values:
        st.values = values
        found = {
            v if isinstance(v, str) else os.fsdecode(v)
            for v in values
            if v is not None and len(v) >= _MIN_SECRET
        } | _registered
        forms = found | {echo_form(v) for v in found}
        st.forms = tuple(sorted(forms, key=len, reverse=True))
        _cached.cache_clear()  # what was remembered was cleaned of other keys
    return st.forms


#: ``os.environ``'s own mapping (encoded keys and values on POSIX), read without the
#: encoding ``os.environ.get`` does per call; ``os.environ`` itself where there is none.
_ENV_DATA: dict | None = getattr(os.environ, "_data", None)


# --- the finder ----------------------------------------------------------------------------


def find_secrets(text: str) -> str:
    """``text`` with every secret of the three sources masked (see the module's docstring)."""
    st = _state
    data = _ENV_DATA if _ENV_DATA is not None else os.environ
    # configured_secrets()'s test, inline: this runs for every recorded string
    if st.names_for != len(data) or tuple(map(data.get, st.names)) != st.values:
        configured_secrets()
    if len(text) <= _CACHED_CHARS:  # model names, roles, ids, system prompts repeat
        return _cached(text)
    return _find(text, st.forms)


class SecretFinder:
    """Masks every secret of the three sources in a string (see the module's docstring)."""

    __call__ = staticmethod(find_secrets)


#: Strings up to this long are remembered with what they became (forgotten when the
#: configured keys change).
_CACHED_CHARS = 256


@lru_cache(maxsize=8192)
def _cached(text: str) -> str:
    return _find(text, _state.forms)


def _find(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if len(text) < 16:
        return text
    lowered = text.lower()
    for pattern, hints in _traffic():
        for h in hints:
            if h in lowered:
                text = _sub_labelled(pattern, text)
                break
    if not has_run(text):
        return text
    candidates = _candidates(text)
    for rule in candidates:
        text = _sub_rule(rule, text)
    return text


#: Just before a secret, gitleaks' context rules want an assignment (``key = "..."``).
_ASSIGNED = re.compile(r"""[\s'"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)[`'"\s=]{0,5}$""")


def _candidates(text: str) -> list[Rule]:
    """The gitleaks rules whose keywords occur in a token-like run of ``text`` or, for a run
    that is assigned (``name = run``), in the name before it."""
    finder, by_keyword = _keyword_finder()
    seen: dict[str, Rule] = {}
    lowered = text.lower()
    for m in _RUN.finditer(lowered):
        start = m.start()
        # the keyword of a context rule is just before the run (``-----BEGIN ... KEY-----``)
        # or, for an assigned run, anywhere in the name it is assigned to
        reach = _CONTEXT if _ASSIGNED.search(lowered, max(0, start - 9), start) else _NEAR
        for found in finder.finditer(lowered, max(0, start - reach), m.end()):
            word = found.group(1)
            # a keyword that is a prefix of the one found occurs too (``sk`` in ``sk_live``)
            for n in range(2, len(word) + 1):
                for rule in by_keyword.get(word[:n], ()):
                    seen[rule.id] = rule
    return list(seen.values())


@lru_cache(maxsize=1)
def _keyword_finder() -> tuple[re.Pattern[str], dict[str, tuple[Rule, ...]]]:
    """One regex finding every keyword at every position (a trie of them in a lookahead:
    each position costs a few character tests, however many keywords there are)."""
    _rules, by_keyword = gitleaks_rules()
    trie: dict = {}
    for kw in by_keyword:
        node = trie
        for ch in kw:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        alts = [re.escape(ch) + build(sub) for ch, sub in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return re.compile("(?=(" + build(trie) + "))"), by_keyword


def _sub_labelled(pattern: re.Pattern[str], text: str) -> str:
    if pattern.groups >= 1:
        return pattern.sub(lambda m: (m.group(1) or "") + MASK, text)
    return pattern.sub(MASK, text)


def _sub_rule(rule: Rule, text: str) -> str:
    """Mask the secret part of each match of a gitleaks rule that passes its entropy test."""
    pattern = rule.compiled
    out: list[str] = []
    last = 0
    for m in pattern.finditer(text):
        group = rule.group if rule.group and rule.group <= pattern.groups else 0
        if group == 0 and pattern.groups >= 1 and m.group(1) is not None:
            group = 1  # gitleaks' rules capture the secret in group 1 by convention
        start, end = m.span(group)
        if start < 0:
            continue
        secret = text[start:end]
        if MASK in secret or (rule.entropy and shannon_entropy(secret) < rule.entropy):
            continue
        out.append(text[last:start])
        out.append(MASK)
        last = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def rule_ids() -> list[str]:
    """The ids of gitleaks' rules in use (for docs and tests)."""
    return [r.id for r in gitleaks_rules()[0]]


def describe() -> dict[str, Any]:
    return {"gitleaks_rules": len(gitleaks_rules()[0]), "traffic_rules": len(TRAFFIC_RULES)}
