"""CI checks of the deployment files on loopback: nginx in front of two app instances, smoke tests.

Run by .ci/containers.sh with the project's .venv; every address it talks to is on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import asyncpg
import httpx2
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
NGINX_DIR = ROOT / "deploy" / "nginx"
START_TIMEOUT_SECONDS = 90
# One client address per phase: nginx limits per address, so phases never eat each other's budget.
CLIENT_BASICS, CLIENT_SPREAD, CLIENT_FAILOVER, CLIENT_FLOOD, CLIENT_DIRECT = (
    "127.0.0.1",
    "127.0.0.5",
    "127.0.0.3",
    "127.0.0.4",
    "127.0.0.2",
)
SPREAD_REQUESTS = 12  # under nginx's burst of 20, so none of them may be limited
FAILOVER_REQUESTS = 15
FLOOD_MAX_REQUESTS = 300


class CheckFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def say(message: str) -> None:
    sys.stdout.write(f"  ok  {message}\n")
    sys.stdout.flush()


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; all held open together, so they differ."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


# ---- databases -----------------------------------------------------------------------------


def _admin_dsn(url: str) -> tuple[str, str]:
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres")
    return admin.render_as_string(hide_password=False), str(parsed.database)


async def _admin(url: str, sql: str) -> None:
    dsn, _ = _admin_dsn(url)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(server_url: str) -> str:
    """A new, empty database with a random name on the server; returns its URL."""
    url = make_url(server_url).set(database=f"deploy_ci_{secrets.token_hex(6)}")
    rendered = url.render_as_string(hide_password=False)
    asyncio.run(_admin(rendered, f'CREATE DATABASE "{url.database}"'))
    return rendered


def drop_database(url: str) -> None:
    _, name = _admin_dsn(url)
    expect(name.startswith("deploy_ci_"), f"refusing to drop {name}: not made by this script")
    asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# ---- nginx ---------------------------------------------------------------------------------


def _replace(text: str, old: str, new: str, where: str) -> str:
    # Every adaptation must apply: a config that drifted fails here, not silently later.
    expect(old in text, f"{where}: expected {old!r} in the repo's nginx config")
    return text.replace(old, new)


def adapt_nginx(
    dst: Path,
    *,
    http_port: int,
    https_port: int,
    upstreams: list[str],
    certs: Path,
    run_dir: Path | None,
) -> Path:
    """Copy deploy/nginx to dst for loopback use: ports, upstream addresses, certificates.

    With run_dir, the pid file, logs and temp files go there too, so nginx runs unprivileged
    of any system path (the host test); without it, paths stay as in a container.
    """
    dst.mkdir(parents=True, exist_ok=True)
    conf = (NGINX_DIR / "nginx.conf").read_text()
    conf = _replace(conf, "listen 80;", f"listen 127.0.0.1:{http_port};", "nginx.conf")
    conf = _replace(conf, "listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;", "nginx.conf")
    conf = _replace(conf, "/etc/nginx/certs/", f"{certs}/", "nginx.conf")
    if run_dir is not None:
        conf = _replace(conf, "pid /var/run/nginx.pid;", f"pid {run_dir}/nginx.pid;", "nginx.conf")
        conf = _replace(
            conf, "error_log /dev/stderr", f"error_log {run_dir}/error.log", "nginx.conf"
        )
        temp_paths = "".join(
            f"    {name}_temp_path {run_dir}/{name}_temp;\n"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = _replace(
            conf,
            "access_log /dev/stdout main;",
            f"access_log {run_dir}/access.log main;\n{temp_paths}",
            "nginx.conf",
        )
    (dst / "nginx.conf").write_text(conf)

    upstream = (NGINX_DIR / "upstream.conf").read_text()
    servers = re.findall(r"^(\s*server\s+)(\S+)(.*)$", upstream, flags=re.MULTILINE)
    expect(len(servers) == len(upstreams), f"upstream.conf has {len(servers)} servers")
    for (lead, host, rest), address in zip(servers, upstreams, strict=True):
        upstream = upstream.replace(f"{lead}{host}{rest}", f"{lead}{address}{rest}", 1)
    (dst / "upstream.conf").write_text(upstream)
    return dst / "nginx.conf"


# ---- processes -----------------------------------------------------------------------------


@contextmanager
def process(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    """A background process in its own group; killed with its children on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def wait_until(what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not ready():
        expect(time.monotonic() < deadline, f"{what}: not ready within {START_TIMEOUT_SECONDS}s")
        time.sleep(0.3)


def answers(url: str, *, verify: ssl.SSLContext | bool = True) -> bool:
    try:
        return httpx2.get(url, timeout=2, verify=verify).status_code < 500
    except httpx2.TransportError:
        return False


def client(
    base_url: str, source: str, cafile: Path | None = None, host: str | None = None
) -> httpx2.Client:
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=cafile) if cafile else True
    transport = httpx2.HTTPTransport(local_address=source, verify=verify)
    headers = {"Host": host} if host else {}
    return httpx2.Client(base_url=base_url, transport=transport, timeout=10, headers=headers)


