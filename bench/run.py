"""The benchmark: seed, start the service and the raw baseline, load both in turns, print a table.

`python3 scripts/dev.py bench` (full: PostgreSQL 10k and 1M recipes, SQLite 10k),
`python3 scripts/dev.py bench --hot` (the hot paths in hello units, PostgreSQL 10k with and
without Redis) or `python3 scripts/dev.py bench --smoke` (seconds, small data; asserts parity
and zero non-2xx).
"""

import argparse
import asyncio
import base64
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from bench import seed
from bench.loadgen import Request, Result, closed_loop, fetch, median, open_loop

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"
API = "/api/v1"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The hot paths the hello-unit targets are set for (issue 17), with their limits.
HOT_ENDPOINTS = ("by-id", "list-first", "own-list", "search-common", "create")
HOT_TARGETS = {"by-id": 6, "list-first": 7, "own-list": 9, "search-common": 9, "create": 12}


@dataclass(frozen=True)
class Profile:
    rounds: int
    wrk_seconds: int
    open_seconds: float
    datasets: list[tuple[str, str, int]]  # name, "pg" | "sqlite", recipes
    extras: bool  # WORKERS=2, logins under load, EXPLAIN
    endpoints: tuple[str, ...] = ()  # empty: all
    compare: Path | None = None  # another checkout, served alongside as "before"
    hello: bool = True  # the hello floor beside the others, and CPU per request for each
    latency: bool = True  # open-loop p50/p99 after the wrk runs
    starts: int = 1  # service starts on the migrated database; the start-up figure is the worst


FULL = Profile(
    3,
    4,
    3.0,
    [("pg-1m", "pg", 1_000_000), ("pg-10k", "pg", 10_000), ("sqlite-10k", "sqlite", 10_000)],
    extras=True,
)
SMOKE = Profile(
    1, 1, 1.0, [("pg-2k", "pg", 2_000), ("sqlite-2k", "sqlite", 2_000)], extras=False, hello=False
)
# A dataset named *-redis serves the service with REDIS_URL set (by id then reads the cache).
HOT = Profile(
    3,
    4,
    3.0,
    [("pg-10k", "pg", 10_000), ("pg-10k-redis", "pg", 10_000)],
    extras=False,
    endpoints=HOT_ENDPOINTS,
    latency=False,
    starts=3,
)


@dataclass
class Endpoint:
    name: str
    method: str
    path: str  # "{id}" is replaced by a random recipe id
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    connections: int = 32

    def request(self, i: int, max_id: int) -> Request:
        path = self.path.replace("{id}", str(1 + (i * 7919) % max_id))
        return self.method, path, self.headers, self.body


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    startup: float


# -- processes -----------------------------------------------------------------------------


def cpus() -> tuple[str, str, str]:
    """(one server core, every core, the load generator's core)."""
    cores = sorted(os.sched_getaffinity(0))
    return str(cores[0]), ",".join(map(str, cores)), str(cores[-1])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


async def wait_ready(port: int, timeout: float = 60.0, path: str = "/healthz") -> None:
    deadline = time.monotonic() + timeout
    while True:
        with suppress(OSError, asyncio.IncompleteReadError, ValueError):
            status, _ = await fetch(HOST, port, ("GET", path, {}, b""))
            if status == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no answer on port {port} within {timeout} s")
        await asyncio.sleep(0.02)


async def start(
    name: str,
    cmd: list[str],
    env: dict[str, str],
    port: int,
    log: Path,
    cwd: Path = ROOT,
    ready_path: str = "/healthz",
) -> Server:
    began = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        await wait_ready(port, path=ready_path)
    except RuntimeError:
        stop(Server(name, port, proc, 0.0))
        sys.exit(f"{name} did not start; see {log}")
    return Server(name, port, proc, time.monotonic() - began)


def stop(server: Server) -> None:
    # The server runs in its own session, so its group is it and its workers, nothing else.
    with suppress(ProcessLookupError):
        os.killpg(server.proc.pid, signal.SIGTERM)
    try:
        server.proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()


def group_pids(server: Server) -> list[int]:
    """The server's processes: it and its workers (it leads its own process group)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == server.proc.pid:
                pids.append(int(stat.parent.name))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes, all their threads, and their reaped children."""
    total = 0
    for pid in pids:
        with suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            # utime, stime, cutime, cstime: fields 14-17 of proc(5), 11-14 after the name.
            total += sum(int(f) for f in fields[11:15])
    return total / CLOCK_TICKS


def worker_rss_mb(server: Server) -> list[float]:
    """RSS of each serving process in the server's group (the supervisor left out)."""
    members: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == server.proc.pid:  # process group
                members[int(stat.parent.name)] = int(fields[1])  # parent pid
    parents = set(members.values())
    rss = []
    for pid in members:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if pid in parents and len(members) > 1 and b"bash" not in cmdline:
            continue  # uvicorn's supervisor of several workers
        if b"python" not in cmdline and b"fastapi" not in cmdline and b"uvicorn" not in cmdline:
            continue
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        rss.append(round(kb / 1024, 1))
    return rss


