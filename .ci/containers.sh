#!/usr/bin/env bash
# CI: the deployment files checked for real, offline and on loopback only (shared/containers.md):
# static checks (hadolint, compose config, kubernetes-validate, nginx -t); the repo's nginx config
# in front of two app instances; the real Dockerfile built on a stand-in base image and run; the
# compose stack on stand-in images. Needs root, python3, and the machine's PostgreSQL and Redis;
# installs the rest. Stops everything it starts, and drops what it creates, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PG_SERVER_URL="${CI_POSTGRES_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/postgres}"
REDIS_HOST_PORT="${CI_REDIS_ADDRESS:-127.0.0.1:6379}"
CACHE=/var/cache/recipe-service-ci
SUITE=bookworm
# One root filesystem serves every stand-in image: the app's Python and compose's services.
BASE_PACKAGES=python3,python3-venv,ca-certificates,postgresql-15,redis-server,nginx-light
BASE_IMAGE=local/debian-base:$SUITE

W=$(mktemp -d /tmp/recipe-deploy-ci.XXXXXX)
LOGS=$W/logs
mkdir -p "$LOGS"
PY="$ROOT/.venv/bin/python"
CHECK=("$PY" "$ROOT/.ci/deploy_check.py")
DOCKERD_PID=""
COMPOSE_PROJECT=""
CONTAINERS=()
DATABASES=()
REDIS_DB=""
BASE_TMP=""
STARTED=$SECONDS
LAST=$SECONDS

section() {
    printf '\n==== %s ====  (previous step %ss, %ss in all)\n' "$*" "$((SECONDS - LAST))" \
        "$((SECONDS - STARTED))"
    LAST=$SECONDS
}

# Logs may name the package mirror or index; what is kept shows no host names.
MIRROR_HOST=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -E 's#^[a-z]+://([^/]+).*#\1#' || true)
redact() {
    sed -E -e 's#([a-z]+://)[^/ ]+#\1<host>#g' -e "s#host='[^']+'#host='<host>'#g" |
        if [ -n "$MIRROR_HOST" ]; then sed "s#${MIRROR_HOST//./\\.}#<mirror>#g"; else cat; fi
}

# Run a noisy command with its output in a log; on failure show the log's tail, redacted.
quiet() {
    local log="$LOGS/$1.log"
    shift
    if ! "$@" >"$log" 2>&1; then
        echo "FAILED: $* (last lines of its log):" >&2
        tail -n 40 "$log" | redact >&2
        return 1
    fi
}

# A mirror or index that fails once gets one more try.
retry_once() {
    local name=$1
    shift
    quiet "$name" "$@" || {
        echo "retrying once: $name"
        sleep 5
        quiet "$name-retry" "$@"
    }
}

