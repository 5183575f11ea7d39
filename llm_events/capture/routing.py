"""Which upstream a request goes to, and at which URL.

One port serves every provider by path, as the SDKs build their URLs: OpenAI paths
(``/v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings``, ``/v1/models``, ...) go to
``openai``, ``/v1/messages`` to ``anthropic``, ``/api/...`` to ``ollama``, and
``/NAME/...`` to any named upstream.  An upstream URL ending in ``/v1`` absorbs the path's
own ``/v1`` (``OPENAI_BASE_URL=http://127.0.0.1:8787/vllm/v1`` with
``vllm=http://gpu-box:8000/v1`` reaches ``http://gpu-box:8000/v1/chat/completions``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: name -> URL of the upstreams every proxy knows (``--upstream NAME=URL`` overrides one).
BUILTIN_UPSTREAMS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "ollama": "http://127.0.0.1:11434",
}


@dataclass(frozen=True)
class Route:
    """Where one request goes: the upstream's name, the URL, and the provider path
    (``/v1/chat/completions``) that names its wire format."""

    upstream: str
    url: str
    path: str

    @property
    def anthropic(self) -> bool:
        """Whether errors and injected keys take Anthropic's form."""
        return self.upstream == "anthropic" or self.path.startswith("/v1/messages")


class UpstreamError(ValueError):
    """A malformed ``--upstream NAME=URL``."""


def parse_upstream(spec: str) -> tuple[str, str]:
    """``NAME=URL`` -> (name, url without a trailing slash)."""
    name, sep, url = spec.partition("=")
    name, url = name.strip(), url.strip().rstrip("/")
    if not sep or not name or not url:
        raise UpstreamError(f"--upstream expects NAME=URL, got {spec!r}")
    if not name.replace("-", "").replace("_", "").isalnum():
        raise UpstreamError(f"upstream name {name!r} must be letters, digits, - or _")
    if not url.startswith(("http://", "https://")):
        raise UpstreamError(f"upstream {name!r}: URL must start with http:// or https://")
    return name, url


def join(base: str, path: str) -> str:
    """``base`` + ``path``, the path's ``/v1`` absorbed by a base that ends in ``/v1``."""
    if base.endswith("/v1") and (path == "/v1" or path.startswith("/v1/")):
        path = path[3:]
    return base + path


_OPENAI = ("/v1/chat/", "/v1/completions", "/v1/responses", "/v1/embeddings", "/v1/models")


class Router:
    """Maps request paths to upstreams (built-ins, overridden and added by the user)."""

    def __init__(self, upstreams: dict[str, str] | None = None) -> None:
        self.upstreams = {**BUILTIN_UPSTREAMS, **(upstreams or {})}

    def route(self, path: str, headers: dict[str, str] | None = None) -> Route | None:
        """The route for ``path``, or ``None`` when no upstream serves it."""
        first, _, rest = path[1:].partition("/")
        if first in self.upstreams and first != "v1" and first != "api":
            sub = "/" + rest
            return Route(first, join(self.upstreams[first], sub), sub)
        if path == "/v1/messages" or path.startswith("/v1/messages/"):
            return self._to("anthropic", path)
        if path.startswith("/api/"):
            return self._to("ollama", path)
        if path.startswith(_OPENAI) or path == "/v1/models":
            return self._to("openai", path)
        if path.startswith("/v1/"):  # files, batches, audio, ...: by the SDK's own headers
            anthropic = headers is not None and "anthropic-version" in headers
            return self._to("anthropic" if anthropic else "openai", path)
        return None

    def _to(self, name: str, path: str) -> Route:
        return Route(name, join(self.upstreams[name], path), path)
