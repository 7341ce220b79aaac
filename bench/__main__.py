"""`python -m bench [--quick] [--parts analysis,feedback,titles,decode,stream,...]` (see PARTS).

Runs the real app under daphne against a fake model, measures, checks integrity (what
clients received equals what the database saved), prints one Markdown table and writes
it to bench/results.md (quick runs: bench/out/results-quick.md). Exit status 1 only when
an integrity check failed or a part crashed; timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import harness
from bench.report import Report, machine_info, write_results

HERE = Path(__file__).resolve().parent
FULL_BUDGET = 840.0  # seconds: a full run stays under 15 minutes on 2 cores (a slow machine
# needs most of it to reach the 1,000-member two-process fan-out, the part that goes last)
QUICK_BUDGET = 75.0


# Fan-out goes last: it takes whatever is left of the time budget. The analysis part is
# pure Python in this process (no server) and takes a second or two.
PARTS = (
    "analysis",
    "feedback",
    "titles",
    "decode",
    "stream",
    "concurrent",
    "pages",
    "memory",
    "classes",
    "layers",
    "fanout",
)


def _part(name: str) -> Callable[[harness.Ctx], None]:
    return importlib.import_module(f"bench.{name}").run


def _report_noise(
    report: Report, noise: harness.NoiseMonitor, windows: list[tuple[str, float, float]]
) -> None:
    """How much CPU other people's processes took while each part ran (2 shared cores)."""
    if not windows:
        return
    report.section = "machine"
    parts = []
    worst = 0.0
    for name, start, end in windows:
        mean, peak = noise.between(start, end)
        worst = max(worst, mean)
        parts.append(f"{name} {mean:.0f} % (max {peak:.0f} %)")
    mean, peak = noise.between(windows[0][1], windows[-1][2])
    report.add(
        "CPU used by other processes during the run (mean, % of one core)",
        mean,
        "%",
        note=f"max {peak:.0f} %",
        digits=0,
    )
    report.note("other processes' CPU per part: " + ", ".join(parts))
    if worst > 20:
        report.note(
            "the machine was shared while this ran: parts with high figures above are "
            "pessimistic (daphne's core was not its own)"
        )
    report.section = ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run < 90 s")
    parser.add_argument("--parts", default="", help="comma-separated subset of the parts")
    parser.add_argument("--out", type=Path, default=None, help="where to write the results")
    args = parser.parse_args(argv)

    # BENCH_BUDGET (seconds) stretches a targeted run (e.g. several fan-out layouts).
    budget = harness.Budget(
        float(os.environ.get("BENCH_BUDGET") or (QUICK_BUDGET if args.quick else FULL_BUDGET))
    )
    harness.raise_fd_limit(8192)
    harness.pin_self_to_client_cpu()
    chosen = [p.strip() for p in args.parts.split(",") if p.strip()] or list(PARTS)
    unknown = set(chosen) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")

    report = Report(quick=args.quick)
    noise = harness.NoiseMonitor()
    windows: list[tuple[str, float, float]] = []
    env = harness.BenchEnv()
    fake = None
    try:
        print(
            f"bench: database in {env.dir}; servers on CPU {harness.SERVER_CPUS}, "
            f"client on CPU {harness.CLIENT_CPUS}",
            flush=True,
        )
        env.migrate()
        env.setup_django()
        fake = harness.FakeModel.start()
        noise.start()
        ctx = harness.Ctx(env=env, fake=fake, report=report, quick=args.quick, budget=budget)
        for name in chosen:
            started = time.monotonic()
            try:
                _part(name)(ctx)
            except Exception as exc:
                traceback.print_exc()
                report.section = name
                report.check("part ran to the end", False, f"{type(exc).__name__}: {exc}")
            finally:
                report.section = ""
                for server in env.servers:
                    server.stop(kill=True)
                env.servers.clear()
            windows.append((name, started, time.monotonic()))
            print(f"[{name}] {time.monotonic() - started:.1f} s", flush=True)
    finally:
        noise.stop()
        if fake is not None:
            fake.stop()
        env.close()

    _report_noise(report, noise, windows)
    generated = report.markdown(machine_info(), budget.elapsed)
    print()
    print(generated)
    out = args.out or (HERE / "out" / "results-quick.md" if args.quick else HERE / "results.md")
    write_results(out, generated)
    print(f"bench: results written to {out}")
    if not report.integrity_ok:
        print("bench: INTEGRITY FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
