"""Fault injection against a real `chuishao serve` on 127.0.0.1: one PASS/FAIL line per case.

    python bench/bench_faults.py [--model DIR] [--only CASE ...]

Cases: a corrupted / deleted model directory and a worker killed with -9 (2 workers); 20 starts
of 2 workers on a fresh SQLite file; 10 SIGHUP reloads under load, each to the other of two model
versions (2 workers, reloaded in place); a full disk
(a 1 MiB tmpfs: root only, else skipped) and a read-only feedback database; over-limit batches
(413 in at most 20 ms whatever their size, and single messages' p99 at most 30 ms while 4
clients send them). Results: bench/results/faults.json. Load is bounded and on loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KEY = "bench-faults-key"
TEXT = "小区楼下烧烤店每天营业到凌晨两点，油烟和噪音严重扰民。"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(url: str, body: bytes | None = None, key: bool = False, timeout: float = 10) -> tuple[int, bytes]:
    headers = {"content-type": "application/json", "connection": "close"}
    if key:
        headers["x-api-key"] = KEY
    req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


class Service:
    """`chuishao serve` in a subprocess; its log in a file."""

    def __init__(self, model: Path, workers: int, db_url: str, workdir: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"serve-{self.port}.log"
        environ = {**os.environ, "CHUISHAO_API_KEYS": KEY, "CHUISHAO_MODEL_POLL_SECONDS": "0",
                   "CHUISHAO_ID_KEY_FILE": str(workdir / "id-key"),  # not the user's own key file
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), **env}
        environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "chuishao.cli", "serve", "--model", str(model),
                                          "--port", str(self.port), "--workers", str(workers), "--db-url", db_url,
                                          "--no-access-log"], env=environ, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=workdir)

    def ready(self, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if request(self.url + "/readyz", timeout=2)[0] == 200:
                return True
            time.sleep(0.1)
        return False

    def workers(self) -> list[int]:
        pids: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                for pid in (task / "children").read_text().split():
                    with contextlib.suppress(OSError):
                        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                            pids.append(int(pid))
        return sorted(pids)

    def readyz(self) -> dict[str, object]:
        status, body = request(self.url + "/readyz", timeout=5)
        return json.loads(body) if status == 200 else {"status_code": status}

    def text_log(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@contextlib.contextmanager
def service(*args: object, **env: str) -> Iterator[Service]:
    s = Service(*args, **env)  # type: ignore[arg-type]
    try:
        yield s
    finally:
        s.stop()


class Load:
    """``clients`` threads sending single messages (a new connection each) until stopped."""

    def __init__(self, url: str, clients: int = 4, body: bytes | None = None, path: str = "/v1/classify") -> None:
        self.url, self.body = url + path, body or json.dumps({"text": TEXT}, ensure_ascii=False).encode()
        self.stop_flag = threading.Event()
        self.statuses: list[int] = []
        self.latencies: list[float] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        while not self.stop_flag.is_set():
            t = time.perf_counter()
            status, _ = request(self.url, self.body)
            self.latencies.append(time.perf_counter() - t)
            self.statuses.append(status)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.statuses if s != 200)

    @property
    def failures(self) -> dict[str, int]:
        """Non-200 answers by status (0: the connection failed)."""
        counts: dict[str, int] = {}
        for s in self.statuses:
            if s != 200:
                counts[str(s)] = counts.get(str(s), 0) + 1
        return counts


# ---- the cases --------------------------------------------------------------------------------
def broken_model_and_worker_kill(model: Path, work: Path, breakage: str,
                                 load_seconds: float = 3) -> tuple[bool, dict[str, object]]:
    served = shutil.copytree(model, work / f"model-{breakage}")
    with service(served, 2, f"sqlite:///{work / f'fb-{breakage}.sqlite3'}", work) as s:
        if not s.ready():
            return False, {"error": "did not start", "log": s.text_log()[-1500:]}
        before = s.workers()
        if breakage == "corrupted":
            (served / "model.safetensors").write_bytes(b"corrupted")
        else:
            shutil.rmtree(served)
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and s.proc.poll() is None:
            now = s.workers()
            if len(now) == 2 and before[0] not in now:
                break
            time.sleep(0.2)
        respawned = s.workers()
        with Load(s.url, clients=2) as load:
            time.sleep(load_seconds)
        sources: set[str] = set()
        deadline = time.monotonic() + 20
        while "verified copy" not in sources and time.monotonic() < deadline:  # the answering worker is the kernel's pick
            with Load(s.url, clients=2):  # busy workers: the next connection goes to another
                sources.add(str(s.readyz().get("model_source")))
        on_disk = s.readyz().get("model_on_disk")
        ok = (s.proc.poll() is None and len(respawned) == 2 and before[0] not in respawned and load.failed == 0
              and "verified copy" in sources and on_disk == "broken")
        return ok, {"alive": s.proc.poll() is None, "workers_before": before, "workers_after": respawned,
                    "requests_after_respawn": len(load.statuses), "failed": load.failed,
                    "model_sources_seen": sorted(sources), "model_on_disk": on_disk}


def fresh_database_starts(model: Path, work: Path, starts: int = 20) -> tuple[bool, dict[str, object]]:
    failures: list[str] = []
    seconds: list[float] = []
    for i in range(starts):
        db = work / f"fresh-{i}" / "fb.sqlite3"
        t = time.perf_counter()
        with service(model, 2, f"sqlite:///{db}", work) as s:
            started = s.ready() and len(s.workers()) == 2
            seconds.append(time.perf_counter() - t)
            body = json.dumps({"id": f"m{i}", "topic": "W06", "text": TEXT}, ensure_ascii=False).encode()
            stored = [request(s.url + "/v1/feedback", body, key=True)[0] for _ in range(4)]
            if not started or s.proc.poll() is not None or set(stored) != {201}:
                failures.append(f"start {i}: started={started} feedback={stored} log: {s.text_log()[-400:]}")
    return not failures, {"starts": starts, "failed": len(failures), "first_failures": failures[:2],
                          "start_seconds_median": round(statistics.median(seconds), 2)}


def _model_pair(model: Path, work: Path) -> tuple[Path, Path, Path]:
    """Two versions of one model (the second's manifest says another version) and a symlink to the first."""
    first = shutil.copytree(model, work / "model-a")
    second = shutil.copytree(model, work / "model-b")
    manifest = json.loads((second / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] += "-b"
    (second / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    current = work / "current"
    current.symlink_to(first)
    return first, second, current


def _repoint(link: Path, target: Path) -> None:
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def sighup_reloads(model: Path, work: Path, reloads: int = 10, clients: int = 4) -> tuple[bool, dict[str, object]]:
    """SIGHUP to the service after repointing its model symlink to the other version, ``reloads``
    times, while ``clients`` send single messages: every worker must switch each time, no request fail."""
    first, second, current = _model_pair(model, work)
    with service(current, 2, f"sqlite:///{work / 'fb-hup.sqlite3'}", work) as s:
        if not s.ready():
            return False, {"error": "did not start", "log": s.text_log()[-1500:]}
        workers = s.workers()
        done, took = 0, []
        with Load(s.url, clients=clients) as load:
            for i in range(reloads):
                _repoint(current, second if i % 2 == 0 else first)
                switched = s.text_log().count("model switched")
                t = time.perf_counter()
                s.proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and s.proc.poll() is None:
                    if s.text_log().count("model switched") >= switched + len(workers):  # each worker has switched
                        done += 1
                        took.append(time.perf_counter() - t)
                        break
                    time.sleep(0.1)
                time.sleep(0.5)
        replaced = sorted(set(workers) - set(s.workers()))
        not_loaded = s.text_log().count("new model not loaded")
        ok = done == reloads and load.failed == 0 and not replaced and not_loaded == 0 and s.proc.poll() is None
        return ok, {"reloads": reloads, "completed": done, "workers_replaced": len(replaced), "not_loaded": not_loaded,
                    "requests": len(load.statuses), "failed": load.failed, "failures_by_status": load.failures,
                    "seconds_per_reload_max": round(max(took), 2) if took else None,
                    "seconds_per_reload_median": round(statistics.median(took), 2) if took else None}


def full_disk(model: Path, work: Path) -> tuple[bool, dict[str, object]]:
    mount = work / "tiny-disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        return True, {"skipped": "mounting a 1 MiB tmpfs needs root"}
    try:
        with service(model, 1, f"sqlite:///{mount / 'fb.sqlite3'}", work) as s:
            if not s.ready():
                return False, {"error": "did not start"}
            first = request(s.url + "/v1/feedback", json.dumps({"id": "a", "topic": "W06", "text": TEXT},
                                                               ensure_ascii=False).encode(), key=True)[0]
            with contextlib.suppress(OSError), (mount / "filler").open("wb") as fh:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            big = json.dumps({"id": "b", "topic": "W06", "text": TEXT * 300}, ensure_ascii=False).encode()
            status, body = request(s.url + "/v1/feedback", big, key=True)
            classify = request(s.url + "/v1/classify", json.dumps({"text": TEXT}, ensure_ascii=False).encode())[0]
            ready = s.readyz()
            metric = b"chuishao_feedback_store_up 0.0" in request(s.url + "/metrics")[1]
            ok = (first == 201 and status == 503 and classify == 200 and ready.get("feedback_store") == "down"
                  and ready.get("ready") is True and metric)
            return ok, {"before": first, "feedback_when_full": status, "detail": json.loads(body or b"{}").get("detail"),
                        "classify": classify, "readyz_status": ready.get("status"),
                        "readyz_feedback_store": ready.get("feedback_store"), "store_up_gauge_0": metric}
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def read_only_store(model: Path, work: Path) -> tuple[bool, dict[str, object]]:
    db = work / "ro.sqlite3"
    with service(model, 2, f"sqlite:///{db}", work) as s:  # creates it
        s.ready()
    with service(model, 2, f"sqlite:///file:{db}?mode=ro&uri=true", work) as s:
        if not s.ready():
            return False, {"error": "did not start", "log": s.text_log()[-1500:]}
        body = json.dumps({"id": "a", "topic": "W06", "text": TEXT}, ensure_ascii=False).encode()
        statuses = [request(s.url + "/v1/feedback", body, key=True)[0] for _ in range(4)]
        detail = json.loads(request(s.url + "/v1/feedback", body, key=True)[1] or b"{}").get("detail")
        classify = request(s.url + "/v1/classify", json.dumps({"text": TEXT}, ensure_ascii=False).encode())[0]
        ready = s.readyz()
        ok = set(statuses) == {503} and classify == 200 and ready.get("feedback_store") == "down" and ready.get("ready")
        return bool(ok), {"feedback": statuses, "detail": detail, "classify": classify,
                          "readyz_status": ready.get("status"), "readyz_feedback_store": ready.get("feedback_store")}


def over_limit_batches(model: Path, work: Path) -> tuple[bool, dict[str, object]]:
    item = json.dumps({"text": TEXT}, ensure_ascii=False)
    bodies = {n: ('{"items": [' + ",".join([item] * n) + "]}").encode() for n in (65, 1_000)}
    bodies[100_000] = ('{"items": [' + ",".join(['{"text": "x"}'] * 100_000) + "]}").encode()  # ~1.4 MB
    bodies[3_000_000] = b'{"items": [' + b",".join([b"{}"] * 1_000_000) + b"]}"  # over the body limit
    with service(model, 2, f"sqlite:///{work / 'fb-dos.sqlite3'}", work) as s:
        if not s.ready():
            return False, {"error": "did not start"}
        refused: dict[str, object] = {}
        for n, body in bodies.items():
            times, statuses = [], set()
            for _ in range(10):
                t = time.perf_counter()
                status, _ = request(s.url + "/v1/classify/batch", body)
                times.append((time.perf_counter() - t) * 1000)
                statuses.add(status)
            refused[f"{n}_items"] = {"bytes": len(body), "status": sorted(statuses),
                                     "ms_median": round(statistics.median(times), 2), "ms_max": round(max(times), 2)}
        single = json.dumps({"text": TEXT}, ensure_ascii=False).encode()
        for _ in range(50):  # warm both workers
            request(s.url + "/v1/classify", single)

        def singles(n: int = 500) -> tuple[float, float]:
            lat: list[float] = []
            for _ in range(n):
                t = time.perf_counter()
                status, _ = request(s.url + "/v1/classify", single)
                lat.append((time.perf_counter() - t) * 1000 if status == 200 else float("inf"))
            lat.sort()
            return lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]

        base_p50, base_p99 = singles()
        batch_file = work / "attack.json"
        batch_file.write_bytes(bodies[100_000])
        # the attackers in their own process: client threads in this one would slow the measuring client
        attack = subprocess.Popen([sys.executable, __file__, "--attack", s.url + "/v1/classify/batch", str(batch_file)],
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        p50, p99 = singles()
        attack.terminate()
        attack_out, _ = attack.communicate(timeout=30)
        attack_statuses = json.loads(attack_out or "{}")
        # over CHUISHAO_MAX_BODY_BYTES the service answers 413 from Content-Length and closes the
        # connection without reading the body: a client still sending may see the reset (0) instead
        all_413 = all(set(v["status"]) <= ({413, 0} if v["bytes"] > 2_000_000 else {413})  # type: ignore[index]
                      for v in refused.values())
        fast = all(v["ms_median"] <= 20 for v in refused.values())  # type: ignore[index]
        ok = all_413 and fast and p99 <= 30 and set(attack_statuses) == {"413"}
        return ok, {"refused": refused, "single_p50_ms_idle": round(base_p50, 2), "single_p99_ms_idle": round(base_p99, 2),
                    "single_p50_ms": round(p50, 2), "single_p99_ms": round(p99, 2),
                    "attack_batches_by_status": attack_statuses}


def attack(url: str, body_file: str, clients: int = 4) -> None:
    """4 clients posting the same over-limit batch until terminated; prints their statuses as JSON."""
    body = Path(body_file).read_bytes()
    counts: dict[str, int] = {}
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            status = str(request(url, body)[0])
            counts[status] = counts.get(status, 0) + 1

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        time.sleep(0.05)
    for t in threads:
        t.join(10)
    print(json.dumps(counts))


CASES: dict[str, tuple[str, Callable[[Path, Path], tuple[bool, dict[str, object]]]]] = {
    "broken-model": ("corrupted model + worker kill -9 (2 workers)",
                     lambda m, w: broken_model_and_worker_kill(m, w, "corrupted")),
    "deleted-model": ("deleted model + worker kill -9 (2 workers)",
                      lambda m, w: broken_model_and_worker_kill(m, w, "deleted")),
    "fresh-db": ("20 fresh-database starts with 2 workers", fresh_database_starts),
    "sighup": ("10 SIGHUP reloads under load, no failed request", sighup_reloads),
    "full-disk": ("full disk under the feedback store", full_disk),
    "read-only": ("read-only feedback store", read_only_store),
    "over-limit": ("over-limit batch: 413 in <= 20 ms whatever its size; single-message p99 <= 30 ms "
                   "while 4 clients send over-limit batches", over_limit_batches),
}


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--attack":
        attack(sys.argv[2], sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), default=None)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "faults.json")
    args = parser.parse_args()
    results: dict[str, object] = {"model": str(args.model), "cpus": os.cpu_count(), "cases": {}}
    if args.only and args.output.is_file():  # a partial run updates the cases it ran
        results["cases"] = json.loads(args.output.read_text(encoding="utf-8")).get("cases", {})
    failed = 0
    with tempfile.TemporaryDirectory(prefix="chuishao-faults-") as tmp:
        for name in args.only or list(CASES):
            title, case = CASES[name]
            work = Path(tmp) / name
            work.mkdir()
            started = time.perf_counter()
            try:
                ok, figures = case(args.model, work)
            except Exception as exc:  # noqa: BLE001 - a crashed case is a failed case, the others still run
                ok, figures = False, {"error": repr(exc)}
            figures["seconds"] = round(time.perf_counter() - started, 1)
            failed += not ok
            results["cases"][name] = {"title": title, "pass": ok, **figures}  # type: ignore[index]
            print(f"{'PASS' if ok else 'FAIL'}  {title}: {json.dumps(figures, ensure_ascii=False)}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    ran = len(args.only or CASES)
    print(f"{ran - failed}/{ran} passed; {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