def service_env(
    database_url: str, secret: str, port: int, workers: int, tmp: Path, redis_url: str = ""
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "BENCH_"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        # Production-like: strong key, JSON logs at WARNING, metrics on, no Redis (so both
        # sides run the same SQL on every read), rate limits off (one load generator is one IP).
        ENVIRONMENT="production",
        SECRET_KEY=secret,
        FIRST_SUPERUSER_EMAIL="admin@bench.example.com",
        FIRST_SUPERUSER_PASSWORD=secrets.token_urlsafe(16),
        DATABASE_URL=database_url,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
        RATE_LIMIT_DEFAULT="off",
        RATE_LIMIT_AUTH_PER_IP="off",
        RATE_LIMIT_LOGIN_FAILURES="off",
        REDIS_URL=redis_url,
        # Each run its own keys, so a cache left by an earlier run is never read.
        REDIS_KEY_PREFIX=f"bench-{port}:",
        HOST=HOST,
        PORT=str(port),
        WORKERS=str(workers),
    )
    # Start-up as deployed, from compiled bytecode (the image compiles it at build): the first
    # start, which the figure leaves out, writes it here rather than into the checkout.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    if workers > 1:
        # As .env.example advises: /metrics then adds up every worker (at a cost per request).
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / f"metrics-{port}")
    return env


async def start_service(
    db_url: str,
    secret: str,
    workers: int,
    cores: str,
    tmp: Path,
    root: Path = ROOT,
    redis_url: str = "",
) -> Server:
    port = free_port()
    env = service_env(db_url, secret, port, workers, tmp, redis_url)
    cmd = ["taskset", "-c", cores, "bash", str(root / "run.sh")]
    log = tmp / f"service-{port}.log"
    return await start(f"service W={workers}", cmd, env, port, log, cwd=root)


def uvicorn_cmd(cores: str, app: str, port: int, workers: int, *flags: str) -> list[str]:
    """uvicorn serving `app` on core(s) `cores`, quiet (warnings only, no access log)."""
    return [
        *("taskset", "-c", cores, str(BIN / "python"), "-m", "uvicorn", app),
        *("--host", HOST, "--port", str(port), "--workers", str(workers), *flags),
        *("--log-level", "warning", "--no-access-log"),
    ]


async def start_baseline(dsn: str, secret: str, workers: int, cores: str, tmp: Path) -> Server:
    port = free_port()
    env = dict(os.environ, BENCH_DSN=dsn, BENCH_SECRET_KEY=secret)
    cmd = uvicorn_cmd(cores, "bench.baseline:app", port, workers)
    return await start(f"baseline W={workers}", cmd, env, port, tmp / f"baseline-{port}.log")


async def start_hello(cores: str, tmp: Path) -> Server:
    """The hello floor, with the service's server flags (see run.sh), one worker."""
    port = free_port()
    flags = ("--proxy-headers", "--http", "app.server:BoundedHttpToolsProtocol")
    cmd = uvicorn_cmd(cores, "bench.hello:app", port, 1, *flags)
    return await start(
        "hello", cmd, dict(os.environ), port, tmp / f"hello-{port}.log", ready_path="/"
    )


# -- load ----------------------------------------------------------------------------------

WRK_SCRIPT = """
local n = 0
request = function()
  n = n + 1
  local path = string.gsub(%(path)s, "{id}", tostring(1 + (n * 7919) %% %(max_id)d))
  return wrk.format(%(method)s, path, %(headers)s, %(body)s)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"non_2xx":%%d,"socket_errors":%%d,' ..
    '"p50_us":%%d,"p99_us":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid Lua string literal for this text


def run_wrk(
    server: Server, ep: Endpoint, max_id: int, seconds: int, core: str, tmp: Path
) -> dict[str, float]:
    """Throughput, and the server's CPU per request (µs) from /proc before and after."""
    port = server.port
    headers = "{" + ", ".join(f"[{lua(k)}] = {lua(v)}" for k, v in ep.headers.items()) + "}"
    script = tmp / f"wrk-{ep.name}.lua"
    script.write_text(
        WRK_SCRIPT
        % {
            "path": lua(ep.path),
            "max_id": max_id,
            "method": lua(ep.method),
            "headers": headers,
            "body": lua(ep.body.decode()) if ep.body else "nil",
        }
    )
    cmd = [
        "taskset",
        "-c",
        core,
        "wrk",
        "-t1",
        f"-c{ep.connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://{HOST}:{port}/",
    ]
    pids = group_pids(server)
    cpu_before = cpu_seconds(pids)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pids) - cpu_before
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    return {
        "requests": data["requests"],
        "cpu_us": cpu / max(1, data["requests"]) * 1e6,
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "non_2xx": data["non_2xx"] + data["socket_errors"],
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
    }


