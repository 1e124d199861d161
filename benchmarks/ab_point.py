"""One serving point, tfship before and after a change, alternating: the paired ratio.

    python benchmarks/ab_point.py --before REV [--after REV] [--model mlp784]
        [--body json|v2-json|v2-binary] [--rows 32] [--connections 16]
        [--rounds 14] [--duration 4] [--workers 2]

Needs wrk and git. ``make bench-serving`` runs every point once for 10 s; on a noisy machine
two such runs differ by ±10-20 % on code that did not change, so a change of a few percent
does not show in them. Here both servers run side by side and take turns on the one point
(the order flips every round, so a drift of the machine falls on both alike), and what is
read is the ratio within each round, after over before, of the server CPU per request
(user + system time of all its processes, which wrk's share of the cores moves less than
throughput) and of the requests/s; the table gives each round, the sorted ratios, their
median and how many fell below 1.

``--before`` and ``--after`` are git revisions, checked out into temporary worktrees of
this repository; without ``--after``, the working tree as it is. Each server runs its own
tree's ``service`` package (``PYTHONPATH``, ``python -P``) in this environment, with the
model trained once, as benchmarks/serving.py trains it, into a temporary repository.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import ROW_SHAPES, _bodies, train_models
from serving_servers import Server, _tfship, bench_env
from serving_wrk import WRK_SCRIPT, run_wrk
from startup import ROOT, free_port

# Runs tfship's CLI from whichever tree PYTHONPATH names: -P keeps the working folder (this
# repository) off the front of sys.path, where it would shadow the tree under test.
_CLI = "import sys; sys.argv[0] = 'tfship'; from tfship.cli import main; sys.exit(main())"


def _worktree(stack: ExitStack, revision: str, scratch: Path, label: str) -> Path:
    folder = scratch / label
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(folder), revision],
        check=True,
    )
    stack.callback(
        subprocess.run,
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)],
        check=False,
    )
    return folder


def _server(tree: Path, repo: Path, workers: int, scratch: Path, label: str) -> Server:
    port = free_port()
    command = [sys.executable, "-P", "-c", _CLI, *_tfship(repo, port, workers)[1:]]
    env = {
        **bench_env(),
        "PYTHONPATH": str(tree),
        "PROMETHEUS_MULTIPROC_DIR": str(scratch / f"metrics-{label}"),
    }
    return Server(label, command, port, env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="git revision of the 'before' side")
    parser.add_argument("--after", help="git revision of the 'after' side (default: the tree)")
    parser.add_argument("--model", default="mlp784", choices=sorted(ROW_SHAPES))
    parser.add_argument("--body", default="json", choices=("json", "v2-json", "v2-binary"))
    parser.add_argument("--rows", type=int, default=32, choices=(1, 32))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=14)
    parser.add_argument("--duration", type=int, default=4, help="seconds per server and round")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if args.body == "v2-binary" and args.rows != 32:
        print("the V2 binary body has 32 rows (--rows 32)", file=sys.stderr)
        return 2
    if args.rounds < 1 or args.duration < 1:
        print("--rounds and --duration must be at least 1", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="tfship-ab-") as tmp, ExitStack() as stack:
        scratch = Path(tmp)
        trees = {"before": _worktree(stack, args.before, scratch, "before")}
        trees["after"] = _worktree(stack, args.after, scratch, "after") if args.after else ROOT
        repo = scratch / "models"
        train_models(repo, [args.model], scratch)
        body = _bodies(args.model, scratch)[(args.rows, args.body)]
        script = scratch / "post.lua"
        script.write_text(WRK_SCRIPT)
        servers = {}
        for label, tree in trees.items():
            servers[label] = _server(tree, repo, args.workers, scratch, label)
            stack.callback(servers[label].stop)
        path = (
            f"/v2/models/{args.model}/infer"
            if args.body.startswith("v2")
            else f"/v1/models/{args.model}:predict"
        )
        print(
            f"{args.model}, {args.rows} rows, {args.body}, "
            f"{args.connections} connections, {args.rounds} rounds of {args.duration} s; "
            f"before {args.before}, after {args.after or 'the working tree'}",
            flush=True,
        )
        print(f"{'round':>5} {'server':6} {'req/s':>8} {'cpu ms':>7} {'errors':>6}")
        measured: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
        for round_ in range(args.rounds):
            order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
            for label in order:
                server = servers[label]
                cpu = server.cpu_seconds()
                url = f"http://127.0.0.1:{server.port}{path}"
                result = run_wrk(url, body, args.connections, args.duration, script)
                cpu = server.cpu_seconds() - cpu
                rate = result["requests"] / (result["duration_us"] / 1e6)
                cpu_ms = cpu * 1000 / max(result["requests"], 1)
                errors = result["socket_errors"] + result["non_2xx"]
                measured[label].append((rate, cpu_ms))
                print(f"{round_:5} {label:6} {rate:8.0f} {cpu_ms:7.3f} {errors:6}")
                if errors:
                    print(f"{label} answered {errors} requests with errors", file=sys.stderr)
                    return 1

    pairs = list(zip(measured["before"], measured["after"], strict=True))
    print()
    for index, name in ((1, "cpu per request"), (0, "requests/s")):
        ratios = sorted(after[index] / before[index] for before, after in pairs)
        below = sum(r < 1 for r in ratios)
        print(
            f"after / before, {name}: median {statistics.median(ratios):.3f}, "
            f"{below} of {len(ratios)} below 1; sorted: " + " ".join(f"{r:.3f}" for r in ratios)
        )
    for label, values in measured.items():
        print(
            f"{label}: median {statistics.median(v[0] for v in values):,.0f} req/s, "
            f"{statistics.median(v[1] for v in values):.3f} ms CPU per request"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