# ---- the API, as a user would call it ------------------------------------------------------


def login(http: httpx2.Client, email: str, password: str) -> dict[str, str]:
    response = http.post("/api/v1/auth/login", data={"username": email, "password": password})
    expect(response.status_code == 200, f"login: {response.status_code} {response.text[:200]}")
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def create_recipe(http: httpx2.Client, headers: dict[str, str], label: str) -> int:
    body = {"label": label, "source": "CI", "url": f"https://example.com/{secrets.token_hex(4)}"}
    response = http.post("/api/v1/recipes", json=body, headers=headers)
    expect(response.status_code == 201, f"create recipe: {response.status_code} {response.text}")
    return int(response.json()["id"])


def smoke(
    base_url: str, email: str, password: str, cafile: Path | None, host: str | None = None
) -> None:
    """Ready, first data seeded (so migrations ran), login, a recipe created and read back."""
    verify = ssl.create_default_context(cafile=cafile) if cafile else True
    wait_until(base_url, partial(answers, f"{base_url}/healthz", verify=verify))
    with client(base_url, CLIENT_BASICS, cafile, host) as http:
        ready = http.get("/readyz")
        expect(ready.status_code == 200, f"/readyz: {ready.status_code} {ready.text}")
        say(f"{base_url}/readyz: the database answers")
        seeded = http.get("/api/v1/recipes/search", params={"keyword": "Chicken Vesuvio"})
        expect(len(seeded.json()["results"]) == 1, f"seed recipes: {seeded.text[:200]}")
        say("migrated and seeded: the classic recipes are there, once")
        headers = login(http, email, password)
        recipe_id = create_recipe(http, headers, "Smoke Test Soup")
        read = http.get(f"/api/v1/recipes/{recipe_id}")
        expect(read.json()["label"] == "Smoke Test Soup", f"read back: {read.text}")
        say(f"logged in as {email}, created recipe {recipe_id} and read it back")


def host_check(base_url: str) -> None:
    """The probes' Host header (localhost) is allowed; a foreign one is refused."""
    with client(base_url, CLIENT_BASICS, host="localhost") as http:
        for path in ("/healthz", "/readyz"):
            probe = http.get(path)
            expect(probe.status_code == 200, f"{path} with Host: localhost: {probe.status_code}")
    with client(base_url, CLIENT_BASICS, host="evil.example") as http:
        foreign = http.get("/healthz")
    expect(foreign.status_code == 400, f"Host: evil.example got {foreign.status_code}")
    say("probes with Host: localhost get 200; a Host outside ALLOWED_HOSTS gets 400")


def served_by(access_log: Path) -> Counter[str]:
    """Requests per instance that answered; a retried request lists the failed one first."""
    tried = re.findall(r" upstream=(.+?) ut=", access_log.read_text())
    return Counter(addresses.split(", ")[-1] for addresses in tried)


