"""The connector's documents as MCP resources: what an agent may read before it calls a tool.

The manifest and the block reference come from the same code that writes manifest.json and
docs/blocks.md (connector/generate), built the first time one is read; the MCP guide is
docs/mcp.md as committed. Nothing here is secret: the same documents are open on the HTTP
face (GET /manifest.json) and in the repository.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mcp_types import Resource, TextResourceContents

from connector.generate import manifest, markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"


@dataclass(frozen=True)
class Document:
    uri: str
    name: str
    mime_type: str
    description: str
    text: Callable[[], str]


@cache
def manifest_text() -> str:
    return manifest.render(manifest.manifest())


@cache
def blocks_text() -> str:
    return markdown.blocks_markdown(manifest.manifest())


def mcp_guide_text() -> str:
    return (DOCS / "mcp.md").read_text()


DOCUMENTS = (
    Document(
        "instamsg://manifest.json",
        "manifest",
        "application/json",
        "Every block as data: its name, group, method, arguments (types, limits, options) "
        "and result fields. The same file the connector serves at GET /manifest.json.",
        manifest_text,
    ),
    Document(
        "instamsg://docs/blocks.md",
        "blocks",
        "text/markdown",
        "The block reference in prose: what each block does, its arguments and its result.",
        blocks_text,
    ),
    Document(
        "instamsg://docs/mcp.md",
        "mcp-guide",
        "text/markdown",
        "How to use these tools: authentication, held credentials, idempotencyKey, errors.",
        mcp_guide_text,
    ),
)
BY_URI = {document.uri: document for document in DOCUMENTS}


def listed() -> list[Resource]:
    return [
        Resource(uri=d.uri, name=d.name, mime_type=d.mime_type, description=d.description)
        for d in DOCUMENTS
    ]


def read(uri: str) -> TextResourceContents | None:
    """The document at ``uri``, or None when there is none."""
    document = BY_URI.get(uri)
    if document is None:
        return None
    return TextResourceContents(uri=uri, mime_type=document.mime_type, text=document.text())