cleanup() {
    local rc=$? began=$SECONDS
    set +e
    trap - EXIT INT TERM
    if [ -n "$COMPOSE_PROJECT" ]; then
        compose down --volumes --remove-orphans --timeout 10 >"$LOGS/compose-down.log" 2>&1
    fi
    for id in "${CONTAINERS[@]}"; do
        docker rm -f "$id" >/dev/null 2>&1
    done
    if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        kill "$DOCKERD_PID"
        for _ in $(seq 60); do
            kill -0 "$DOCKERD_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$DOCKERD_PID" 2>/dev/null && kill -9 "$DOCKERD_PID"
    fi
    for url in "${DATABASES[@]}"; do
        "${CHECK[@]}" db-drop "$url" || echo "could not drop a CI database" >&2
    done
    if [ -n "$REDIS_DB" ]; then
        redis-cli -h "${REDIS_HOST_PORT%:*}" -p "${REDIS_HOST_PORT##*:}" -n "$REDIS_DB" \
            flushdb >/dev/null
    fi
    # Whatever dockerd or debootstrap left mounted under the work dir, deepest first.
    awk -v w="$W" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
    rm -rf "$W" ${BASE_TMP:+"$BASE_TMP"}
    echo "containers: stopped and removed everything this script started ($((SECONDS - began))s)"
    if [ "$rc" -ne 0 ]; then
        echo "containers: FAILED (exit $rc) after $((SECONDS - STARTED))s" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

compose() {
    docker compose -p "$COMPOSE_PROJECT" -f docker-compose.yml -f deploy/compose.ci.yml "$@"
}

section "Deployment tools"
[ "$(id -u)" = 0 ] || { echo "containers.sh needs root (apt-get, dockerd)" >&2; exit 1; }
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v nginx >/dev/null || need+=(nginx-light)
command -v openssl >/dev/null || need+=(openssl)
command -v redis-cli >/dev/null || need+=(redis-tools)
if [ "${#need[@]}" -gt 0 ]; then
    echo "apt-get install ${need[*]}"
    # Installing must not start dockerd or nginx on the host: no service starts during it.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
    fi
    retry_once apt-update apt-get update
    retry_once apt-install env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${need[@]}"
    [ -z "$policy" ] || rm -f "$policy"
fi
python3 scripts/dev.py install
python3 -m venv "$W/tools"
retry_once pip-tools "$W/tools/bin/python" -m pip install --disable-pip-version-check \
    -r .ci/deploy-tools.txt
export PATH="$W/tools/bin:$PATH"
# The Compose v2 binary itself, as a docker CLI plugin (the package's wrapper always exits 0).
export DOCKER_CONFIG="$W/docker-config"
mkdir -p "$DOCKER_CONFIG/cli-plugins"
ln -s "$("$W/tools/bin/python" -c 'import compose, os; print(os.path.dirname(compose.__file__))')/docker-compose" \
    "$DOCKER_CONFIG/cli-plugins/docker-compose"
docker compose version
hadolint --version
nginx -v 2>&1

section "Static checks: ruff and mypy on the CI checker, hadolint, compose config, k8s, nginx -t"
.venv/bin/ruff check .ci/deploy_check.py
.venv/bin/ruff format --check .ci/deploy_check.py
.venv/bin/mypy .ci/deploy_check.py
hadolint Dockerfile && echo "hadolint: Dockerfile clean at warning level"

SECRET_KEY=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')
POSTGRES_PASSWORD=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')
FIRST_SUPERUSER_PASSWORD=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(16))')
ALLOWED_HOSTS=localhost,127.0.0.1
export SECRET_KEY POSTGRES_PASSWORD FIRST_SUPERUSER_PASSWORD ALLOWED_HOSTS
if env -u SECRET_KEY docker compose config -q 2>/dev/null; then
    echo "docker-compose.yml accepted a missing SECRET_KEY" >&2
    exit 1
fi
docker compose config -q && echo "docker compose config: valid; refuses to start without secrets"
# The development stack needs no secrets. Validated only: Mailpit has no stand-in image here,
# and its bridge network and published ports are what CI's host-network rule forbids.
env -u SECRET_KEY -u POSTGRES_PASSWORD -u FIRST_SUPERUSER_PASSWORD \
    docker compose -f compose.dev.yml config -q &&
    echo "docker compose -f compose.dev.yml config: valid without any secret (not started here)"

