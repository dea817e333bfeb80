#!/usr/bin/env bash
# Prepare the database, then serve. HOST, PORT and WORKERS come from the environment.
set -euo pipefail
cd "$(dirname "$0")"

bash ./prestart.sh
# Workers share metrics through files here; a previous run's files would be counted again.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete
fi
# Proxy headers are honoured only from FORWARDED_ALLOW_IPS (uvicorn's default: 127.0.0.1).
# The protocol bounds how large and how slow a request's arrival may be (app/server.py).
exec uvicorn app.main:app \
    --host "${HOST:-0.0.0.0}" \
    --port "${PORT:-8000}" \
    --workers "${WORKERS:-1}" \
    --proxy-headers \
    --http app.server:BoundedHttpToolsProtocol \
    "$@"