def balance(pg_server_url: str, redis_url: str, work: Path) -> None:
    """The repo's nginx config in front of two app instances that share PostgreSQL and Redis."""
    work.mkdir(parents=True, exist_ok=True)
    http_port, https_port, port1, port2 = free_ports(4)
    certs = work / "certs"
    subprocess.run(
        ["bash", "deploy/make-certs.sh", str(certs)], cwd=ROOT, check=True, capture_output=True
    )
    run_dir = work / "nginx-run"
    run_dir.mkdir()
    conf = adapt_nginx(
        work / "nginx",
        http_port=http_port,
        https_port=https_port,
        upstreams=[f"127.0.0.1:{port1}", f"127.0.0.1:{port2}"],
        certs=certs,
        run_dir=run_dir,
    )
    database_url = create_database(pg_server_url)
    password = secrets.token_urlsafe(16)
    bin_dir = Path(sys.executable).parent
    env = os.environ | {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "ENVIRONMENT": "staging",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "FIRST_SUPERUSER_EMAIL": "admin@example.com",
        "FIRST_SUPERUSER_PASSWORD": password,
        "HOST": "127.0.0.1",
        "WORKERS": "1",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    try:
        with ExitStack() as stack:
            # Both start at once, so both run prestart at once: the lock makes that safe.
            apps = {
                port: stack.enter_context(
                    process(["bash", "run.sh"], work / f"app-{port}.log", env | {"PORT": str(port)})
                )
                for port in (port1, port2)
            }
            for port in apps:
                wait_until(f"app on {port}", partial(answers, f"http://127.0.0.1:{port}/readyz"))
            say(f"two app instances up on 127.0.0.1:{port1} and :{port2}, one database")

            nginx_cmd = ["nginx", "-p", str(run_dir), "-c", str(conf), "-g", "daemon off;"]
            stack.enter_context(process(nginx_cmd, work / "nginx.log"))
            base_url = f"https://127.0.0.1:{https_port}"
            ca = ssl.create_default_context(cafile=certs / "tls.crt")
            wait_until("nginx", partial(answers, f"{base_url}/healthz", verify=ca))
            _check_proxy(base_url, http_port, certs / "tls.crt", password)
            _check_forwarded_headers(base_url, port1, certs / "tls.crt")
            _check_spread(base_url, certs / "tls.crt", run_dir / "access.log", (port1, port2))

            os.killpg(apps[port1], signal.SIGKILL)
            say(f"killed the instance on :{port1} (pid {apps[port1]})")
            _check_failover(base_url, certs / "tls.crt", run_dir / "access.log", port2)
            _check_rate_limit(base_url, certs / "tls.crt")
    finally:
        drop_database(database_url)


def _check_proxy(base_url: str, http_port: int, cafile: Path, password: str) -> None:
    redirect = httpx2.get(f"http://127.0.0.1:{http_port}/api/v1/recipes?limit=1")
    expect(redirect.status_code in (301, 308), f"HTTP: {redirect.status_code}")
    location = redirect.headers["location"]
    expect(location.startswith("https://"), f"HTTP redirects to {location}")
    say(f"plain HTTP answers {redirect.status_code} -> {location}")
    with client(base_url, CLIENT_BASICS, cafile) as http:
        generated = http.get("/healthz").headers.get("x-request-id", "")
        expect(len(generated) >= 16, f"nginx made no request ID: {generated!r}")
        echoed = http.get("/healthz", headers={"X-Request-ID": "ci-trace-1"})
        expect(echoed.headers.get("x-request-id") == "ci-trace-1", "request ID not passed through")
        say("X-Request-ID: made by nginx when missing, passed through when sent")
        zipped = http.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
        expect(zipped.headers.get("content-encoding") == "gzip", "no gzip on /openapi.json")
        expect("paths" in zipped.json(), "gzipped body does not decode")
        say("gzip on JSON responses")
        big = http.post("/api/v1/recipes", content=b"x" * (2 * 1024 * 1024))
        expect(big.status_code == 413, f"a 2 MiB body got {big.status_code}")
        say("a body over client_max_body_size gets 413 from nginx")
    smoke(base_url, "admin@example.com", password, cafile)


def _check_forwarded_headers(base_url: str, direct_port: int, cafile: Path) -> None:
    """Starlette's trailing-slash redirect spells the scheme the app believes in."""
    with client(base_url, CLIENT_BASICS, cafile) as http:
        via_proxy = http.get("/api/v1/recipes/")
    expect(via_proxy.status_code == 307, f"via nginx: {via_proxy.status_code}")
    expect(via_proxy.headers["location"].startswith("https://"), via_proxy.headers["location"])
    with client(f"http://127.0.0.1:{direct_port}", CLIENT_DIRECT) as http:
        forged = http.get("/api/v1/recipes/", headers={"X-Forwarded-Proto": "https"})
    expect(forged.status_code == 307, f"direct: {forged.status_code}")
    expect(forged.headers["location"].startswith("http://"), forged.headers["location"])
    say("X-Forwarded-Proto believed from nginx (127.0.0.1), ignored from 127.0.0.2")


def _check_spread(base_url: str, cafile: Path, access_log: Path, ports: tuple[int, int]) -> None:
    before = served_by(access_log)
    with client(base_url, CLIENT_SPREAD, cafile) as http:
        for _ in range(SPREAD_REQUESTS):
            response = http.get("/api/v1/recipes?limit=1")
            expect(response.status_code == 200, f"balanced GET: {response.status_code}")
    spread = served_by(access_log) - before
    for port in ports:
        expect(spread[f"127.0.0.1:{port}"] > 0, f"instance :{port} served nothing: {spread}")
    say(f"{SPREAD_REQUESTS} requests spread over both instances: {dict(spread)}")


def _check_failover(base_url: str, cafile: Path, access_log: Path, survivor: int) -> None:
    before = served_by(access_log)
    with client(base_url, CLIENT_FAILOVER, cafile) as http:
        codes = Counter(
            http.get("/api/v1/recipes?limit=1").status_code for _ in range(FAILOVER_REQUESTS)
        )
    expect(codes == Counter({200: FAILOVER_REQUESTS}), f"after the kill: {dict(codes)}")
    answered = served_by(access_log) - before
    expect(answered[f"127.0.0.1:{survivor}"] >= FAILOVER_REQUESTS, f"served by {answered}")
    say(f"all {FAILOVER_REQUESTS} requests after the kill succeeded, via :{survivor}")


def _check_rate_limit(base_url: str, cafile: Path) -> None:
    sent = 0
    with client(base_url, CLIENT_FLOOD, cafile) as http:
        while sent < FLOOD_MAX_REQUESTS:
            response = http.get("/healthz")
            sent += 1
            if response.status_code == 429:
                break
            expect(response.status_code == 200, f"flood: {response.status_code}")
        else:
            raise CheckFailed(f"no 429 after {FLOOD_MAX_REQUESTS} rapid requests")
    expect(response.json() == {"detail": "Too many requests"}, f"429 body: {response.text}")
    expect(response.headers.get("retry-after") == "1", "429 without Retry-After")
    say(f"nginx's limit_req tripped after {sent} rapid requests: 429 with Retry-After")


# ---- command line --------------------------------------------------------------------------


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # Unwind as on Ctrl-C, so the finally blocks stop nginx and the app instances.
    sys.exit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ports").add_argument("count", type=int)
    for name in ("db-create", "db-drop"):
        sub.add_parser(name).add_argument("url")
    conf = sub.add_parser("nginx-conf")
    conf.add_argument("dst", type=Path)
    conf.add_argument("--http-port", type=int, required=True)
    conf.add_argument("--https-port", type=int, required=True)
    conf.add_argument("--upstream", action="append", required=True)
    conf.add_argument("--certs", type=Path, required=True)
    conf.add_argument("--run-dir", type=Path)
    bal = sub.add_parser("balance")
    bal.add_argument("--pg", required=True)
    bal.add_argument("--redis", required=True)
    bal.add_argument("--work", type=Path, required=True)
    smk = sub.add_parser("smoke")
    smk.add_argument("base_url")
    smk.add_argument("--email", default="admin@example.com")
    smk.add_argument("--password", default=os.environ.get("FIRST_SUPERUSER_PASSWORD", ""))
    smk.add_argument("--cafile", type=Path)
    smk.add_argument("--host-header")
    sub.add_parser("host-check").add_argument("base_url")
    args = parser.parse_args()

    try:
        if args.command == "ports":
            sys.stdout.write(" ".join(map(str, free_ports(args.count))) + "\n")
        elif args.command == "db-create":
            sys.stdout.write(create_database(args.url) + "\n")
        elif args.command == "db-drop":
            drop_database(args.url)
        elif args.command == "nginx-conf":
            adapt_nginx(
                args.dst,
                http_port=args.http_port,
                https_port=args.https_port,
                upstreams=args.upstream,
                certs=args.certs,
                run_dir=args.run_dir,
            )
        elif args.command == "balance":
            balance(args.pg, args.redis, args.work)
        elif args.command == "smoke":
            smoke(args.base_url, args.email, args.password, args.cafile, args.host_header)
        elif args.command == "host-check":
            host_check(args.base_url)
    except CheckFailed as exc:
        sys.exit(f"FAILED: {exc}")


if __name__ == "__main__":
    main()
