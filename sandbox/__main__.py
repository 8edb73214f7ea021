"""Run the InstaMsg sandbox on its own port: ``python -m sandbox --port 8081``.

Then point the connector at it with ``INSTAMSG_API_URL=http://127.0.0.1:8081``.
``python -m sandbox --reset`` empties its data and exits.
"""

import argparse
import sys
from pathlib import Path

from werkzeug.serving import run_simple

from connector.config import Settings
from sandbox.app import create_sandbox_app
from sandbox.store import Store


def main(argv=None) -> int:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--data-dir", default=settings.data_dir, help="where sandbox.sqlite3 lives")
    parser.add_argument("--reset", action="store_true", help="delete all sandbox data and exit")
    args = parser.parse_args(argv)

    store = Store(Path(args.data_dir) / "sandbox.sqlite3")
    if args.reset:
        store.reset()
        print(f"sandbox data in {store.path} reset")
        return 0
    app = create_sandbox_app(
        store, apps=settings.sandbox_apps, token_ttl=settings.sandbox_token_ttl
    )
    print(
        f"InstaMsg sandbox on http://{args.host}:{args.port} (data: {store.path}); "
        "demo credentials demo-key / demo-secret",
        flush=True,
    )
    run_simple(args.host, args.port, app, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
