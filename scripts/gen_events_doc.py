"""Regenerate docs/events.md from llm_events/log/events.py: python scripts/gen_events_doc.py"""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from llm_events.log import conversation as cv
from llm_events.log import events as ev


def type_name(t: msgspec.inspect.Type) -> str:
    if isinstance(t, msgspec.inspect.UnionType):
        return " or ".join(type_name(x) for x in t.types)
    if isinstance(t, msgspec.inspect.ListType):
        return f"list[{type_name(t.item_type)}]"
    if isinstance(t, msgspec.inspect.DictType):
        return f"dict[{type_name(t.key_type)}, {type_name(t.value_type)}]"
    if isinstance(t, msgspec.inspect.StructType):
        return t.cls.__name__
    name = type(t).__name__.removesuffix("Type").lower()
    return {"none": "null", "any": "any"}.get(name, name)


def default(f: msgspec.inspect.Field) -> str:
    if f.required:
        return "required"
    if f.default is not msgspec.NODEFAULT:
        return f"`{f.default!r}`"
    return f"`{f.default_factory()!r}`"


HEAD = """# Events and the store contract

Generated from `llm_events/log/events.py` by `scripts/gen_events_doc.py`. Field names and types
are the contract: fields are only ever added, with defaults; none is renamed, removed or
repurposed. Every event also has `type` (the tag), `id` (UUIDv7, time-ordered), `ts`
(ISO-8601 UTC with microseconds and `Z`) and `v` (the schema version that wrote it). Event
types written by a newer version decode as `UnknownEvent` and are skipped by projections.
"""

#: Nested structs events hold, documented after the events (docs/conversations.md says how
#: a conversation is written).
NESTED = (
    ev.ContextItem,
    cv.Message,
    cv.TextPart,
    cv.ReasoningPart,
    cv.ToolCallPart,
    cv.ToolCallResponsePart,
    cv.BlobPart,
    cv.UriPart,
    cv.ToolDefinition,
)


def versions() -> str:
    """The schema version this code writes, and what each version added (from events.py)."""
    import inspect

    lines, _ = inspect.getsourcelines(ev)
    notes: list[str] = []
    start = next(i for i, line in enumerate(lines) if "Bump when adding fields" in line)
    for line in lines[start + 1 :]:
        if not line.startswith("#:"):
            break
        text = line[2:].strip()
        if text[:2].rstrip(":").isdigit() and ":" in text[:3]:
            notes.append(f"- **{text.split(':', 1)[0]}**:{text.split(':', 1)[1]}")
        elif notes:
            notes[-1] += " " + text
    return (
        f"## Schema versions\n\nThis version writes event schema **{ev.EVENT_SCHEMA_VERSION}** "
        "(the `v` field). Events of every earlier version decode and project as they did: "
        "the fields added since have defaults.\n\n"
        "- **1**: the first schema.\n" + "\n".join(notes) + "\n"
    )


TAIL = """## Tables

| table | what | rebuilt by `llm-events rebuild` |
|---|---|---|
| `events` | the log: `seq` (commit order), `id`, `type`, `call_id` (the call or replay the event belongs to), `ts`, `payload` (JSON), `prev_hash`, `hash` | never: it is the truth |
| `calls` | one row per logical call: status (`running`, `ok`, `error`), attempts, failures, retries, fallbacks, route, backend, model, tokens, cost, latency, error, previews, `source` (`application`, `replay`, `import`, `proxy`, `transport`: from `call_started.source`, derived for older events) | yes |
| `prompts` | the seed's PromptDB: one row per answered call (+ `call_id`, `system`, `tool_calls`: the answer's tool calls, one `name(arguments)` a line); `prompts_fts` indexes `text`, `response_text` and `tool_calls`, in batches of 64 answers (at most a second behind once appends pause) | yes |
| `tool_calls` | one row per tool call of an answer (`attempt_succeeded` with `tool_calls`): `seq`, `ts`, `call_id`, `attempt`, `position`, `tool_call_id`, `name`, `arguments` as sent; a table since it replaced a view of the same name (a store that has the view gets the table when a writer opens it) | yes |
| `replay_results` | one row per compared call of a replay run | yes |
| `replays` | one row per replay run: status, counts per verdict, resumes | yes |
| `blobs` | inline images and files of conversations, once per `sha256` (`mime_type`, `size`, `data`), written in the transaction of the first event naming them; empty with `configure(store_blobs=False)` | no: events hold only digests |
| `_meta` | the chain head (`head` = `seq:hash`), the last `prompts.id` in `prompts_fts` (`prompts_fts_indexed`), and while a rebuild runs the work it does at its end (`deferred_indexes`: the SQL of the indexes it makes then, and setting the search index's FTS5 options back to their defaults; the next process to open the file does it if the rebuild was killed) | no |
| `_projections` | each projection's checkpoint: its `version` and `last_seq`, the last event it applied (moved in the same transaction as the rows it wrote) | yes |

How the tables follow the log (store schema 3): an append commits its events and `_meta.head`
only. Each projection applies the events after its `last_seq`, in batches: on the background
thread of the one writing process that follows the file once appends pause (2 ms; at most 50
ms behind under a steady stream), at flush, close and exit, when a process opens the store, and
before the library and the reading commands read them. The follower holds a `flock` on the
file `<store>-follower` beside the store and watches for every process's commits; the others'
background threads leave the projections to it, take its role when it ends (the kernel
releases the lock of a killed process) and catch up themselves if it applies nothing for
0.5 s. Where `flock` fails, each writing process follows after its own appends, as before. So a projection row always belongs to a committed event, a
crash at any moment leaves every checkpoint true, and after catching up every projection
equals what `rebuild` derives. `max(events.seq) - min(_projections.last_seq)` is how far the
tables are behind.

`PRAGMA user_version` is the store schema version; `PRAGMA application_id` is `0x4C4C4D45`.
"""


def fields_table(cls: type, skip: tuple[str, ...] = ()) -> list[str]:
    info = msgspec.inspect.type_info(cls)
    out = ["| field | type | default |", "|---|---|---|"]
    for f in info.fields:
        if f.name not in skip:
            out.append(f"| `{f.name}` | {type_name(f.type)} | {default(f)} |")
    return out


def _doc(cls: type) -> str:
    import inspect

    return inspect.cleandoc(cls.__doc__ or "")


def render() -> str:
    out = [HEAD, versions()]
    for cls in ev.EVENT_TYPES:
        out.append(f"## `{cls.type_name}`\n\n{_doc(cls)}\n")
        out.extend(fields_table(cls, ("id", "ts", "v")))
        out.append("")
    out.append(
        "## Nested values\n\nWhat events hold inside their fields. Parts of a message carry "
        "their kind in `type`; fields equal to their default may be left out. How a "
        "conversation is written: docs/conversations.md.\n"
    )
    for cls in NESTED:
        tag = cls.__struct_config__.tag
        title = f"`{cls.__name__}`" + (f" (`type` = `{tag}`)" if isinstance(tag, str) else "")
        out.append(f"### {title}\n\n{_doc(cls)}\n")
        out.extend(fields_table(cls))
        out.append("")
    out.append(TAIL)
    return "\n".join(out)


if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "docs" / "events.md"
    target.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")
