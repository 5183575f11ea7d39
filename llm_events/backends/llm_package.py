"""``llm:MODEL_ID``: any model the ``llm`` package and its plugins provide (extra ``llm``).

This gives every provider ``llm`` supports (and offline models such as ``llm-markov`` and
``llm-echo``, which the tests use).  Our parameter names are mapped onto the model's own
options when it has an equivalent (``max_tokens`` -> ``max_output_tokens``, ``length`` ...);
a parameter the model has no option for is refused when the client is made, with the list of
options it does have.  ``key=`` passes an API key through to ``llm`` (never recorded).
Errors from provider SDKs are classified like ours (status codes, timeouts, connections).
Nothing is written to ``llm``'s own logs.db.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..interface.client import LLMClient, attach_details
from ..interface.prompt import LLMResult, Prompt
from ..interface.streaming import StreamChunk
from ..transfer.llm_usage import detail_tokens
from .errors import from_foreign
from .render import split_json_flag, system_text

#: Our parameter -> the option names models of the ``llm`` ecosystem use for it.
OPTION_ALIASES: dict[str, tuple[str, ...]] = {
    "max_tokens": ("max_tokens", "max_output_tokens", "num_predict", "length"),
    "stop": ("stop", "stop_sequences"),
    "json": ("json_object", "json"),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "seed": ("seed",),
}


def _import_llm() -> Any:
    try:
        import llm
    except ImportError:
        raise ValueError(
            "the llm backend needs the `llm` package: pip install 'llm-events[llm]'"
        ) from None
    return llm


def map_options(model: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Our params as the model's options; ValueError naming what it does not take."""
    fields = set(getattr(getattr(model, "Options", None), "model_fields", {}) or {})
    json_mode, rest = split_json_flag(params)
    if json_mode:
        rest["json"] = True
    options: dict[str, Any] = {}
    for name, value in rest.items():
        target = next(
            (alias for alias in OPTION_ALIASES.get(name, (name,)) if alias in fields), None
        )
        if target is None:
            available = ", ".join(sorted(fields)) or "none"
            raise ValueError(
                f"llm model {model.model_id!r} has no option for {name!r} (its options: {available})"
            )
        options[target] = value
    try:
        model.Options(**options)
    except Exception as e:  # pydantic's ValidationError: say it in one line
        raise ValueError(f"invalid options for llm model {model.model_id!r}: {e}") from None
    return options


class LLMPackageBackend(LLMClient):
    """Runs ``llm.get_model(MODEL_ID)``; without a model id, ``llm``'s default model."""

    backend_name = "llm"

    def __init__(
        self,
        model: str | None = None,
        *,
        key: str | None = None,
        params: dict[str, Any] | None = None,
        store: Any = None,
        on_store_error: str | None = None,
        log_prompts: bool = True,
        **model_params: Any,
    ) -> None:
        llm = _import_llm()
        model_id = model or llm.get_default_model()
        try:
            self.llm_model = llm.get_model(model_id)
        except llm.UnknownModelError:
            raise ValueError(
                f"unknown llm model {model_id!r}: `llm models` lists the installed ones"
            ) from None
        merged = {**(params or {}), **model_params}
        super().__init__(
            model_id,
            params=merged,
            store=store,
            on_store_error=on_store_error,
            log_prompts=log_prompts,
        )
        self.options = map_options(self.llm_model, merged)
        self._key = key

    def _response(self, prompt: Prompt, *, stream: bool) -> Any:
        kwargs: dict[str, Any] = dict(self.options)
        if self._key is not None:
            kwargs["key"] = self._key
        system = system_text(prompt) or None
        return self.llm_model.prompt(prompt.user, system=system, stream=stream, **kwargs)

    def _raw(self, response: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {"model": self.llm_model.model_id}
        resolved = getattr(response, "resolved_model", None)
        if resolved:
            raw["resolved_model"] = resolved
        response_json = getattr(response, "response_json", None)
        if response_json is not None:
            raw["response_json"] = response_json
        return raw

    @staticmethod
    def _answer_fields(response: Any) -> dict[str, Any]:
        """What an ``llm`` response says beyond its text: the tool calls it made, the model
        the server named, the response id and why it stopped (when the plugin keeps them)."""
        fields: dict[str, Any] = {}
        try:
            calls = response.tool_calls() if hasattr(response, "tool_calls") else []
        except Exception:  # noqa: BLE001 - a plugin without tool support
            calls = []
        if calls:
            fields["tool_calls"] = [
                {
                    "type": "tool_call",
                    "id": getattr(c, "tool_call_id", None),
                    "name": str(getattr(c, "name", "")),
                    "arguments": json.dumps(getattr(c, "arguments", {}) or {}),
                }
                for c in calls
            ]
        resolved = getattr(response, "resolved_model", None)
        if isinstance(resolved, str) and resolved:
            fields["response_model"] = resolved
        body = getattr(response, "response_json", None)
        if isinstance(body, dict):
            if isinstance(body.get("id"), str):
                fields["response_id"] = body["id"]
            if isinstance(body.get("model"), str) and "response_model" not in fields:
                fields["response_model"] = body["model"]
            choices = body.get("choices")
            first = choices[0] if isinstance(choices, list) and choices else None
            finish = body.get("finish_reason") or (
                first.get("finish_reason") if isinstance(first, dict) else None
            )
            if isinstance(finish, str):
                fields["finish_reason"] = finish
        return fields

    @staticmethod
    def _usage(response: Any) -> tuple[int | None, int | None, dict[str, Any]]:
        try:
            usage = response.usage()
        except Exception:  # a plugin without usage support
            return None, None, {}
        details = getattr(usage, "details", None) or {}
        return usage.input, usage.output, details if isinstance(details, dict) else {}

    def _generate(self, prompt: Prompt, *, context_builder: Any) -> LLMResult:
        try:
            response = self._response(prompt, stream=False)
            text = response.text()
            input_tokens, output_tokens, details = self._usage(response)
        except Exception as e:
            raise from_foreign(e, self.backend_label()) from e
        result = LLMResult(
            raw=self._raw(response),
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            **self._answer_fields(response),
        )
        return attach_details(result, **detail_tokens(details))

    def _stream(self, prompt: Prompt, *, context_builder: Any) -> Iterator[StreamChunk]:
        try:
            response = self._response(prompt, stream=True)
            for piece in response:
                if isinstance(piece, str) and piece:
                    yield StreamChunk(text=piece)
            input_tokens, output_tokens, details = self._usage(response)
        except Exception as e:
            raise from_foreign(e, self.backend_label()) from e
        fields = self._answer_fields(response)
        yield StreamChunk(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            raw=self._raw(response),
            finish_reason=fields.pop("finish_reason", "stop"),
            details=fields,
            **detail_tokens(details),
        )
