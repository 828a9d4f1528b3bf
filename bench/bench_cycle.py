"""The analysts' whole cycle on the shared data, each step a real `chuishao` command, timed:

    import -> check -> train -> test (HTML) -> models add -> compare -> promote -> the service picks it up

The service (`chuishao serve --model REGISTRY/current`, directory watcher every second) runs the
bundled default model, promoted first as the registry's first version; the cycle's model is a
retrain of the default recipe on the imported whistle/train.jsonl. The target is under 5 minutes
for the steps together on 2 cores (the service's start-up is setup, timed apart).

    nice -n 15 python bench/bench_cycle.py --shared ../shared/data

Prints a line per step and writes bench/results/cycle.json. Work files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chuishao(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "chuishao.cli", *args], capture_output=True, text=True, cwd=REPO)
    if r.returncode not in ok:
        raise SystemExit(f"chuishao {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ready_version(url: str) -> str | None:
    try:
        r = httpx.get(f"{url}/readyz", timeout=5)
    except httpx.HTTPError:
        return None
    return r.json().get("model_version") if r.status_code == 200 else None


def wait_for(url: str, version: str, limit: float) -> float:
    began = time.perf_counter()
    while time.perf_counter() - began < limit:
        if ready_version(url) == version:
            return time.perf_counter() - began
        time.sleep(0.2)
    raise SystemExit(f"the service did not serve {version} within {limit:.0f} s (it serves {ready_version(url)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cycle.json")
    args = ap.parse_args()
    shared = args.shared.resolve()
    test = str(shared / "whistle" / "test.jsonl")
    steps: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds (user + system) of each step's process: wall time on a busy machine says little
    facts: dict[str, object] = {}

    def step(name: str, *cli: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        began, used = time.perf_counter(), children_cpu()
        r = chuishao(*cli, ok=ok)
        steps[name] = round(time.perf_counter() - began, 1)
        cpu[name] = round(children_cpu() - used, 1)
        print(json.dumps({"step": name, "seconds": steps[name], "cpu_seconds": cpu[name], "exit": r.returncode}), flush=True)
        return r

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry = work / "registry"
        # setup: the bundled default model in service
        default_version = json.loads(chuishao("models", "add", str(REPO / "models" / "default"), "--registry",
                                              str(registry)).stdout)["version"]
        chuishao("promote", default_version, "--registry", str(registry))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "CHUISHAO_MODEL_POLL_SECONDS": "1"}
        server = subprocess.Popen([sys.executable, "-m", "chuishao.cli", "serve", "--model", str(registry / "current"),
                                   "--port", str(port), "--db-url", f"sqlite:///{work / 'feedback.sqlite3'}",
                                   "--no-access-log", "--log-level", "warning"], cwd=REPO, env=env)
        try:
            facts["serve_start_seconds"] = round(wait_for(url, default_version, 900), 1)
            cycle_began = time.perf_counter()
            step("import", "import", str(shared / "whistle" / "train.jsonl"), "-o", str(work / "city.jsonl"))
            checked = step("check", "check", str(work / "city.jsonl"), "--test", test, "-o", str(work / "check.json"),
                           ok=(0, 1))  # 1: problems found (the leaked rows), which train then drops
            facts["check"] = json.loads(checked.stdout.splitlines()[-1])
            trained = step("train", "train", "--config", "configs/default.yaml", "--paths.shared", str(shared),
                           "--data.train", str(work / "city.jsonl"), "--data.leakage", "drop", "-o", str(work / "next"))
            facts["train"] = {k: v for k, v in json.loads(trained.stdout).items() if k in
                              ("version", "training_rows", "dropped_rows", "accuracy", "not_learned", "train_seconds")}
            tested = step("test", "test", str(work / "next"), test, "-o", str(work / "report"))
            facts["test"] = {k: v for k, v in json.loads(tested.stdout.splitlines()[-1]).items()
                             if k in ("macro_f1", "accuracy", "top3_accuracy")}
            facts["report_html_bytes"] = (work / "report" / "report.html").stat().st_size
            added = step("models_add", "models", "add", str(work / "next"), "--registry", str(registry))
            version = json.loads(added.stdout)["version"]
            compared = step("compare", "compare", default_version, version, "--data", test, "--registry", str(registry),
                            "-o", str(work / "compare"))
            facts["compare"] = {k: v for k, v in json.loads(compared.stdout.splitlines()[-1]).items() if not isinstance(v, list)}
            promoted = step("promote", "promote", version, "--registry", str(registry), "--gate-data", test)
            facts["promote"] = json.loads(promoted.stdout.splitlines()[-1])
            steps["service_picks_it_up"] = round(wait_for(url, version, 600), 1)
            print(json.dumps({"step": "service_picks_it_up", "seconds": steps["service_picks_it_up"]}), flush=True)
            total = round(time.perf_counter() - cycle_began, 1)
        finally:
            server.terminate()
            server.wait(30)
    result = {"steps_seconds": steps, "steps_cpu_seconds": cpu, "total_seconds": total,
              "load_average_at_end": os.getloadavg(), "target_seconds": TARGET_SECONDS,
              "under_target": total < TARGET_SECONDS, "cores": os.cpu_count(), **facts,
              "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1, default=str) + "\n", encoding="utf-8")
    print(json.dumps({"total_seconds": total, "under_target": total < TARGET_SECONDS, "steps": steps}))


if __name__ == "__main__":
    main()
