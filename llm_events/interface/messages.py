"""Messages and tool definitions as users write them -> the one neutral JSON shape.

A :class:`~llm_events.interface.prompt.Prompt` holds its conversation as plain dicts in the
shape of :mod:`llm_events.log.conversation` (a role and typed parts, after the OpenTelemetry
GenAI message schema), so ``dataclasses.asdict`` still round-trips and events store exactly
that.  Users write what they know, so the common spellings are accepted too: ``content`` as
a string, OpenAI's ``text`` / ``image_url`` parts, ``tool_calls`` and ``tool`` messages,
Anthropic's ``image`` / ``tool_use`` / ``tool_result`` / ``thinking`` blocks.  Inline bytes
(``data:`` URLs, base64 blobs, ``bytes``) become ``blob`` parts carrying their ``sha256`` and
``size``.  Anything else is refused with a ``ValueError`` naming the message and part.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec

from ..log.conversation import Message, ToolDefinition, part_extra

ROLES = ("system", "user", "assistant", "tool")
#: Other names for the roles (OpenAI's ``developer`` is a system message).
ROLE_ALIASES = {"developer": "system", "model": "assistant", "function": "tool"}


class MessageError(ValueError):
    """A message or tool definition is not in a shape we can record and send."""


def normalize_messages(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """The neutral form of a list of messages (raises :class:`MessageError` naming the bad one)."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise MessageError(f"messages must be a list of messages, not {type(messages).__name__}")
    return [_message(m, f"messages[{i}]") for i, m in enumerate(messages)]


def normalize_tools(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """The neutral form of tool definitions (OpenAI, Anthropic or neutral spelling)."""
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise MessageError(f"tools must be a list of tool definitions, not {type(tools).__name__}")
    return [_tool(t, f"tools[{i}]") for i, t in enumerate(tools)]


def normalize_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise MessageError(f"options must be a dict, not {type(options).__name__}")
    return dict(options)


def message_text(message: Mapping[str, Any]) -> str:
    """The text parts of a neutral message, joined."""
    return "".join(
        p.get("content", "") for p in message.get("parts", ()) if p.get("type") == "text"
    )


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The text of the last user message (``None`` when there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return None


def user_message(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"type": "text", "content": text}]}


# --- messages ---------------------------------------------------------------------------------


def _canonical(value: dict[str, Any], type_: type, where: str) -> dict[str, Any]:
    """Checked against the neutral struct, then back to a dict without default fields."""
    try:
        return _without_defaults(msgspec.convert(value, type_))
    except msgspec.ValidationError as e:
        raise MessageError(f"{where}: {e}") from None


def to_neutral(value: Any) -> Any:
    """Event structs (messages, parts, tool definitions, tool calls) as neutral plain data."""
    return _without_defaults(value)


