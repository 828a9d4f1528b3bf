"""Benchmark `chuishao serve` on loopback: single-message latency, then sustained throughput.

    python bench/bench_serve.py --model /tmp/chuishao-model --texts ../shared/data/whistle/test.jsonl

Phase 1 sends requests one at a time and reads the app's own time from the ``Server-Timing``
header (latency "at the server") as well as the client's round trip. Phase 2 runs `wrk` (or a
bounded asyncio/httpx generator if wrk is absent) for --duration seconds and counts errors.
Only 127.0.0.1 is targeted. Prints a summary and writes bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def _texts(path: Path, limit: int) -> list[dict[str, object]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if isinstance(rec.get("text"), str) and rec["text"].strip():
                rows.append({"text": rec["text"], "title": rec.get("title"), "id": str(rec.get("id", len(rows)))})
            if len(rows) >= limit:
                break
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def start_server(args: argparse.Namespace, port: int, db: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "chuishao.cli", "serve", "--port", str(port), "--workers", str(args.workers),
           "--no-access-log", "--log-level", "warning", "--db-url", f"sqlite:///{db}"]
    if args.model:
        cmd += ["--model", str(args.model)]
    if args.cpus and shutil.which("taskset"):
        cmd = ["taskset", "-c", args.cpus, *cmd]
    env = {**os.environ, "CHUISHAO_MODEL_POLL_SECONDS": "0"}
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit("server not ready in 120 s")


def latency_phase(base: str, rows: list[dict[str, object]], n: int) -> dict[str, float]:
    server_ms, client_ms, errors = [], [], 0
    with httpx.Client(base_url=base, timeout=10) as c:
        for i in range(50):  # warm-up, not counted
            c.post("/v1/classify", json=rows[i % len(rows)])
        for i in range(n):
            t = time.perf_counter()
            r = c.post("/v1/classify", json=rows[i % len(rows)])
            client_ms.append((time.perf_counter() - t) * 1000)
            if r.status_code != 200:
                errors += 1
                continue
            server_ms.append(float(re.search(r"dur=([\d.]+)", r.headers["server-timing"]).group(1)))
    return {"requests": n, "errors": errors,
            "server_p50_ms": round(_pct(server_ms, 0.5), 2), "server_p99_ms": round(_pct(server_ms, 0.99), 2),
            "client_p50_ms": round(_pct(client_ms, 0.5), 2), "client_p99_ms": round(_pct(client_ms, 0.99), 2)}


def wrk_phase(base: str, rows: list[dict[str, object]], args: argparse.Namespace) -> dict[str, object]:
    bodies = ",\n".join("[==[" + json.dumps(r, ensure_ascii=True) + "]==]" for r in rows)
    script = (f"local bodies = {{\n{bodies}\n}}\nlocal i = 0\n"
              "request = function()\n  i = i % #bodies + 1\n"
              "  return wrk.format('POST', '/v1/classify', {['Content-Type']='application/json'}, bodies[i])\nend\n")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
           "--timeout", "5s", "--latency", "-s", fh.name, base]
    if args.client_cpus and shutil.which("taskset"):
        cmd = ["taskset", "-c", args.client_cpus, *cmd]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=args.duration + 60).stdout
    os.unlink(fh.name)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = sum(int(x) for x in sock.groups()) if sock else 0
    dist = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+\w+)", out, re.MULTILINE))
    return {"tool": "wrk", "duration_s": args.duration, "connections": args.connections, "requests": total,
            "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "errors": non2xx + socket_errors, "non_2xx": non2xx, "socket_errors": socket_errors,
            "client_p50": dist.get("50"), "client_p99": dist.get("99"), "raw": out}


def httpx_phase(base: str, rows: list[dict[str, object]], args: argparse.Namespace) -> dict[str, object]:
    import asyncio

    async def run() -> dict[str, object]:
        ok = errors = 0
        stop = time.monotonic() + args.duration
        async with httpx.AsyncClient(base_url=base, timeout=5,
                                     limits=httpx.Limits(max_connections=args.connections)) as c:
            async def worker(k: int) -> None:
                nonlocal ok, errors
                i = k
                while time.monotonic() < stop:
                    try:
                        r = await c.post("/v1/classify", json=rows[i % len(rows)])
                        ok, errors = (ok + 1, errors) if r.status_code == 200 else (ok, errors + 1)
                    except httpx.HTTPError:
                        errors += 1
                    i += args.connections
            started = time.monotonic()
            await asyncio.gather(*(worker(k) for k in range(args.connections)))
            elapsed = time.monotonic() - started
        return {"tool": "httpx", "duration_s": args.duration, "connections": args.connections,
                "requests": ok + errors, "requests_per_s": round((ok + errors) / elapsed, 1), "errors": errors}

    return asyncio.run(run())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="model directory (default: the bundled model)")
    p.add_argument("--texts", type=Path, default=REPO / "data" / "fixtures" / "labelled-mini.jsonl")
    p.add_argument("--limit", type=int, default=500, help="distinct messages cycled through")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cpus", default="0,1", help="taskset CPU list for the server ('' for none)")
    p.add_argument("--client-cpus", default="", help="taskset CPU list for wrk")
    p.add_argument("--latency-requests", type=int, default=1000)
    p.add_argument("--duration", type=int, default=60)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--output", type=Path, default=RESULTS / "serve.json")
    args = p.parse_args()

    rows = _texts(args.texts, args.limit)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(args, port, Path(tmp) / "fb.sqlite3")
        try:
            version = httpx.get(base + "/readyz").json()["model_version"]
            latency = latency_phase(base, rows, args.latency_requests)
            print(f"single message, sequential ({latency['requests']} requests): server p50 {latency['server_p50_ms']} ms, "
                  f"p99 {latency['server_p99_ms']} ms; client round trip p50 {latency['client_p50_ms']} ms, "
                  f"p99 {latency['client_p99_ms']} ms; errors {latency['errors']}", flush=True)
            load = wrk_phase(base, rows, args) if shutil.which("wrk") else httpx_phase(base, rows, args)
            print(f"sustained {load['duration_s']} s, {load['connections']} connections ({load['tool']}): "
                  f"{load['requests_per_s']} requests/s, {load['requests']} requests, errors {load['errors']}", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
    load.pop("raw", None)
    result = {
        "benchmark": "serve", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model_version": version, "texts": str(args.texts), "distinct_texts": len(rows),
        "mean_text_chars": round(sum(len(r["text"]) for r in rows) / len(rows), 1),
        "server_workers": args.workers, "server_cpus": args.cpus or "all", "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(), "python": platform.python_version(),
        "latency": latency, "throughput": load,
        "targets": {"server_p50_ms": 10, "server_p99_ms": 30, "requests_per_s": 300, "errors": 0},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