"$W/tools/bin/python" - <<'PY'
# Every manifest is listed in the kustomization, and the kustomization lists only real files.
import pathlib, sys, yaml
k8s = pathlib.Path("deploy/k8s")
listed = set(yaml.safe_load((k8s / "kustomization.yaml").read_text())["resources"])
present = {p.name for p in k8s.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
if listed != present:
    sys.exit(f"deploy/k8s: kustomization lists {sorted(listed)}, folder has {sorted(present)}")
PY
manifests=()
for file in deploy/k8s/*.yaml; do
    [ "$file" = deploy/k8s/kustomization.yaml ] || manifests+=("$file")
done
kubernetes-validate --strict "${manifests[@]}"
"$W/tools/bin/python" - "$W/k8s.env" <<'PY'
# What the pods rely on, checked against each other; the ConfigMap becomes the env of the
# container run below, as Kubernetes would pass it.
import pathlib, sys, yaml
k8s = pathlib.Path("deploy/k8s")
config = yaml.safe_load((k8s / "configmap.yaml").read_text())["data"]
pod = yaml.safe_load((k8s / "deployment.yaml").read_text())["spec"]["template"]["spec"]
job = yaml.safe_load((k8s / "migrate-job.yaml").read_text())["spec"]["template"]["spec"]
app, = pod["containers"]
allowed = config["ALLOWED_HOSTS"].split(",")
for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
    headers = {h["name"]: h["value"] for h in app[kind]["httpGet"].get("httpHeaders", [])}
    if headers.get("Host") not in allowed:
        sys.exit(f"{kind} sends Host {headers.get('Host')!r}, not in ALLOWED_HOSTS {allowed}")
if job["containers"][0]["command"] != ["bash", "prestart.sh"]:
    sys.exit("the migrate Job no longer runs prestart.sh")
mounts = {m["mountPath"] for m in app["volumeMounts"]}
if not app["securityContext"]["readOnlyRootFilesystem"] or "/tmp" not in mounts:
    sys.exit("the pod should run read-only with /tmp on an emptyDir")
pathlib.Path(sys.argv[1]).write_text("".join(f"{k}={v}\n" for k, v in config.items()))
print("k8s: probes send a Host the app allows; the Job runs prestart; read-only root, /tmp mounted")
PY

read -r http_port https_port port1 port2 < <("${CHECK[@]}" ports 4)
bash deploy/make-certs.sh "$W/certs" >/dev/null
"${CHECK[@]}" nginx-conf "$W/nginx-t" --http-port "$http_port" --https-port "$https_port" \
    --upstream "127.0.0.1:$port1" --upstream "127.0.0.1:$port2" --certs "$W/certs" \
    --run-dir "$W/nginx-t"
nginx -t -q -p "$W/nginx-t" -c "$W/nginx-t/nginx.conf" && echo "nginx -t: the repo's config is valid"

section "nginx balancing two app instances (host processes, loopback)"
REDIS_DB=$(redis-cli -h "${REDIS_HOST_PORT%:*}" -p "${REDIS_HOST_PORT##*:}" info keyspace |
    "$PY" -c '
import random, re, sys
used = {int(n) for n in re.findall(r"^db(\d+):", sys.stdin.read(), re.MULTILINE)}
free = [n for n in range(1, 16) if n not in used]
print(random.choice(free) if free else "")')
[ -n "$REDIS_DB" ] || { echo "no empty Redis database to use" >&2; exit 1; }
"${CHECK[@]}" balance --pg "$PG_SERVER_URL" --redis "redis://$REDIS_HOST_PORT/$REDIS_DB" \
    --work "$W/balance"

section "Base root filesystem for the stand-in images (cached in $CACHE)"
# debootstrap with the mirror from the machine's own apt sources, which is written nowhere:
# what would name it (apt sources and lists, debootstrap's log) stays out of the tarball.
build_base() {
    local mirror host
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null ||
        awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$mirror" ] || { echo "no Debian mirror in /etc/apt/sources*" >&2; return 1; }
    bootstrap() {
        rm -rf "$W/rootfs"
        debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$W/rootfs" "$mirror"
    }
    retry_once debootstrap bootstrap
    echo "# stand-in image: no package sources" >"$W/rootfs/etc/apt/sources.list"
    rm -rf "$W/rootfs/var/lib/apt/lists/"* "$W/rootfs/var/cache/apt/"*.bin \
        "$W/rootfs/var/log/bootstrap.log" "$W/rootfs/etc/postgresql/15" \
        "$W/rootfs/var/lib/postgresql/15"
    host=$(sed -E 's#^[a-z]+://([^/]+).*#\1#' <<<"$mirror")
    if grep -rlsF "$host" "$W/rootfs/etc" "$W/rootfs/var" >"$LOGS/mirror-traces.txt"; then
        echo "the root filesystem still names the mirror in $(wc -l <"$LOGS/mirror-traces.txt") files" >&2
        return 1
    fi
    tar -C "$W/rootfs" -cf "$1" .
    rm -rf "$W/rootfs"
}
mkdir -p "$CACHE"
key=$( (echo "$SUITE $BASE_PACKAGES"; declare -f build_base) | sha256sum | cut -c1-12)
tarball="$CACHE/debian-$SUITE-$key.tar"
if [ -s "$tarball" ]; then
    echo "cached: $tarball"
else
    BASE_TMP="$tarball.tmp.$$"
    build_base "$BASE_TMP"
    mv "$BASE_TMP" "$tarball"
    BASE_TMP=""
    find "$CACHE" -name 'debian-*.tar' ! -name "${tarball##*/}" -delete
    echo "built and cached: $tarball"
fi

