"""Write or check every generated document and integration package:
``python -m connector.generate``.

``--check`` fails when a committed file is stale (``make check``); ``--record-samples`` first
runs every block against the sandbox and keeps what each answered (``make samples``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from connector.generate import manifest, markdown, n8n, openapi, samples, zapier

#: The packages generated from manifest.json for the tools our users build in: each
#: ``main([])`` writes its folder under integrations/, ``main(["--check"])`` checks it.
INTEGRATIONS = (n8n, zapier)

ROOT = Path(__file__).resolve().parents[2]
MANIFEST_FILE = ROOT / "manifest.json"
OPENAPI_FILE = ROOT / "openapi.json"
BLOCKS_DOC = ROOT / "docs" / "blocks.md"


def documents() -> dict[Path, str]:
    """Every generated file, by its path, as it should read now."""
    document = manifest.build_manifest()
    return {
        MANIFEST_FILE: manifest.render(document),
        OPENAPI_FILE: manifest.render(openapi.build_openapi()),
        BLOCKS_DOC: markdown.blocks_markdown(document),
    }


def main(argv=None) -> int:
    import blocks  # noqa: F401  (registers every block)

    argv = sys.argv[1:] if argv is None else argv
    if "--record-samples" in argv:
        samples.SAMPLES_FILE.write_text(manifest.render(samples.record_samples()))
        samples.recorded.cache_clear()
        print(f"wrote {samples.SAMPLES_FILE.relative_to(ROOT)}")
    outputs = documents()
    if "--check" in argv:
        stale = [
            str(path.relative_to(ROOT))
            for path, text in outputs.items()
            if not path.exists() or path.read_text() != text
        ]
        if stale:
            print("stale: " + ", ".join(stale) + " (run: make manifest)", file=sys.stderr)
        # Checked from the committed manifest.json, as they are generated from it.
        failed = [package for package in INTEGRATIONS if package.main(["--check"]) != 0]
        if stale or failed:
            return 1
        print("every generated document is up to date")
        return 0
    for path, text in outputs.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    for package in INTEGRATIONS:
        package.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
