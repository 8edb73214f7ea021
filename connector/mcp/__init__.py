"""Every block as a tool of an MCP (Model Context Protocol) server, for AI agents.

``flask --app app blocks mcp`` serves it over stdio (docs/mcp.md). The pieces:

* ``schema``: a block's ``inputSchema`` and ``outputSchema`` from the OpenAPI document;
* ``tools``: the tool list, and an envelope turned into a tool result;
* ``runners``: where a block runs: in this process, or on a deployed connector;
* ``server``: the official SDK's low-level server around them, on stdio.

Importing this package loads nothing of the SDK: the connector's other faces (gunicorn,
the rest of the CLI) never pay for it.
"""
