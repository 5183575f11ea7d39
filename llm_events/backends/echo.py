"""The ``echo`` backend: answers with the prompt's user text.  Offline and deterministic."""

from __future__ import annotations

from typing import Any

from ..interface.client import LLMClient
from ..interface.prompt import LLMResult, Prompt


class EchoBackend(LLMClient):
    """``echo`` or ``echo:MODEL``.  With ``upper=True`` it answers in capitals."""

    backend_name = "echo"

    def __init__(self, model: str | None = None, *, upper: bool = False, **options: Any) -> None:
        super().__init__(model or "echo", **options)
        self.upper = upper

    def _generate(self, prompt: Prompt, *, context_builder: Any) -> LLMResult:
        text = prompt.user.upper() if self.upper else prompt.user
        return LLMResult(text=text, raw={"backend": "echo", "model": self.model})
