"""Closed-loop HTTP load generator for a fill-mask server on loopback (maskserve or pipeline_server.py).

C clients each send one request, wait for the answer, and send the next, for a warm-up (not counted) and
then a measured window bounded by --duration and --max-requests. Prints a JSON report on stdout and one
human line on stderr. Import it and call ``run(LoadConfig(...))`` to get the report as a dict.

    python benchmarks/loadgen.py --url http://127.0.0.1:8080 --model bert --protocol hf \\
        --concurrency 16 --duration 20 --probe-health
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

import workload

Protocol = Literal["v1", "v2", "hf"]
HEALTH_PATH = "/v2/health/ready"
HEALTH_INTERVAL_S = 0.1
# Enough distinct requests that caching a recent answer would not help, few enough to build instantly.
POOL_REQUESTS = 2048


@dataclass(frozen=True)
class LoadConfig:
    url: str
    model: str = "bert"
    protocol: Protocol = "hf"
    concurrency: int = 1
    duration: float = 20.0
    sentences_per_request: int = 1
    max_requests: int = 100_000
    seed: int = 0
    mask: str = "[MASK]"
    probe_health: bool = False
    warmup: float = 3.0
    timeout: float = 120.0


@dataclass
class _Window:
    record: bool
    deadline: float
    max_requests: int
    issued: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    sentences: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def check_loopback(url: str) -> None:
    """Refuse anything but this machine: the generator is meant to load a local server only."""
    host = urlsplit(url).hostname
    if host is None:
        raise SystemExit(f"--url {url!r} has no host")
    if host.lower() == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"--url host {host!r} is not loopback (127.0.0.0/8, localhost or ::1); refusing")


def request_path(protocol: Protocol, model: str) -> str:
    return {
        "v1": f"/v1/models/{model}:predict",
        "v2": f"/v2/models/{model}/infer",
        "hf": f"/models/{model}",
    }[protocol]


def request_body(protocol: Protocol, texts: list[str]) -> bytes:
    body: dict[str, Any]
    if protocol == "v1":
        body = {"instances": texts}
    elif protocol == "v2":
        body = {"inputs": [{"name": "input-0", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
    else:
        body = {"inputs": texts[0] if len(texts) == 1 else texts}
    return json.dumps(body).encode()


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks, as numpy's default."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class _Connection:
    """One keep-alive HTTP/1.1 connection that POSTs and reads a Content-Length answer.

    The generator shares the 2 cores with the server it measures. httpx spends about 2.5 ms of CPU per
    request here, which at 50 requests/s is an eighth of a core taken from the server; this costs about
    0.7 ms. Production clients do not run on the server's cores.
    """

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._timeout = timeout
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes) -> int:
        try:
            return await asyncio.wait_for(self._post(path, body), self._timeout)
        except BaseException:
            self.close()
            raise

    async def _post(self, path: str, body: bytes) -> int:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._streams
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\nContent-Type: application/json\r\n"
            # Measure the model, not the response cache: runs at several client counts replay one pool.
            f"x-use-cache: false\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode("ascii") + body)
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        if "content-length" not in fields:
            raise ConnectionError(f"answer without Content-Length (status {status})")
        await reader.readexactly(int(fields["content-length"]))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def _client(
    url: str, timeout: float, path: str, bodies: list[bytes], per_request: int, window: _Window
) -> None:
    conn = _Connection(url, timeout)
    try:
        await _client_loop(conn, path, bodies, per_request, window)
    finally:
        conn.close()


async def _client_loop(
    conn: _Connection, path: str, bodies: list[bytes], per_request: int, window: _Window
) -> None:
    while time.monotonic() < window.deadline and window.issued < window.max_requests:
        body = bodies[window.issued % len(bodies)]
        window.issued += 1
        start = time.perf_counter()
        try:
            status = await conn.post(path, body)
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ValueError,
        ) as exc:
            if window.record:
                window.errors[type(exc).__name__] += 1
            # A server that is down fails at once; do not let the clients spin on it.
            await asyncio.sleep(0.01)
            continue
        elapsed_ms = (time.perf_counter() - start) * 1000
        if not window.record:
            continue
        if status == 200:
            window.latencies_ms.append(elapsed_ms)
            window.sentences += per_request
        else:
            window.errors[str(status)] += 1


async def _probe_health(
    client: httpx.AsyncClient, stop: asyncio.Event, out: list[float], failures: list[str]
) -> None:
    next_tick = time.monotonic()
    while not stop.is_set():
        start = time.perf_counter()
        try:
            response = await client.get(HEALTH_PATH)
            if response.status_code == 200:
                out.append((time.perf_counter() - start) * 1000)
            else:
                failures.append(str(response.status_code))
        except httpx.HTTPError as exc:
            failures.append(type(exc).__name__)
        next_tick += HEALTH_INTERVAL_S
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))


async def _phase(cfg: LoadConfig, bodies: list[bytes], seconds: float, record: bool) -> tuple[_Window, float]:
    window = _Window(record=record, deadline=time.monotonic() + seconds, max_requests=cfg.max_requests)
    path = request_path(cfg.protocol, cfg.model)
    start = time.perf_counter()
    await asyncio.gather(
        *(
            _client(cfg.url, cfg.timeout, path, bodies, cfg.sentences_per_request, window)
            for _ in range(cfg.concurrency)
        )
    )
    return window, time.perf_counter() - start


async def run_load(cfg: LoadConfig) -> dict[str, Any]:
    check_loopback(cfg.url)
    n = cfg.sentences_per_request
    texts = workload.sentences(POOL_REQUESTS * n, cfg.seed, cfg.mask)
    # The generator shares the CPU with the server, so bodies are encoded once, up front.
    bodies = [request_body(cfg.protocol, texts[i : i + n]) for i in range(0, len(texts), n)]
    # The load has a connection per client; the health probe has its own.
    async with httpx.AsyncClient(base_url=cfg.url, timeout=cfg.timeout) as client:
        if cfg.warmup > 0:
            await _phase(cfg, bodies, cfg.warmup, record=False)
        health_ms: list[float] = []
        health_failures: list[str] = []
        stop = asyncio.Event()
        probe = (
            asyncio.create_task(_probe_health(client, stop, health_ms, health_failures))
            if cfg.probe_health
            else None
        )
        try:
            window, elapsed = await _phase(cfg, bodies, cfg.duration, record=True)
        finally:
            stop.set()
            if probe is not None:
                await probe

    lat = window.latencies_ms
    report: dict[str, Any] = {
        "config": asdict(cfg),
        "elapsed_s": round(elapsed, 3),
        "requests": len(lat),  # answered with 200; the others are counted in "errors"
        "sentences": window.sentences,
        "sentences_per_s": round(window.sentences / elapsed, 2) if elapsed > 0 else 0.0,
        "requests_per_s": round(len(lat) / elapsed, 2) if elapsed > 0 else 0.0,
        "latency_ms": {f"p{q}": _round(percentile(lat, q)) for q in (50, 90, 99)},
        "errors": dict(window.errors),
        "health": None,
    }
    if cfg.probe_health:
        report["health"] = {
            "probes": len(health_ms),
            "p50_ms": _round(percentile(health_ms, 50)),
            "p99_ms": _round(percentile(health_ms, 99)),
            "max_ms": _round(max(health_ms, default=None)),
            "failures": dict(Counter(health_failures)),
        }
    return report


def run(cfg: LoadConfig) -> dict[str, Any]:
    return asyncio.run(run_load(cfg))


def human_line(report: dict[str, Any]) -> str:
    cfg = report["config"]
    lat = report["latency_ms"]
    line = (
        f"{cfg['protocol']} c={cfg['concurrency']} n/req={cfg['sentences_per_request']}: "
        f"{report['requests']} requests, {report['sentences']} sentences in {report['elapsed_s']:.1f}s, "
        f"{report['sentences_per_s']:.1f} sentences/s, latency p50 {lat['p50']} p90 {lat['p90']} "
        f"p99 {lat['p99']} ms, errors {report['errors'] or 'none'}"
    )
    health = report["health"]
    if health is not None:
        line += (
            f"; health p50 {health['p50_ms']} p99 {health['p99_ms']} max {health['max_ms']} ms "
            f"({health['probes']} probes, failures {health['failures'] or 'none'})"
        )
    return line


def command_line(cfg: LoadConfig) -> str:
    """The equivalent command line, for reports."""
    parts = [
        "python benchmarks/loadgen.py",
        f"--url {cfg.url} --model {cfg.model} --protocol {cfg.protocol}",
        f"--concurrency {cfg.concurrency} --duration {cfg.duration:g} --warmup {cfg.warmup:g}",
        f"--sentences-per-request {cfg.sentences_per_request} --max-requests {cfg.max_requests}",
        f"--seed {cfg.seed} --mask '{cfg.mask}'",
    ]
    if cfg.probe_health:
        parts.append("--probe-health")
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--url", required=True, help="server base URL; loopback hosts only")
    parser.add_argument("--model", default="bert", help="served model name (default: bert)")
    parser.add_argument("--protocol", choices=["v1", "v2", "hf"], default="hf", help="default: hf")
    parser.add_argument("--concurrency", type=int, default=1, help="concurrent clients (default: 1)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds (default: 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="uncounted warm-up seconds (default: 3)")
    parser.add_argument("--sentences-per-request", type=int, default=1, help="default: 1")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per phase (default: 100000)")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default: 0)")
    parser.add_argument("--mask", default="[MASK]", help="the model's mask token (default: [MASK])")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, s (default: 120)")
    parser.add_argument(
        "--probe-health", action="store_true", help=f"poll GET {HEALTH_PATH} every 100 ms while measuring"
    )
    args = parser.parse_args()
    if args.concurrency < 1 or args.sentences_per_request < 1 or args.max_requests < 1:
        parser.error("--concurrency, --sentences-per-request and --max-requests must be at least 1")
    check_loopback(args.url)
    report = run(
        LoadConfig(
            url=args.url,
            model=args.model,
            protocol=args.protocol,
            concurrency=args.concurrency,
            duration=args.duration,
            sentences_per_request=args.sentences_per_request,
            max_requests=args.max_requests,
            seed=args.seed,
            mask=args.mask,
            probe_health=args.probe_health,
            warmup=args.warmup,
            timeout=args.timeout,
        )
    )
    print(json.dumps(report, indent=2))
    print(human_line(report), file=sys.stderr)


if __name__ == "__main__":
    main()
