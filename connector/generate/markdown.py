"""docs/blocks.md: every block, its arguments and its result, from the manifest."""

from __future__ import annotations

import json


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _limits(arg: dict) -> str:
    parts = []
    if "options" in arg:
        parts.append("one of " + ", ".join(f"`{o}`" for o in arg["options"]))
    for key, label in (("minimum", "min"), ("maximum", "max"), ("default", "default")):
        if key in arg:
            parts.append(f"{label} `{json.dumps(arg[key])}`")
    if "maxBytes" in arg:
        parts.append(f"at most {arg['maxBytes']:,} bytes")
    return "; ".join(parts)


def blocks_markdown(document: dict) -> str:
    """docs/blocks.md: every block, its arguments and its result, from the manifest."""
    lines = [
        "# Blocks",
        "",
        "Generated from the schemas by `make manifest` (do not edit; a test checks it is fresh).",
        "Every block runs with `POST /blocks/<name>`; see the README for bodies and envelopes.",
        "",
    ]
    by_tag: dict[str, list] = {}
    for blk in document["blocks"]:
        by_tag.setdefault(blk.get("tag", "other"), []).append(blk)
    for tag, blks in by_tag.items():
        lines += [
            f"- **{tag}**: " + ", ".join(f"[{b['name']}](#{b['name'].lower()})" for b in blks)
        ]
    for blk in document["blocks"]:
        lines += ["", f"## {blk['name']}", "", blk["description"]]
        rules = [
            "Give " + ", or ".join(" and ".join(f"`{n}`" for n in g) for g in group) + "."
            for group in blk.get("oneOf") or []
        ]
        if blk.get("atLeastOne"):
            rules.append(
                "Give at least one of: " + ", ".join(f"`{n}`" for n in blk["atLeastOne"]) + "."
            )
        if rules:
            lines += ["", *rules]
        lines += [
            "",
            "| argument | type | required | allowed | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for arg in blk["args"]:
            lines.append(
                f"| `{arg['name']}` | {arg['type']} | {'yes' if arg.get('required') else 'no'} "
                f"| {_cell(_limits(arg))} | {_cell(arg.get('info', ''))} |"
            )
        outputs = blk.get("outputs") or {}
        if outputs.get("fields"):
            kind = "a list of objects with" if outputs.get("type") == "list" else "an object with"
            lines += ["", f"Answers, under `contextWrites.{outputs.get('key', 'to')}`, {kind}:", ""]
            lines += ["| field | type | sample | description |", "| --- | --- | --- | --- |"]
            for out in outputs["fields"]:
                sample = json.dumps(out.get("sample"), ensure_ascii=False)
                lines.append(
                    f"| `{out['name']}` | {out.get('type', '')} | `{_cell(sample)[:60]}` "
                    f"| {_cell(out.get('info', ''))} |"
                )
    return "\n".join(lines) + "\n"