# -- the run -------------------------------------------------------------------------------


def cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(str(before_id).encode()).decode().rstrip("=")


def endpoints(recipes: int, token: str) -> list[Endpoint]:
    form = f"username={quote(seed.BENCH_EMAIL)}&password={quote(seed.BENCH_PASSWORD)}".encode()
    body = json.dumps(
        {"label": "Bench Stew", "source": "Bench", "url": "https://recipes.bench.example.com/new"}
    ).encode()
    deep = cursor(recipes - int(recipes * 0.9))
    return [
        Endpoint("healthz", "GET", "/healthz"),
        Endpoint("by-id", "GET", f"{API}/recipes/{{id}}"),
        Endpoint("list-first", "GET", f"{API}/recipes?limit=20"),
        Endpoint("list-deep", "GET", f"{API}/recipes?limit=20&cursor={deep}"),
        Endpoint(
            "own-list",
            "GET",
            f"{API}/users/me/recipes?limit=20",
            headers={"Authorization": f"Bearer {token}"},
        ),
        Endpoint("search-common", "GET", f"{API}/recipes/search?keyword={seed.COMMON_KEYWORD}"),
        Endpoint("search-rare", "GET", f"{API}/recipes/search?keyword={seed.RARE_KEYWORD}"),
        Endpoint(
            "create",
            "POST",
            f"{API}/recipes",
            body,
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ),
        Endpoint(
            "login",
            "POST",
            f"{API}/auth/login",
            form,
            {"Content-Type": "application/x-www-form-urlencoded"},
            connections=4,
        ),
    ]


async def login(port: int) -> str:
    ep = endpoints(10, "")[-1]
    status, body = await fetch(HOST, port, ep.request(0, 1))
    if status != 200:
        sys.exit(f"bench login failed on port {port}: {status} {body[:200]!r}")
    return str(json.loads(body)["access_token"])


async def parity(ours: Server, base: Server, eps: list[Endpoint], max_id: int) -> list[str]:
    """Differences between the two servers' answers to the same requests (empty: none)."""
    problems = []
    volatile = {"id", "created_at", "updated_at", "access_token", "refresh_token"}
    for ep in eps:
        if ep.name == "healthz":
            continue
        req = ep.request(1, max_id)
        (s1, b1), (s2, b2) = [await fetch(HOST, s.port, req) for s in (ours, base)]
        j1, j2 = json.loads(b1), json.loads(b2)
        if ep.method == "POST":
            j1 = {k: ("*" if k in volatile else v) for k, v in j1.items()}
            j2 = {k: ("*" if k in volatile else v) for k, v in j2.items()}
        if s1 != s2 or j1 != j2 or not 200 <= s1 < 300:
            problems.append(f"{ep.name}: service {s1} {b1[:300]!r} / baseline {s2} {b2[:300]!r}")
    return problems


