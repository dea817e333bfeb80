# The app image. Builder: the locked runtime dependencies in a virtualenv. Runtime: that venv
# and the app, run as a numeric non-root user. No tests, dev tools or secrets go in.
FROM python:3.12-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    ENVIRONMENT=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    WORKERS=1
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY pyproject.toml alembic.ini prestart.sh run.sh ./
COPY alembic ./alembic
COPY app ./app
# Compiled now, because at run time the code is read-only and nothing writes bytecode.
RUN python -m compileall -q app alembic \
    && mkdir -p /app/data \
    && chown 10001:10001 /app/data
USER 10001:10001
EXPOSE 8000
# Host "localhost", like the Kubernetes probes: keep it in ALLOWED_HOSTS when you narrow that.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; r = u.Request('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), headers={'Host': 'localhost'}); sys.exit(u.urlopen(r, timeout=2).status != 200)"]
CMD ["bash", "run.sh"]