section "Docker engine (host network only: no bridge, no iptables)"
export DOCKER_HOST="unix://$W/docker.sock"
dockerd --host "$DOCKER_HOST" --data-root "$W/docker-data" --exec-root "$W/docker-exec" \
    --pidfile "$W/dockerd.pid" --bridge=none --iptables=false \
    >"$LOGS/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$LOGS/dockerd.log" >&2; exit 1; }
    sleep 0.5
done
docker version --format 'dockerd {{.Server.Version}}, API {{.Server.APIVersion}}'

section "Stand-in images (no registry here)"
docker import "$tarball" "$BASE_IMAGE" >/dev/null
mkdir -p "$W/standin-python/ca"
cp .ci/standins/python/Dockerfile "$W/standin-python/"
cp /usr/local/share/ca-certificates/*.crt "$W/standin-python/ca/" 2>/dev/null || true
standin() {
    local name=$1 context=$2 tag=$3
    quiet "standin-$name" env DOCKER_BUILDKIT=0 docker build --network host -t "$tag" "$context"
    echo "STAND-IN IMAGE: $tag is Debian $SUITE's $name, built here, not the official image"
}
for tag in $(awk '/^FROM /{print $2}' Dockerfile | sort -u); do
    standin python "$W/standin-python" "$tag"
done
for tag in $(docker compose config --images); do
    case "$tag" in
        postgres:*) standin postgres .ci/standins/postgres "$tag" ;;
        redis:*) standin redis .ci/standins/redis "$tag" ;;
        nginx:*) standin nginx .ci/standins/nginx "$tag" ;;
    esac
done

section "The real Dockerfile, built unmodified, by docker compose build as docs/deploy.md's steps do"
# The compose project and its free loopback ports, for this build and the stack further down.
COMPOSE_PROJECT="recipe-ci-$("$PY" -c 'import secrets; print(secrets.token_hex(4))')"
read -r CI_DB_PORT CI_REDIS_PORT CI_APP1_PORT CI_APP2_PORT ci_http ci_https \
    < <("${CHECK[@]}" ports 6)
APP_IMAGE=recipe-service:ci
export APP_IMAGE CI_DB_PORT CI_REDIS_PORT CI_APP1_PORT CI_APP2_PORT
export CI_NGINX_DIR="$W/nginx-compose" TLS_CERT_DIR="$W/certs"
quiet compose-build compose build migrate
docker image inspect "$APP_IMAGE" --format \
    'built {{.Id}}: {{.Size}} bytes, user {{.Config.User}}, exposes {{json .Config.ExposedPorts}}'
[ "$(docker image inspect "$APP_IMAGE" --format '{{.Config.User}}')" = "10001:10001" ]
docker run --rm -i --network none "$APP_IMAGE" python - <<'PY'
# Only the app and its runtime dependencies are in the image.
import importlib.util, os, shutil, sys
content = sorted(os.listdir("/app"))
expected = ["alembic", "alembic.ini", "app", "data", "prestart.sh", "pyproject.toml", "run.sh"]
dev_tools = [m for m in ("pytest", "ruff", "mypy", "fakeredis", "playwright", "tests") if importlib.util.find_spec(m)]
# The pods' preStop hook runs sleep.
if content != expected or dev_tools or os.getuid() == 0 or not shutil.which("sleep"):
    sys.exit(f"image content {content}, dev tools {dev_tools}, uid {os.getuid()}")
print("image holds only the app and its runtime venv; runs as uid", os.getuid())
PY

section "The image as Kubernetes runs it: ConfigMap env, read-only root, the Job, then the app"
db_url=$("${CHECK[@]}" db-create "$PG_SERVER_URL")
DATABASES+=("$db_url")
read -r app_port < <("${CHECK[@]}" ports 1)
# As the pods get them: the ConfigMap, the Secret's keys, emptyDirs on /tmp and /metrics.
k8s_run=(--network host --read-only --tmpfs /tmp --tmpfs /metrics --env-file "$W/k8s.env"
    -e SECRET_KEY -e FIRST_SUPERUSER_PASSWORD -e DATABASE_URL="$db_url"
    -e REDIS_URL="redis://$REDIS_HOST_PORT/$REDIS_DB" -e FORWARDED_ALLOW_IPS=127.0.0.1
    -e HOST=127.0.0.1 -e PORT="$app_port")
cid=$(docker run -d "${k8s_run[@]}" "$APP_IMAGE" bash prestart.sh)
CONTAINERS+=("$cid")
code=$(docker wait "$cid")
logs=$(docker logs "$cid" 2>&1)
[ "$code" = 0 ] || { echo "the migrate Job's command exited $code" >&2; redact <<<"$logs" >&2; exit 1; }
grep -q "Running upgrade" <<<"$logs" || { echo "the Job ran no migration" >&2; exit 1; }
echo "  ok  the migrate Job's command (bash prestart.sh) migrated, seeded and exited 0"

cid=$(docker run -d "${k8s_run[@]}" "$APP_IMAGE")
CONTAINERS+=("$cid")
wait_healthy() {
    local health=""
    for _ in $(seq 120); do
        health=$(docker inspect -f '{{.State.Health.Status}}' "$1")
        [ "$health" = healthy ] && return 0
        [ "$(docker inspect -f '{{.State.Running}}' "$1")" = true ] || break
        sleep 1
    done
    echo "container health: $health" >&2
    docker logs "$1" 2>&1 | tail -30 | redact >&2
    return 1
}
wait_healthy "$cid"
echo "  ok  the image's HEALTHCHECK turned healthy"
"${CHECK[@]}" smoke "http://127.0.0.1:$app_port" --host-header localhost
"${CHECK[@]}" host-check "http://127.0.0.1:$app_port"
docker stop -t 20 "$cid" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$cid")
[ "$code" = 0 ] || { echo "the app exited with $code on SIGTERM" >&2; exit 1; }
echo "  ok  SIGTERM stops it cleanly (exit 0), as a pod's termination does"

section "The image as docs/deploy.md's Docker steps run it: SQLite on a named volume"
read -r app_port < <("${CHECK[@]}" ports 1)
cid=$(docker run -d --network host -v recipe-data-ci:/app/data -e SECRET_KEY \
    -e FIRST_SUPERUSER_PASSWORD -e ALLOWED_HOSTS -e HOST=127.0.0.1 -e PORT="$app_port" "$APP_IMAGE")
CONTAINERS+=("$cid")
wait_healthy "$cid"
"${CHECK[@]}" smoke "http://127.0.0.1:$app_port"
docker rm -f "$cid" >/dev/null
docker volume rm recipe-data-ci >/dev/null

section "The compose stack on stand-in images (host-network override: deploy/compose.ci.yml)"
"${CHECK[@]}" nginx-conf "$CI_NGINX_DIR" --http-port "$ci_http" --https-port "$ci_https" \
    --upstream "127.0.0.1:$CI_APP1_PORT" --upstream "127.0.0.1:$CI_APP2_PORT" \
    --certs /etc/nginx/certs
compose config -q
if ! compose up -d --build --pull never --wait --wait-timeout 240 >"$LOGS/compose-up.log" 2>&1
then
    redact <"$LOGS/compose-up.log" | tail -20 >&2
    compose ps -a >&2
    compose logs --tail 30 >&2
    exit 1
fi
compose ps -a --format '{{.Service}}: {{.State}} {{.Status}}'
# Host networking only: the stack must not have made bridges on this machine.
[ -z "$(docker network ls -q --filter driver=bridge)" ] || { docker network ls >&2; exit 1; }
[ "$(docker inspect -f '{{.State.ExitCode}}' "$(compose ps -a -q migrate)")" = 0 ]
echo "  ok  migrate ran once and exited 0; app1 and app2 started after it"
"${CHECK[@]}" smoke "https://127.0.0.1:$ci_https" --cafile "$W/certs/tls.crt"
served=$(compose logs proxy 2>/dev/null | grep -o 'upstream=[0-9.:]*' | sort | uniq -c)
for port in "$CI_APP1_PORT" "$CI_APP2_PORT"; do
    grep -q "upstream=127.0.0.1:$port\$" <<<"$served" || {
        echo "app on :$port served nothing through nginx: $served" >&2
        exit 1
    }
done
echo "  ok  nginx in the stack reached both app1 and app2"
compose down --volumes --remove-orphans --timeout 10 >"$LOGS/compose-down.log" 2>&1
COMPOSE_PROJECT=""

section "Containers: passed (stand-in images were used: Debian $SUITE packages, not official images)"
