"""Run the InstaMsg sandbox on its own port: ``python -m sandbox --port 8081``.

Then point the connector at it with ``INSTAMSG_API_URL=http://127.0.0.1:8081``.
``python -m sandbox --reset`` empties its data and exits.
"""

import argparse
import os
import sys
from pathlib import Path

from werkzeug.serving import run_simple

from sandbox.app import create_sandbox_app
from sandbox.http import DEMO_APPS
from sandbox.store import Store


def apps(text: str) -> dict:
    """``key:secret,key2:secret2`` (SANDBOX_APPS, as the connector reads it) on top of the
    demo app."""
    found = dict(DEMO_APPS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, secret = item.partition(":")
        if not (sep and key and secret):
            raise argparse.ArgumentTypeError("give a comma-separated list of key:secret")
        found[key] = secret
    return found


def main(argv=None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument(
        "--data-dir",
        default=env.get("INSTAMSG_DATA_DIR", "").strip() or "data",
        help="where sandbox.sqlite3 lives (INSTAMSG_DATA_DIR)",
    )
    parser.add_argument(
        "--apps",
        type=apps,
        default=env.get("SANDBOX_APPS", ""),
        help="more apps, key:secret,... (SANDBOX_APPS)",
    )
    parser.add_argument(
        "--token-ttl",
        type=int,
        default=int(env.get("SANDBOX_TOKEN_TTL", "") or 3600),
        help="seconds a token lives (SANDBOX_TOKEN_TTL)",
    )
    parser.add_argument("--reset", action="store_true", help="delete all sandbox data and exit")
    args = parser.parse_args(argv)

    store = Store(Path(args.data_dir) / "sandbox.sqlite3")
    if args.reset:
        store.reset()
        print(f"sandbox data in {store.path} reset")
        return 0
    app = create_sandbox_app(store, apps=args.apps, token_ttl=args.token_ttl)
    print(
        f"InstaMsg sandbox on http://{args.host}:{args.port} (data: {store.path}); "
        "demo credentials demo-key / demo-secret",
        flush=True,
    )
    run_simple(args.host, args.port, app, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
