"""Where a running server's CPU goes under load: CPU per thread group, per sentence served.

Runs ``loadgen.py`` against a maskserve already serving on loopback, reads every thread's CPU time of the
server process from ``/proc`` before and after the measured window, and prints each thread group's share
of a core and its milliseconds of CPU per sentence, the load generator's too, and the mean batch size from
``/metrics``. Thread names come from ``py-spy dump`` (``pip install py-spy``); without it, threads are
listed by id. Linux only.

    python -m maskserve serve build/bench-bert-base --model_name bert --http_port 8090 \\
        --backend onnx --quantize int8 --model_workers 2 &
    python benchmarks/thread_cpu.py --pid $! --url http://127.0.0.1:8090
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat: Path) -> float:
    fields = stat.read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def threads(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[task.name] = cpu_seconds(task / "stat")
        except OSError:
            continue  # the thread ended between the listing and the read
    return out


def thread_names(pid: int) -> dict[str, str]:
    if shutil.which("py-spy") is None:
        return {}
    command = ["py-spy", "dump", "--pid", str(pid)]
    dump = subprocess.run(command, check=False, capture_output=True, text=True).stdout
    return {m.group(1): m.group(2) for m in re.finditer(r'Thread (\d+) \(\w+\): "([^"]+)"', dump)}


def mean_batch(url: str) -> str:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    total = re.search(r"maskserve_batch_size_sum(?:{[^}]*})? (\S+)", text)
    count = re.search(r"maskserve_batch_size_count(?:{[^}]*})? (\S+)", text)
    if not total or not count or float(count.group(1)) == 0:
        return "no batches recorded"
    return f"{float(total.group(1)) / float(count.group(1)):.2f} inputs over {float(count.group(1)):.0f}"


def line(name: str, share: float, rate: float) -> str:
    return f"  {name:28s} {share * 100:6.1f} % of a core  {share / rate * 1000:6.2f} ms per sentence"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--pid", type=int, required=True, help="the server process")
    parser.add_argument("--url", required=True, help="its loopback base URL")
    parser.add_argument("--model", default="bert")
    parser.add_argument("--protocol", default="hf", choices=["v1", "v2", "hf"])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds (default: 20)")
    args = parser.parse_args()

    warmup = 3.0
    command = [sys.executable, str(Path(__file__).with_name("loadgen.py")), "--url", args.url]
    command += ["--model", args.model, "--protocol", args.protocol, "--concurrency", str(args.concurrency)]
    command += ["--duration", str(args.duration), "--warmup", str(warmup)]
    load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(warmup + 0.5)
    before, load_before, started = threads(args.pid), cpu_seconds(Path(f"/proc/{load.pid}/stat")), time.time()
    names = thread_names(args.pid)  # after the warm-up: worker threads start with the first requests
    time.sleep(max(0.0, args.duration - 1.0))
    load_after, load_window = cpu_seconds(Path(f"/proc/{load.pid}/stat")), time.time() - started
    out, err = load.communicate()
    after, window = threads(args.pid), time.time() - started
    report = json.loads(out)
    rate = float(report["sentences_per_s"])
    print(err.strip().splitlines()[-1])
    groups: defaultdict[str, float] = defaultdict(float)
    for tid, seconds in after.items():
        # Numbered pool threads (maskserve-model_0, _1, ...) are one group.
        groups[re.sub(r"_\d+$", "_N", names.get(tid, f"thread {tid}"))] += seconds - before.get(tid, 0.0)
    for name, seconds in sorted(groups.items(), key=lambda kv: -kv[1]):
        if seconds > 0.01:
            share = seconds / window
            print(line(name, share, rate))
    print(line("load generator", (load_after - load_before) / load_window, rate))
    print(f"  mean batch: {mean_batch(args.url)} (since the server started)")


if __name__ == "__main__":
    main()