def merged_statuses(results: list[Result]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for r in results:
        for status, n in r.statuses.items():
            merged[str(status)] = merged.get(str(status), 0) + n
        if r.errors:
            merged["socket errors"] = merged.get("socket errors", 0) + r.errors
    return merged


def summary(results: list[Result]) -> dict[str, float]:
    return {
        "p50_ms": median([r.percentile(0.50) for r in results]),
        "p99_ms": median([r.percentile(0.99) for r in results]),
        "non_2xx": sum(r.non_2xx for r in results),
        "sent_rps": median([r.rps for r in results]),
    }


HELLO = Endpoint("hello", "GET", "/")


async def measure(
    servers: dict[str, Server],
    ep: Endpoint,
    max_id: int,
    prof: Profile,
    tmp: Path,
    warm: bool = False,
) -> dict[str, Any]:
    """wrk throughput and CPU per request, then open-loop latency, alternating between servers.

    The hello floor (if served) answers its one route before and after every other server's
    run, so each run gives that server's CPU per request in hello units; the row keeps their
    medians.
    """
    _, _, load_core = cpus()
    if warm:
        # One unmeasured run each first: every run asks for the same ids, so the measured
        # ones read a warm cache (a by-id cache hit is the figure, not a cold miss).
        for name, server in servers.items():
            run_wrk(
                server, HELLO if name == "hello" else ep, max_id, prof.wrk_seconds, load_core, tmp
            )
    wrk: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    # Each server's CPU per request over the mean of the hello runs just before and after it:
    # this machine's speed drifts by a fifth within seconds, so a hello run a round away
    # would move the figure more than most changes do.
    units: dict[str, list[float]] = {name: [] for name in servers if name != "hello"}
    # A login costs an Argon2id hash: too few finish in a one-second run to count.
    seconds = max(prof.wrk_seconds, 3) if ep.name == "login" else prof.wrk_seconds
    for r in range(prof.rounds):
        order = [n for n in servers if n != "hello"]
        if r % 2:
            order.reverse()
        hello_before = None
        if "hello" in servers:
            hello_before = run_wrk(servers["hello"], HELLO, max_id, seconds, load_core, tmp)
            wrk["hello"].append(hello_before)
        for name in order:
            wrk[name].append(run_wrk(servers[name], ep, max_id, seconds, load_core, tmp))
            if hello_before is not None:
                hello_after = run_wrk(servers["hello"], HELLO, max_id, seconds, load_core, tmp)
                wrk["hello"].append(hello_after)
                floor = (hello_before["cpu_us"] + hello_after["cpu_us"]) / 2
                units[name].append(wrk[name][-1]["cpu_us"] / floor)
                hello_before = hello_after
    rps = {name: median([w["rps"] for w in runs]) for name, runs in wrk.items()}
    measured = [name for name in servers if name != "hello"]
    lat: dict[str, list[Result]] = {name: [] for name in measured}
    rate = 0.0
    if prof.latency:
        # One fixed rate for all, a third of what the slowest holds: latency is then service
        # time, not a queue that a noisy neighbour on this shared machine happened to build.
        rate = max(2.0, min(1000.0, min(rps[n] for n in measured) / 3))
        for r in range(prof.rounds):
            order = measured if r % 2 == 0 else list(reversed(measured))
            for name in order:
                make: Callable[[int], Request] = lambda i: ep.request(i, max_id)  # noqa: E731
                lat[name].append(
                    await open_loop(
                        HOST, servers[name].port, make, rate=rate, seconds=prof.open_seconds
                    )
                )
    out: dict[str, Any] = {"endpoint": ep.name, "rate": rate}
    for name in servers:
        s: dict[str, float | None] = (
            dict(summary(lat[name])) if lat.get(name) else {"p50_ms": None, "p99_ms": None}
        )
        out[name] = {
            "rps": rps[name],
            "rps_runs": [round(w["rps"], 1) for w in wrk[name]],
            "cpu_us": median([w["cpu_us"] for w in wrk[name]]),
            "cpu_us_runs": [round(w["cpu_us"], 1) for w in wrk[name]],
            "p50_ms": s["p50_ms"],
            "p99_ms": s["p99_ms"],
            "non_2xx": (s.get("non_2xx") or 0) + sum(w["non_2xx"] for w in wrk[name]),
            "open_loop_statuses": merged_statuses(lat[name]) if lat.get(name) else {},
        }
        if "hello" in servers:
            runs = units.get(name, [1.0] * len(wrk[name]))
            out[name]["hello_units"] = median(runs)
            out[name]["hello_units_runs"] = [round(u, 2) for u in runs]
    if "baseline" in servers:
        out["ratio"] = rps["ours"] / rps["baseline"] if rps["baseline"] else float("nan")
    if "before" in servers:
        out["after_before"] = rps["ours"] / rps["before"] if rps["before"] else float("nan")
    print(
        f"  {ep.name:14} "
        + "  ".join(
            f"{n}: {out[n]['rps']:8.1f} req/s {out[n]['cpu_us']:7.1f} µs/req"
            + (f" {out[n]['hello_units']:5.2f} hu" if "hello_units" in out[n] else "")
            + (f" p50 {out[n]['p50_ms']:6.2f} ms" if out[n]["p50_ms"] is not None else "")
            + f" non-2xx {out[n]['non_2xx']}"
            for n in servers
        ),
        flush=True,
    )
    return out


@asynccontextmanager
async def pg_database(server_dsn: str) -> AsyncIterator[str]:
    """A new, randomly named database on the server, dropped afterwards."""
    name = f"bench_{secrets.token_hex(4)}"
    parts = urlsplit(server_dsn)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def alembic(database_url: str, target: str) -> None:
    env = dict(os.environ, DATABASE_URL=database_url, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(
        [str(BIN / "alembic"), "upgrade", target],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


async def explain(dsn: str) -> dict[str, str]:
    """The plans of the search and list queries, as the service sends them (parameters bound)."""
    conn = await asyncpg.connect(dsn)
    cols = "id, label, source, url, submitter_id, created_at, updated_at"
    plans = {}
    try:
        for keyword in (seed.COMMON_KEYWORD, seed.RARE_KEYWORD):
            rows = await conn.fetch(
                f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT {cols} FROM recipe "
                f"WHERE label ILIKE $1 ESCAPE '\\' ORDER BY id DESC LIMIT $2",
                f"%{keyword}%",
                10,
            )
            plans[f"search {keyword}"] = "\n".join(r[0] for r in rows)
    finally:
        await conn.close()
    return plans


async def run_dataset(
    name: str,
    kind: str,
    recipes: int,
    prof: Profile,
    pg_server: str,
    tmp: Path,
    secret: str,
    redis_server: str = DEFAULT_REDIS,
) -> dict[str, Any]:
    print(f"\n== {name}: {recipes:,} recipes", flush=True)
    hashed = PasswordHash((Argon2Hasher(),)).hash(seed.BENCH_PASSWORD)
    redis_url = redis_server if name.endswith("-redis") else ""
    info: dict[str, Any] = {"dataset": name, "recipes": recipes, "redis": bool(redis_url)}
    one, _, _ = cpus()
    async with pg_database(pg_server) if kind == "pg" else sqlite_file(tmp / f"{name}.db") as dsn:
        db_url = (
            dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
            if kind == "pg"
            else f"sqlite+aiosqlite:///{dsn}"
        )
        began = time.monotonic()
        # The trigram index is built after the rows are in: one bulk build, not a million updates.
        await asyncio.to_thread(alembic, db_url, "0002" if kind == "pg" else "head")
        if kind == "pg":
            await seed.seed_postgres(dsn, recipes, hashed)
            await asyncio.to_thread(alembic, db_url, "head")
        else:
            await asyncio.to_thread(seed.seed_sqlite, dsn, recipes, hashed)
        info["seed_seconds"] = round(time.monotonic() - began, 1)
        print(f"  seeded and migrated in {info['seed_seconds']} s", flush=True)

        servers = {"ours": await start_service(db_url, secret, 1, one, tmp, redis_url=redis_url)}
        # Later starts, on the now migrated and seeded database, give the start-up figure.
        starts = []
        for _ in range(prof.starts):
            stop(servers["ours"])
            servers["ours"] = await start_service(db_url, secret, 1, one, tmp, redis_url=redis_url)
            starts.append(round(servers["ours"].startup, 2))
        info["startup_seconds"] = max(starts)
        info["startup_runs"] = starts
        print(f"  service start-up on a migrated database: {starts} s", flush=True)
        if prof.compare is not None and prof.compare.is_dir():
            servers["before"] = await start_service(
                db_url, secret, 1, one, tmp, prof.compare, redis_url=redis_url
            )
        if kind == "pg":
            servers["baseline"] = await start_baseline(dsn, secret, 1, one, tmp)
        if prof.hello:
            servers["hello"] = await start_hello(one, tmp)
        try:
            token = await login(servers["ours"].port)
            eps = endpoints(recipes, token)
            if kind == "sqlite":
                # The framework-only and hashing rows say nothing new about the database.
                eps = [e for e in eps if e.name not in ("healthz", "login")]
            elif recipes < 100_000 and prof.extras:
                eps = [
                    e
                    for e in eps
                    if e.name in ("by-id", "list-first", "search-common", "search-rare")
                ]
            if "baseline" in servers:
                info["parity_problems"] = await parity(
                    servers["ours"], servers["baseline"], eps, recipes
                )
                for p in info["parity_problems"]:
                    print(f"  PARITY: {p}", flush=True)
            if prof.endpoints:
                eps = [e for e in eps if e.name in prof.endpoints]
            info["rows"] = [
                await measure(
                    servers, ep, recipes, prof, tmp, warm=bool(redis_url) and ep.name == "by-id"
                )
                for ep in eps
            ]
            if kind == "pg" and prof.extras and recipes >= 100_000:
                info["explain"] = await explain(dsn)
                by_id_rps = next(r["ours"]["rps"] for r in info["rows"] if r["endpoint"] == "by-id")
                info["contention"] = await contention(servers, eps, recipes, prof, by_id_rps)
            info["rss_mb"] = worker_rss_mb(servers["ours"])
        finally:
            for server in servers.values():
                stop(server)
        if kind == "pg" and prof.extras and recipes >= 100_000:
            info["workers2"] = await workers2(db_url, secret, eps, recipes, prof, tmp)
    return info


@asynccontextmanager
async def sqlite_file(path: Path) -> AsyncIterator[str]:
    try:
        yield str(path)
    finally:
        for p in path.parent.glob(path.name + "*"):
            p.unlink()


async def contention(
    servers: dict[str, Server], eps: list[Endpoint], max_id: int, prof: Profile, by_id_rps: float
) -> dict[str, Any]:
    """p99 of by-id reads at a fixed rate, idle and while 4 clients log in back to back."""
    by_id = next(e for e in eps if e.name == "by-id")
    log_in = next(e for e in eps if e.name == "login")
    # A rate the service holds with room to spare, so queueing is the logins' doing.
    rate = min(200.0, 0.4 * by_id_rps)
    out: dict[str, Any] = {"rate": rate}

    async def probe(port: int) -> Result:
        return await open_loop(
            HOST, port, lambda i: by_id.request(i, max_id), rate=rate, seconds=prof.open_seconds * 2
        )

    for name, server in servers.items():
        if name == "hello":
            continue
        idle, busy, logins = [], [], []
        for _ in range(prof.rounds):
            idle.append(await probe(server.port))
            stop_event = asyncio.Event()
            task = asyncio.create_task(
                closed_loop(
                    HOST, server.port, lambda i: log_in.request(i, 1), clients=4, stop=stop_event
                )
            )
            await asyncio.sleep(0.5)
            busy.append(await probe(server.port))
            stop_event.set()
            logins.append(await task)
        i, b = summary(idle), summary(busy)
        out[name] = {
            "idle_p99_ms": i["p99_ms"],
            "busy_p99_ms": b["p99_ms"],
            "ratio": b["p99_ms"] / i["p99_ms"],
            "logins_per_s": median([r.rps for r in logins]),
            "non_2xx": i["non_2xx"] + b["non_2xx"] + sum(r.non_2xx for r in logins),
        }
        print(
            f"  by-id p99 idle {i['p99_ms']:.2f} ms, with 4 login loops {b['p99_ms']:.2f} ms "
            f"({name}, {out[name]['ratio']:.2f}x)",
            flush=True,
        )
    return out


async def workers2(
    db_url: str, secret: str, eps: list[Endpoint], max_id: int, prof: Profile, tmp: Path
) -> dict[str, Any]:
    """By-id throughput of WORKERS=2 against WORKERS=1, both up at once and loaded in turns."""
    one, every, _ = cpus()
    servers = {
        "ours": await start_service(db_url, secret, 1, one, tmp),
        "ours W=2": await start_service(db_url, secret, 2, every, tmp),
    }
    try:
        by_id = next(e for e in eps if e.name == "by-id")
        row = await measure(
            servers, Endpoint(**{**by_id.__dict__, "connections": 64}), max_id, prof, tmp
        )
        row["rss_mb_w2"] = worker_rss_mb(servers["ours W=2"])
    finally:
        for server in servers.values():
            stop(server)
    row["ratio"] = row["ours W=2"]["rps"] / row["ours"]["rps"]
    print(f"  WORKERS=2 / WORKERS=1 on by-id: {row['ratio']:.2f}x", flush=True)
    return row


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load": os.getloadavg(),
    }


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "—" if v is None or v != v else format(v, spec)


def table(datasets: list[dict[str, Any]], before: dict[str, Any] | None = None) -> str:
    if any("hello_units" in row["ours"] for ds in datasets for row in ds.get("rows", [])):
        return hello_table(datasets, before)
    compared = any("after_before" in row for ds in datasets for row in ds.get("rows", []))
    head = (
        "| endpoint | dataset | ours req/s | baseline req/s | ratio | p50 ms (ours / base) "
        "| p99 ms (ours / base) | non-2xx |" + (" ours / before |" if compared else "")
    )
    lines = [head, "|" + "---|" * (9 if compared else 8)]
    for ds in datasets:
        for row in ds.get("rows", []):
            o, b = row["ours"], row.get("baseline")
            lines.append(
                f"| {row['endpoint']} | {ds['dataset']} | {fmt(o['rps'])} | "
                f"{fmt(b['rps']) if b else '—'} | {fmt(row.get('ratio'), '.2f')} | "
                f"{fmt(o['p50_ms'], '.2f')} / {fmt(b['p50_ms'], '.2f') if b else '—'} | "
                f"{fmt(o['p99_ms'], '.2f')} / {fmt(b['p99_ms'], '.2f') if b else '—'} | "
                f"{o['non_2xx'] + (b['non_2xx'] if b else 0)} |"
                + (f" {fmt(row.get('after_before'), '.2f')} |" if compared else "")
            )
    return "\n".join(lines)


def _before_units(before: dict[str, Any] | None, dataset: str, endpoint: str) -> float | None:
    """The same row's hello units in an earlier report, if it has them."""
    for ds in (before or {}).get("datasets", []):
        if ds["dataset"] == dataset:
            for row in ds.get("rows", []):
                if row["endpoint"] == endpoint:
                    units = row["ours"].get("hello_units")
                    return float(units) if units is not None else None
    return None


def hello_table(datasets: list[dict[str, Any]], before: dict[str, Any] | None = None) -> str:
    """Hello units (server CPU per request / the hello floor's, same round; medians) per row;
    `ours / before` divides hello units too (below 1: cheaper than before)."""
    compared = before is not None or any(
        "after_before" in row for ds in datasets for row in ds.get("rows", [])
    )
    head = (
        "| endpoint | dataset | ours, hello units | baseline, hello units | ours req/s "
        "| baseline req/s | hello req/s | ratio | non-2xx |"
        + (" ours / before |" if compared else "")
    )
    lines = [head, "|---|---|" + "---:|" * (8 if compared else 7)]
    for ds in datasets:
        for row in ds.get("rows", []):
            o, b, h = row["ours"], row.get("baseline"), row.get("hello")
            if before is not None:
                earlier = _before_units(before, ds["dataset"], row["endpoint"])
                versus = o["hello_units"] / earlier if earlier else None
            elif "before" in row and "hello_units" in row["before"]:
                versus = o["hello_units"] / row["before"]["hello_units"]
            else:
                versus = None
            lines.append(
                f"| {row['endpoint']} | {ds['dataset']} | {fmt(o.get('hello_units'), '.2f')} | "
                f"{fmt(b.get('hello_units'), '.2f') if b else '—'} | {fmt(o['rps'])} | "
                f"{fmt(b['rps']) if b else '—'} | {fmt(h['rps']) if h else '—'} | "
                f"{fmt(row.get('ratio'), '.2f')} | {o['non_2xx'] + (b['non_2xx'] if b else 0)} |"
                + (f" {fmt(versus, '.2f')} |" if compared else "")
            )
    return "\n".join(lines)


def hot_targets(datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 17's targets: hello units per hot path, by id and list against the baseline, the
    Redis hit against a database read, and start-up."""
    rows = {
        (ds["dataset"], r["endpoint"]): r
        for ds in datasets
        for r in ds.get("rows", [])
        if "hello_units" in r["ours"]
    }
    checks: list[tuple[str, float, str, float]] = []
    for ds in datasets:
        for endpoint, limit in HOT_TARGETS.items():
            if (row := rows.get((ds["dataset"], endpoint))) is not None:
                units = row["ours"]["hello_units"]
                checks.append((f"{endpoint} ({ds['dataset']}) hello units", units, "<=", limit))
        for endpoint in ("by-id", "list-first"):
            row = rows.get((ds["dataset"], endpoint))
            if row is not None and "ratio" in row:
                checks.append(
                    (f"{endpoint} ({ds['dataset']}) / baseline", row["ratio"], ">=", 0.25)
                )
        cached = rows.get((ds["dataset"], "by-id"))
        read = rows.get((ds["dataset"].removesuffix("-redis"), "by-id"))
        if ds.get("redis") and cached is not None and read is not None:
            checks.append(
                (
                    "by-id: Redis hit / database read (hello units)",
                    cached["ours"]["hello_units"] / read["ours"]["hello_units"],
                    "<",
                    1,
                )
            )
    if rows and all("startup_seconds" in d for d in datasets):
        checks.append(
            ("startup < 2 s (worst)", max(d["startup_seconds"] for d in datasets), "<", 2)
        )
    return _verdicts(checks)


def _verdicts(checks: list[tuple[str, float, str, float]]) -> list[dict[str, Any]]:
    return [
        {
            "target": name,
            "value": round(value, 3),
            "limit": f"{op} {limit}",
            "met": _met(value, op, limit),
        }
        for name, value, op, limit in checks
    ]


def _met(value: float, op: str, limit: float) -> bool:
    return value >= limit if op == ">=" else value <= limit if op == "<=" else value < limit


def targets(datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    big = next((d for d in datasets if d.get("recipes", 0) >= 100_000 and "rows" in d), None)
    if big is None:
        return hot_targets(datasets)
    rows = {r["endpoint"]: r for r in big["rows"]}
    needed = {"by-id", "list-first", "list-deep", "search-common", "search-rare"}
    if not needed <= rows.keys() or "contention" not in big or "workers2" not in big:
        return hot_targets(datasets)  # a narrowed run (--endpoints): the hot paths only
    p50 = {k: r["ours"]["p50_ms"] for k, r in rows.items()}
    checks = [
        ("by-id >= 0.5x baseline", rows["by-id"]["ratio"], ">=", 0.5),
        ("list-first >= 0.5x baseline", rows["list-first"]["ratio"], ">=", 0.5),
        ("deep page p50 <= 1.3x first page", p50["list-deep"] / p50["list-first"], "<=", 1.3),
        ("search (common) p50 <= 2x first page", p50["search-common"] / p50["list-first"], "<=", 2),
        ("search (rare) p50 <= 2x first page", p50["search-rare"] / p50["list-first"], "<=", 2),
        ("by-id p99 with 4 login loops <= 3x idle", big["contention"]["ours"]["ratio"], "<=", 3),
        ("WORKERS=2 >= 1.6x WORKERS=1 (by-id)", big["workers2"]["ratio"], ">=", 1.6),
        ("startup < 3 s", max(d["startup_seconds"] for d in datasets), "<", 3),
        ("RSS per worker < 120 MB", max(big["rss_mb"] + big["workers2"]["rss_mb_w2"]), "<", 120),
        (
            "zero non-2xx",
            sum(
                r["ours"]["non_2xx"] + r.get("baseline", {}).get("non_2xx", 0)
                for d in datasets
                for r in d["rows"]
            ),
            "<=",
            0,
        ),
    ]
    return _verdicts(checks)


def print_report(report: dict[str, Any], path: Path) -> None:
    print("\n" + report["table"])
    for t in report["targets"]:
        print(f"{'MET ' if t['met'] else 'MISS'} {t['target']}: {t['value']} ({t['limit']})")
    for ds in report["datasets"]:
        for name, plan in ds.get("explain", {}).items():
            print(f"\nEXPLAIN {name}:\n{plan}")
        extra = {k: ds[k] for k in ("startup_seconds", "rss_mb", "seed_seconds") if k in ds}
        print(f"{ds['dataset']}: {extra}")
    load = report["machine_after"]["load"]
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; report: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="seconds, small data; asserts parity")
    parser.add_argument(
        "--hot",
        action="store_true",
        help="the hot paths in hello units: PostgreSQL 10k, with and without Redis",
    )
    parser.add_argument(
        "--redis",
        default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS),
        help="the Redis the *-redis datasets serve with",
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG_URL", DEFAULT_PG),
        help="a PostgreSQL server to create the bench databases on",
    )
    parser.add_argument("--only", help="comma-separated dataset names, e.g. pg-1m")
    parser.add_argument("--out", type=Path, help="the JSON report (default bench/results/)")
    parser.add_argument("--render", type=Path, help="print the table of an earlier report")
    parser.add_argument("--endpoints", help="comma-separated endpoint names, e.g. by-id,healthz")
    parser.add_argument("--rounds", type=int, help="runs per server and endpoint")
    parser.add_argument("--seconds", type=int, help="seconds per wrk run")
    parser.add_argument(
        "--compare",
        type=Path,
        help="'before': a saved JSON report (hello units), or a checkout served alongside",
    )
    args = parser.parse_args()
    before = (
        json.loads(args.compare.read_text()) if args.compare and args.compare.is_file() else None
    )
    if args.render:
        earlier = json.loads(args.render.read_text())
        earlier["targets"] = targets(earlier["datasets"])
        earlier["table"] = table(earlier["datasets"], before)
        args.render.write_text(json.dumps(earlier, indent=2, default=str) + "\n")
        print_report(earlier, args.render)
        return
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (apt-get install wrk util-linux)")
    prof = SMOKE if args.smoke else HOT if args.hot else FULL
    if args.only:
        prof = Profile(
            **{
                **prof.__dict__,
                "datasets": [d for d in prof.datasets if d[0] in args.only.split(",")],
            }
        )
    overrides: dict[str, Any] = {}
    if args.endpoints:
        overrides["endpoints"] = tuple(args.endpoints.split(","))
    if args.rounds:
        overrides["rounds"] = args.rounds
    if args.seconds:
        overrides["wrk_seconds"] = args.seconds
    if args.compare:
        overrides["compare"] = args.compare.resolve()
    prof = Profile(**{**prof.__dict__, **overrides})
    _, _, load_core = cpus()
    # This process is the open-loop generator: it shares the load core with wrk, not the server's.
    os.sched_setaffinity(0, {int(load_core)})
    pg_server = args.pg.replace("postgresql+asyncpg://", "postgresql://", 1)
    secret = secrets.token_urlsafe(48)
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "machine_before": machine(),
        "datasets": [],
    }
    loop_factory = None
    with suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with tempfile.TemporaryDirectory(prefix="bench-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            for name, kind, recipes in prof.datasets:
                with asyncio.Runner(loop_factory=loop_factory) as runner:
                    report["datasets"].append(
                        runner.run(
                            run_dataset(
                                name, kind, recipes, prof, pg_server, tmp, secret, args.redis
                            )
                        )
                    )
        finally:
            for log in tmp.glob("*.log"):
                text = log.read_text(errors="replace")
                if "Traceback" in text or "ERROR" in text:
                    print(f"\n-- {log.name} (tail)\n" + "\n".join(text.splitlines()[-30:]))
    report["machine_after"] = machine()
    report["targets"] = targets(report["datasets"])
    report["table"] = table(report["datasets"], before)
    if before is not None:
        report["compared_with"] = str(args.compare)
    default = "smoke.json" if args.smoke else "hot.json" if args.hot else "latest.json"
    out = args.out or RESULTS / default
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_report(report, out)
    problems = [p for ds in report["datasets"] for p in ds.get("parity_problems", [])]
    non_2xx = sum(
        r["ours"]["non_2xx"] + r.get("baseline", {}).get("non_2xx", 0)
        for ds in report["datasets"]
        for r in ds["rows"]
    )
    if args.smoke and (problems or non_2xx):
        sys.exit(f"smoke failed: {len(problems)} parity problems, {non_2xx} non-2xx answers")


if __name__ == "__main__":
    main()
