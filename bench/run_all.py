"""`make bench`: run every benchmark under bench/ (each measures its figures side by side in
one run and writes JSON to bench/results/), then print one table of the headline figures
against their goals.

    python bench/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def run(script: str, *args: str) -> dict:
    out = RESULTS / f"{script.removeprefix('bench_').removesuffix('.py')}.json"
    print(f"== {script} {' '.join(args)}", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, str(BENCH / script), *args, "--json", str(out)], check=True)
    print(f"   ({time.perf_counter() - start:.0f} s)\n", flush=True)
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (noisier)")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    render = run("bench_render.py", "--runs", "3" if args.quick else "7")
    runner = run("bench_runner.py", "--runs", "3" if args.quick else "5")
    loop = run("bench_loop.py", "--runs", "3", *([] if args.quick else ["--demo"]))["median_s"]
    serving = run("bench_serving.py", "--requests", "50" if args.quick else "200")
    training = run("bench_training.py", "--per-class", "48" if args.quick else "96")
    m, e = serving["model"], serving["end_to_end"]
    rows = [
        ("cold render, --no-lint (s)", f"{render['cold_render_s']:.3f}", "<= 0.5"),
        (f"render + lint {render['batch_definitions']} definitions (s)", f"{render['batch_render_lint_s']:.2f}", "<= 10"),
        ("runner / torchrun, 2 x 2 no-op job", f"{runner['ratio']:.2f}x", "<= 1.2x"),
        ("generator.py run jobs/penguins-single/job.yml (s)", f"{loop['run']:.2f}", "<= 5"),
        ("  python -c 'import torch', the floor (s); run / floor",
         f"{loop['floor']:.2f}; {loop['run'] / loop['floor']:.2f}x", ""),
        ("generator.py lint FILE, unchanged | first lint (s)", f"{loop['lint']:.2f} | {loop['first_lint']:.2f}",
         "<= 1"),
        *([("demo pipeline run, 2 x 2 train -> export -> register (s)", f"{loop['demo']:.1f}", "<= 25")]
          if "demo" in loop else []),
        (f"image training samples/s, train component (batch {training['images'].get('batch', '?')}) / tutorial "
         f"loop (batch {training['images'].get('reference_batch', '?')})", f"{training['images']['speedup']:.2f}x",
         ">= 2.5x"),
        ("  val accuracy, ours - reference (points)",
         f"{(training['images']['ours_val_accuracy'] - training['images']['reference']['val_accuracy']) * 100:+.1f}",
         "within 2"),
        ("  peak memory per process, ours / reference (MiB)",
         f"{max(training['images']['ours_peak_rss_mb']):.0f} / {training['images']['reference']['peak_rss_mb']:.0f}", ""),
        ("penguins, 2 processes vs 1: scaling efficiency", f"{training['penguins']['scaling_efficiency']:.0%}", "reported"),
        ("ONNX Runtime fp32 / eager, batch 1 | 64",
         f"{m['pytorch eager']['batch1_ms'] / m['onnxruntime fp32']['batch1_ms']:.2f}x | "
         f"{m['pytorch eager']['batch64_ms'] / m['onnxruntime fp32']['batch64_ms']:.2f}x", "reported"),
        (f"ONNX Runtime int8 / eager, batch 1 | 64 ({serving.get('provider', 'cpu')} provider)",
         f"{m['pytorch eager']['batch1_ms'] / m['onnxruntime int8']['batch1_ms']:.2f}x | "
         f"{m['pytorch eager']['batch64_ms'] / m['onnxruntime int8']['batch64_ms']:.2f}x", "reported"),
        ("  the same int8 model on the default CPU provider",
         f"{m['pytorch eager']['batch1_ms'] / m['int8, cpu provider']['batch1_ms']:.2f}x | "
         f"{m['pytorch eager']['batch64_ms'] / m['int8, cpu provider']['batch64_ms']:.2f}x", ""),
        ("  int8 accuracy drop on validation (points)", f"{serving['int8']['accuracy_drop'] * 100:.2f}", "<= 1"),
        ("single-image requests end to end, best ONNX / eager", f"{serving['best_onnx_over_eager']:.2f}x", ">= 3x"),
        ("  the same with the JPEG as the body, int8 / eager", f"{serving['raw_body_onnx_over_eager']:.2f}x", ""),
        ("  by median latency (base64 JSON), eager / int8", f"{serving['p50_int8_over_eager']:.2f}x", ""),
        ("  int8 server: req/s, p50 ms, p99 ms",
         f"{e['onnxruntime int8']['rps']:.1f}, {e['onnxruntime int8']['p50_ms']:.1f}, {e['onnxruntime int8']['p99_ms']:.1f}",
         ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'measured':>18}  goal")
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>18}  {goal}")
    (RESULTS / "summary.json").write_text(json.dumps({r[0].strip(): {"measured": r[1], "goal": r[2]} for r in rows},
                                                     indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
