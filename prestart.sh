#!/usr/bin/env bash
# Before the server starts: wait for the database, apply migrations, seed first data
# (app/backend_pre_start.py, alembic upgrade head, app/initial_data.py, in one process).
set -euo pipefail
cd "$(dirname "$0")"

python -m app.prestart
