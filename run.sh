#!/usr/bin/env bash
# Prepare the database, then serve. HOST, PORT and WORKERS come from the environment, else .env.
set -euo pipefail
cd "$(dirname "$0")"

# One Python start for both: .env fills what the process environment leaves unset, as for the
# app's settings; a busy port stops here with a hint instead of uvicorn's bare errno.
settings=$(python - <<'PY'
import errno, os, shlex, socket, sys
from dotenv import dotenv_values
dev = os.environ.get("RELOAD") == "1"
env = {"HOST": "127.0.0.1" if dev else "0.0.0.0", "PORT": "8000", "WORKERS": "1"}
env |= {k: v for k, v in dotenv_values(".env").items() if k in env and v}
env |= {k: os.environ[k] for k in env if os.environ.get(k)}
port = int(env["PORT"]) if env["PORT"].isdigit() else 0
with socket.socket(socket.AF_INET6 if ":" in env["HOST"] else socket.AF_INET) as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((env["HOST"], port))
    except OSError as exc:  # anything else is left for the server to report
        if exc.errno == errno.EADDRINUSE:
            sys.exit(f"run.sh: port {port} on {env['HOST']} is already in use (another server "
                     f"still running?): stop it, or set another, say PORT={port + 1}")
print("\n".join(f"{k}={shlex.quote(v)}" for k, v in env.items()))
PY
)
eval "$settings"

if [ "${RELOAD:-}" = 1 ]; then  # scripts/dev.py dev: one process that restarts on code changes
    bash ./prestart.sh
    exec fastapi dev --host "$HOST" --port "$PORT" "$@"
fi
# Workers share metrics through files here; a previous run's files would be counted again.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete
fi
# prestart.sh prepares the database, then serves from the same Python process.
# Proxy headers are honoured only from FORWARDED_ALLOW_IPS (uvicorn's default: 127.0.0.1).
# The protocol bounds how large and how slow a request's arrival may be (app/server.py).
exec bash ./prestart.sh uvicorn app.main:app \
    --host "${HOST:-0.0.0.0}" \
    --port "${PORT:-8000}" \
    --workers "${WORKERS:-1}" \
    --proxy-headers \
    --http app.server:BoundedHttpToolsProtocol \
    "$@"