def _without_defaults(obj: Any) -> Any:
    """A struct as plain data, fields equal to their default left out.

    (msgspec's own ``omit_defaults`` compares strings by identity, so a ``"image"`` read
    from JSON would be kept where the literal is dropped: one prompt, two shapes.)
    """
    if isinstance(obj, msgspec.Struct):
        out: dict[str, Any] = {}
        tag = obj.__struct_config__.tag
        if isinstance(tag, str):
            out[obj.__struct_config__.tag_field] = tag
        for f in msgspec.structs.fields(obj):
            value = getattr(obj, f.name)
            default = f.default if f.default is not msgspec.NODEFAULT else msgspec.NODEFAULT
            if default is msgspec.NODEFAULT and f.default_factory is not msgspec.NODEFAULT:
                default = f.default_factory()
            if default is not msgspec.NODEFAULT and value == default and f.required is False:
                continue
            out[f.encode_name] = _without_defaults(value)
        return out
    if isinstance(obj, list):
        return [_without_defaults(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _without_defaults(v) for k, v in obj.items()}
    return obj


def _message(m: Any, where: str) -> dict[str, Any]:
    if isinstance(m, msgspec.Struct):
        m = msgspec.to_builtins(m)
    if not isinstance(m, Mapping):
        raise MessageError(f"{where} must be a dict with a role, not {type(m).__name__}")
    role = m.get("role")
    if not isinstance(role, str):
        raise MessageError(f"{where} has no role (one of {', '.join(ROLES)})")
    role = ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        raise MessageError(f"{where} has role {role!r}; expected one of {', '.join(ROLES)}")
    where = f"{where} ({role})"
    if "parts" in m and m.get("content") is not None:
        raise MessageError(f"{where} has both parts and content; give one of them")
    raw_parts = m["parts"] if "parts" in m else m.get("content")
    if raw_parts is None:
        raw_parts = []
    elif isinstance(raw_parts, str):
        raw_parts = [raw_parts]
    elif not isinstance(raw_parts, Sequence) or isinstance(raw_parts, (bytes, Mapping)):
        raise MessageError(f"{where}: content must be a string or a list of parts")
    parts = [_part(p, f"{where} part {j}") for j, p in enumerate(raw_parts)]
    # OpenAI's spellings: an assistant's tool_calls, a tool message's tool_call_id
    for j, call in enumerate(m.get("tool_calls") or ()):
        parts.append(_openai_tool_call(call, f"{where} tool_calls[{j}]"))
    if role == "tool" and m.get("tool_call_id") is not None:
        response: Any = message_text({"parts": parts}) if parts else ""
        if any(p["type"] != "text" for p in parts):
            raise MessageError(f"{where}: a tool message with tool_call_id holds text only")
        parts = [{"type": "tool_call_response", "id": str(m["tool_call_id"]), "response": response}]
    out: dict[str, Any] = {"role": role, "parts": parts}
    if m.get("name") is not None:
        out["name"] = m["name"]
    unknown = set(m) - {"role", "parts", "content", "name", "tool_calls", "tool_call_id"}
    if unknown:
        raise MessageError(f"{where} has unknown keys {', '.join(sorted(map(str, unknown)))}")
    return _canonical(out, Message, where)


def _openai_tool_call(call: Any, where: str) -> dict[str, Any]:
    if not isinstance(call, Mapping) or not isinstance(call.get("function"), Mapping):
        raise MessageError(f"{where} must be {{'id', 'type': 'function', 'function': {{...}}}}")
    fn = call["function"]
    return _tool_call_part(call.get("id"), fn.get("name"), fn.get("arguments"), where)


def _tool_call_part(id_: Any, name: Any, arguments: Any, where: str) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise MessageError(f"{where}: a tool call needs a function name")
    if arguments is None:
        arguments = ""
    elif not isinstance(arguments, str):
        try:  # a dict given by hand: its JSON text is what a provider would carry
            arguments = json.dumps(arguments, ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise MessageError(f"{where}: tool call arguments are not JSON ({e})") from None
    part: dict[str, Any] = {"type": "tool_call", "name": name, "arguments": arguments}
    if id_ is not None:
        part["id"] = str(id_)
    return part


def _part(p: Any, where: str) -> dict[str, Any]:
    if isinstance(p, str):
        return {"type": "text", "content": p}
    if isinstance(p, msgspec.Struct):
        p = msgspec.to_builtins(p)
    if not isinstance(p, Mapping):
        raise MessageError(f"{where} must be a string or a dict, not {type(p).__name__}")
    kind = p.get("type")
    convert = _PARTS.get(kind) if isinstance(kind, str) else None
    if convert is None:
        raise MessageError(
            f"{where} has type {kind!r}; expected one of {', '.join(sorted(_PARTS))}"
        )
    part = convert(p, where)
    extra = {**(p.get("extra") or {}), **part_extra(dict(p))}
    if extra:  # cache_control, citations, ...: kept for the provider
        part["extra"] = extra
    return part


def _text(p: Mapping[str, Any], where: str) -> dict[str, Any]:
    content = p.get("content", p.get("text"))
    if not isinstance(content, str):
        raise MessageError(f"{where}: a text part needs its text as a string")
    return {"type": "text", "content": content}


def _reasoning(p: Mapping[str, Any], where: str) -> dict[str, Any]:
    if p.get("type") == "redacted_thinking":
        return {"type": "reasoning", "redacted": True, "data": p.get("data")}
    out = {k: p[k] for k in ("content", "signature", "redacted", "data") if k in p}
    if "thinking" in p:  # Anthropic's block
        out["content"] = p["thinking"]
    return {"type": "reasoning", **out}


def _tool_call(p: Mapping[str, Any], where: str) -> dict[str, Any]:
    if p.get("type") == "tool_use":  # Anthropic: the arguments are a JSON object
        return _tool_call_part(p.get("id"), p.get("name"), p.get("input", {}), where)
    return _tool_call_part(p.get("id"), p.get("name"), p.get("arguments"), where)


def _tool_response(p: Mapping[str, Any], where: str) -> dict[str, Any]:
    if p.get("type") == "tool_result":  # Anthropic
        id_, response = p.get("tool_use_id"), p.get("content")
    else:
        id_, response = p.get("id"), p.get("response")
    out: dict[str, Any] = {"type": "tool_call_response", "response": response}
    if id_ is not None:
        out["id"] = str(id_)
    if p.get("is_error"):
        out["is_error"] = True
    return out


def modality_of(mime_type: str | None) -> str:
    major = (mime_type or "").partition("/")[0]
    return major if major in ("image", "audio", "video") else "file"


def blob_part(
    data: bytes, mime_type: str | None, modality: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A neutral ``blob`` part for inline bytes: base64 ``content``, ``sha256``, ``size``."""
    part: dict[str, Any] = {
        "type": "blob",
        "modality": modality or modality_of(mime_type),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "content": base64.b64encode(data).decode("ascii"),
    }
    if mime_type:
        part["mime_type"] = mime_type
    part.update({k: v for k, v in extra.items() if v is not None})
    return part


def _blob(p: Mapping[str, Any], where: str) -> dict[str, Any]:
    content = p.get("content")
    modality = p.get("modality")
    if content is None:  # by digest only (bytes left out of the store, or to be looked up)
        if not p.get("sha256"):
            raise MessageError(f"{where}: a blob part needs its content (base64) or sha256")
        return {k: p[k] for k in ("type", "modality", "mime_type", "sha256", "size") if k in p}
    if isinstance(content, (bytes, bytearray, memoryview)):
        data = bytes(content)
    elif isinstance(content, str):
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise MessageError(f"{where}: blob content is not valid base64") from None
    else:
        raise MessageError(f"{where}: blob content must be base64 text or bytes")
    return blob_part(data, p.get("mime_type"), modality)


def parse_data_url(url: str) -> tuple[bytes, str | None] | None:
    """``(bytes, media type)`` of a ``data:`` URL; ``None`` for any other URL."""
    if not url.startswith("data:"):
        return None
    head, comma, body = url[5:].partition(",")
    if not comma:
        raise ValueError("a data: URL needs a comma before its data")
    fields = head.split(";")
    mime = fields[0] or None
    if "base64" in fields[1:]:
        try:
            return base64.b64decode(body, validate=True), mime
        except (binascii.Error, ValueError):
            raise ValueError("the data: URL's base64 is not valid") from None
    return unquote_to_bytes(body), mime


def _uri_or_blob(
    url: Any, where: str, *, mime_type: str | None = None, modality: str | None = None, **extra
) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise MessageError(f"{where}: an image or file part needs a URL")
    try:
        inline = parse_data_url(url)
    except ValueError as e:
        raise MessageError(f"{where}: {e}") from None
    if inline is not None:
        data, mime = inline
        return blob_part(data, mime or mime_type, modality or modality_of(mime or mime_type))
    part: dict[str, Any] = {"type": "uri", "modality": modality or "image", "uri": url}
    if mime_type:
        part["mime_type"] = mime_type
    part.update({k: v for k, v in extra.items() if v is not None})
    return part


def _uri(p: Mapping[str, Any], where: str) -> dict[str, Any]:
    return _uri_or_blob(
        p.get("uri"),
        where,
        mime_type=p.get("mime_type"),
        modality=p.get("modality"),
        detail=p.get("detail"),
    )


def _image_url(p: Mapping[str, Any], where: str) -> dict[str, Any]:
    """OpenAI: ``{"type": "image_url", "image_url": {"url": ..., "detail": ...}}``."""
    spec = p.get("image_url")
    if isinstance(spec, str):
        spec = {"url": spec}
    if not isinstance(spec, Mapping):
        raise MessageError(f"{where}: image_url must hold a url")
    return _uri_or_blob(spec.get("url"), where, detail=spec.get("detail"))


def _anthropic_media(p: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Anthropic: ``{"type": "image"|"document", "source": {"type": "base64"|"url", ...}}``."""
    source = p.get("source")
    modality = "image" if p.get("type") == "image" else "file"
    if not isinstance(source, Mapping):
        raise MessageError(f"{where}: an {p.get('type')} block needs a source")
    if source.get("type") == "base64":
        return _blob(
            {
                "content": source.get("data"),
                "mime_type": source.get("media_type"),
                "modality": modality,
            },
            where,
        )
    if source.get("type") == "url":
        return _uri_or_blob(source.get("url"), where, modality=modality)
    if source.get("type") == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "content": source["data"]}  # a plain-text document
    raise MessageError(f"{where}: source type {source.get('type')!r} is not base64, url or text")


_PARTS = {
    "text": _text,
    "input_text": _text,
    "output_text": _text,
    "reasoning": _reasoning,
    "thinking": _reasoning,
    "redacted_thinking": _reasoning,
    "tool_call": _tool_call,
    "tool_use": _tool_call,
    "tool_call_response": _tool_response,
    "tool_result": _tool_response,
    "blob": _blob,
    "uri": _uri,
    "image_url": _image_url,
    "image": _anthropic_media,
    "document": _anthropic_media,
}


# --- tools ------------------------------------------------------------------------------------


def _tool(t: Any, where: str) -> dict[str, Any]:
    if isinstance(t, msgspec.Struct):
        t = msgspec.to_builtins(t)
    if not isinstance(t, Mapping):
        raise MessageError(f"{where} must be a dict, not {type(t).__name__}")
    spec = dict(t)
    kind = spec.pop("type", "function")
    if isinstance(spec.get("function"), Mapping):  # OpenAI: {"type": "function", "function": {}}
        spec = {**spec.pop("function"), **spec}
    name = spec.pop("name", None)
    if not isinstance(name, str) or not name:
        raise MessageError(f"{where} has no name")
    out: dict[str, Any] = {"name": name, "type": kind}
    if spec.get("description") is not None:
        out["description"] = spec.pop("description")
    spec.pop("description", None)
    parameters = spec.pop("parameters", None)
    if parameters is None:
        parameters = spec.pop("input_schema", None)  # Anthropic
    if parameters is not None:
        out["parameters"] = parameters
    extra = dict(spec.pop("extra", None) or {})
    extra.update(spec)  # strict, cache_control, ...: kept for the provider
    if extra:
        out["extra"] = extra
    return _canonical(out, ToolDefinition, f"{where} ({name})")


# --- what a result carries --------------------------------------------------------------------


def normalize_tool_calls(calls: Sequence[Any], where: str = "tool_calls") -> list[dict[str, Any]]:
    """Tool calls of a result in neutral form (also OpenAI's and Anthropic's spellings)."""
    out = []
    for i, call in enumerate(calls or ()):
        here = f"{where}[{i}]"
        if isinstance(call, msgspec.Struct):
            call = msgspec.to_builtins(call)
        if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
            out.append(_openai_tool_call(call, here))
        elif isinstance(call, Mapping):
            out.append(_tool_call({"type": "tool_call", **call}, here))
        else:
            raise MessageError(f"{here} must be a dict, not {type(call).__name__}")
    return out


def normalize_reasoning(blocks: Sequence[Any], where: str = "reasoning") -> list[dict[str, Any]]:
    """Reasoning blocks of a result in neutral form (strings are thinking text)."""
    out = []
    for i, block in enumerate(blocks or ()):
        if isinstance(block, str):
            block = {"type": "reasoning", "content": block}
        elif isinstance(block, msgspec.Struct):
            block = msgspec.to_builtins(block)
        if not isinstance(block, Mapping):
            raise MessageError(f"{where}[{i}] must be a dict, not {type(block).__name__}")
        out.append(_reasoning({"type": "reasoning", **block}, f"{where}[{i}]"))
    return out
