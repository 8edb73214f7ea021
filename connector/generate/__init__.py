"""What is generated from the registry and the schemas, and checked fresh by `make check`:
manifest.json, openapi.json, docs/blocks.md, the recorded samples, and the n8n and Zapier
packages (`python -m connector.generate`)."""
