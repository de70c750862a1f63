"""Train model variants at one CPU wall-clock budget and compare them on unseen poses (issue 18).

For each variant (a name and ``key=value`` config overrides): ``python -m train fit DATA --out OUT/NAME
max_minutes=M threads=T ...``, then ``python -m export onnx``, then the evaluation: for a synthetic mannequin
(``--synthetic``) ``python -m train evaluate --synthetic`` against the renderer's ground truth on each source
video's poses, else ``python -m train evaluate`` on the held-out frames of DATA (all variants in one table,
with the real frames' and the empty plate's rows, and the unseen-pose measures of ``--sources`` where that
command has them). Variants train ``--parallel`` at a time (each with ``--threads``): variants that train side
by side share the machine alike, so their budgets are equal even on a machine with other work.

    python -m bench.variants --data prepared/fashion --out runs/fashion --minutes 30 \\
        --variant none= --variant prior='generator.extra_inputs=[appearance_prior]' \\
        --source ../shared/data/source_dance.mp4 --source ../shared/data/source_dribble.mp4

Prints one markdown table; the evaluation's own files (sheets, metrics.json) are under ``OUT/NAME/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``NAME=key=value,key=value`` (or ``NAME=``) -> ``(NAME, [key=value, ...])``."""
    name, _, overrides = text.partition("=")
    if not name.isidentifier():
        raise argparse.ArgumentTypeError(f"a variant looks like NAME=key=value,key=value; got {text!r}")
    parts, depth, current = [], 0, ""
    for char in overrides:  # commas inside [...] belong to a list value
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current:
        parts.append(current)
    return name, parts


def run(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    print("$", " ".join(command), f"> {log}", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.variants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="prepared target directory")
    parser.add_argument("--out", type=Path, required=True, help="one run folder per variant goes here")
    parser.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        required=True,
        help="NAME=key=value,key=value (repeat); NAME= for the config as it is",
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training")
    parser.add_argument("--parallel", type=int, default=2, help="variants trained side by side")
    parser.add_argument("--config", type=Path, default=None, help="training config (default: fit's)")
    parser.add_argument("--synthetic", action="store_true", help="DATA is a synthetic mannequin")
    parser.add_argument("--source", type=Path, action="append", default=[], help="source video (repeat)")
    parser.add_argument("--source-frames", type=int, default=96, help="frames of each source")
    parser.add_argument("--skip-training", action="store_true", help="evaluate the runs already in OUT")
    args = parser.parse_args(argv)
    py = sys.executable
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, {os.cpu_count()} cores, "
        f"{_cpu_name()}, {args.minutes} min x {args.threads} thread(s), {args.parallel} side by side"
    )
    if not args.skip_training:
        pending = list(args.variant)
        while pending:
            batch, pending = pending[: args.parallel], pending[args.parallel :]
            jobs = []
            for name, overrides in batch:
                command = [
                    py,
                    "-m",
                    "train",
                    "fit",
                    str(args.data),
                    "--out",
                    str(args.out / name),
                    f"max_minutes={args.minutes}",
                    "steps=10000000",
                    f"threads={args.threads}",
                    *overrides,
                ]
                if args.config is not None:
                    command[4:4] = ["--config", str(args.config)]
                jobs.append((name, run(command, args.out / f"{name}.fit.log")))
            for name, job in jobs:
                if job.wait() != 0:
                    print(f"fit of {name} failed: see {args.out / f'{name}.fit.log'}")
                    return 1
    engines = []
    for name, _ in args.variant:
        engine = args.out / name / f"{name}.onnx"
        if not engine.is_file():
            command = [py, "-m", "export", "onnx", str(args.out / name / "checkpoint.pt"), str(engine)]
            if run(command, args.out / f"{name}.export.log").wait() != 0:
                print(f"export of {name} failed: see {args.out / f'{name}.export.log'}")
                return 1
        engines.append(engine)
    steps = {name: _steps(args.out / name) for name, _ in args.variant}
    if args.synthetic:
        rows = []
        for (name, _), engine in zip(args.variant, engines, strict=True):
            out = args.out / name / "unseen"
            command = [
                py,
                "-m",
                "train",
                "evaluate",
                "--synthetic",
                "--engine",
                str(engine),
                "--out",
                str(out),
                "--max-frames",
                str(args.source_frames),
            ]
            for source in args.source:
                command += ["--source", str(source)]
            if run(command, args.out / f"{name}.evaluate.log").wait() != 0:
                print(f"evaluation of {name} failed: see {args.out / f'{name}.evaluate.log'}")
                return 1
            rows.append((name, json.loads((out / "metrics.json").read_text())))
        print(_synthetic_table(rows, steps))
        return 0
    command = [
        py,
        "-m",
        "train",
        "evaluate",
        "--data",
        str(args.data),
        "--out",
        str(args.out / "evaluation"),
        *map(str, engines),
    ]
    if args.source:
        command += ["--sources", *map(str, args.source), "--source-frames", str(args.source_frames)]
    code = run(command, args.out / "evaluation.log").wait()
    print((args.out / "evaluation.log").read_text()[-6000:])
    print("steps trained:", ", ".join(f"{name} {count}" for name, count in steps.items()))
    return code


def _steps(run_dir: Path) -> int | None:
    """The last step in a run's metrics.jsonl files."""
    last = None
    for log in sorted(run_dir.glob("**/metrics.jsonl")):
        for line in log.read_text().splitlines():
            try:
                last = max(last or 0, int(json.loads(line).get("step", 0)))
            except (ValueError, AttributeError):
                continue
    return last


def _synthetic_table(rows: list[tuple[str, dict]], steps: dict[str, int | None]) -> str:
    head = (
        "| variant | steps | source | body SSIM | body PSNR dB | limb dir. median / p90 deg | elbows+wrists "
        "missed | SSIM | face SSIM | pose dist px | missed |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    background = {}
    for name, metrics in rows:
        for s in metrics["sources"]:
            source = Path(s["source"]).name
            lines.append(
                f"| {name} | {steps.get(name)} | {source} | {s['body_ssim']:.4f} | {s['body_psnr_db']:.2f} "
                f"| {s.get('limb_direction_median_deg', float('nan')):.1f} / "
                f"{s.get('limb_direction_p90_deg', float('nan')):.1f} "
                f"| {100 * s.get('missed_arm_joint_rate', float('nan')):.1f}% "
                f"| {s['ssim']:.4f} | {s['face_ssim']:.4f} | {s['pose_distance_px']:.2f} "
                f"| {100 * s['missed_joint_rate']:.1f}% |"
            )
            background[source] = s
    for source, s in background.items():
        lines.append(
            f"| empty room | - | {source} | {s['background_body_ssim']:.4f} | "
            f"{s['background_body_psnr_db']:.2f} | - | - | {s['background_ssim']:.4f} | - | - | - |"
        )
    return "\n".join(lines)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
