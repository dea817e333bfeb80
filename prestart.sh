#!/usr/bin/env bash
# Before the server starts: wait for the database, apply migrations, seed first data
# (app/backend_pre_start.py, alembic upgrade head, app/initial_data.py, in one process).
# Given a command, it then runs it in that process's place: `prestart.sh uvicorn ...` (run.sh)
# serves from the same Python process, which has the app's heaviest imports loaded already.
set -euo pipefail
cd "$(dirname "$0")"

exec python -m app.prestart "$@"
