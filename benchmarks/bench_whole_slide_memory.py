"""Peak memory of one whole-slide CNN training step against input size, with and without
activation checkpointing.

Each (size, checkpointing) pair runs in a fresh process: build the model (resnet18, GMP, two
classes), take one small warm-up step (allocates the parameter gradients and the kernels'
workspaces), reset the peak, then one forward + backward pass on a ``size × size`` image.

- CPU: the peak resident set size above the resident size just before the step (Linux
  ``VmHWM`` after ``/proc/self/clear_refs``), i.e. activations, their gradients and
  temporaries. The children run with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors
  go back to the system at once and the resident size follows the live tensors.
- CUDA: ``torch.cuda.max_memory_allocated`` above the memory allocated before the step.

Run: ``.venv/bin/python benchmarks/bench_whole_slide_memory.py`` (``--sizes 512 1024 2048
3072``, ``--device cuda``, ``--backbone resnet50``, ``--batch 1``, ``--amp bf16``). Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MODES = ("off", "stages", "blocks")


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def measure(size: int, mode: str, device: str, backbone: str, batch: int, amp: str) -> dict:
    """One measurement in this process (called in a fresh child)."""
    import contextlib

    import torch

    from napari_wsi_ml.models.whole_slide import create_whole_slide_net

    torch.manual_seed(0)
    dev = torch.device(device)
    model = create_whole_slide_net(backbone, num_classes=2, checkpointing=mode).to(dev)
    model.train()
    labels = torch.zeros(batch, dtype=torch.int64, device=dev)

    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    precision = (
        torch.autocast(dev.type, dtype=dtypes[amp]) if amp in dtypes else contextlib.nullcontext()
    )

    def step(side: int) -> None:
        images = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, device=dev)
        with precision:
            logits = model(images)
        torch.nn.functional.cross_entropy(logits.float(), labels).backward()

    step(64)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # reset the peak resident set size (VmHWM)
        before = _rss_kib("VmRSS") * 1024
    started = time.process_time()
    wall = time.perf_counter()
    step(size)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = _rss_kib("VmHWM") * 1024
    return {
        "peak_mib": (peak - before) / 2**20,
        "cpu_s": time.process_time() - started,
        "wall_s": time.perf_counter() - wall,
    }


def run_child(size: int, mode: str, args: argparse.Namespace) -> dict:
    """Measure in a fresh interpreter, so that no earlier allocation hides the peak."""
    command = [sys.executable, __file__, "--child", str(size), mode, "--device", args.device,
               "--backbone", args.backbone, "--batch", str(args.batch),
               "--amp", args.amp]  # fmt: skip
    # glibc returns memory of mmap-ed blocks at once: the resident size then follows the live
    # tensors instead of the heap's high-water mark (fixed threshold, no dynamic raise).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 3072])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"))
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "MODE"))
    args = parser.parse_args()
    if args.child:
        size, mode = int(args.child[0]), args.child[1]
        result = measure(size, mode, args.device, args.backbone, args.batch, args.amp)
        print(json.dumps(result))
        return
    print(
        f"{args.backbone}, GMP, batch {args.batch}, device {args.device}, autocast {args.amp}: "
        "peak memory of one "
        "forward + backward above the memory before it (MiB); CPU seconds of the step\n"
    )
    header = ["input"] + [f"{m} MiB" for m in args.modes] + [f"{m} s" for m in args.modes]
    header += [f"off / {m}" for m in args.modes if m != "off"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for size in args.sizes:
        found = {mode: run_child(size, mode, args) for mode in args.modes}
        cells = [f"{size}²"]
        cells += [f"{found[m]['peak_mib']:.0f}" if "peak_mib" in found[m] else found[m]["error"]
                  for m in args.modes]  # fmt: skip
        cells += [f"{found[m]['cpu_s']:.1f}" if "cpu_s" in found[m] else "–" for m in args.modes]
        off = found.get("off", {}).get("peak_mib")
        for mode in args.modes:
            if mode != "off":
                peak = found[mode].get("peak_mib")
                cells.append(f"{off / peak:.2f}×" if off and peak else "–")
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
