"""``python -m napari_wsi_ml.jobs``: the job process entry point (also under torchrun).

    python -m napari_wsi_ml.jobs train CONFIG [--run-root DIR]
    python -m napari_wsi_ml.jobs train [CONFIG] --resume RUN_DIR
    python -m napari_wsi_ml.jobs run RUN_DIR          # a run directory made by start_job()
    torchrun --nproc_per_node 2 -m napari_wsi_ml.jobs train CONFIG

Exit codes: 0 finished, 1 failed, 2 invalid config or run directory, 3 cancelled.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from napari_wsi_ml.errors import WsiMlError


def build_parser() -> argparse.ArgumentParser:
    """Parser of the job entry point."""
    parser = argparse.ArgumentParser(prog="python -m napari_wsi_ml.jobs")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="validate a config and run it here")
    train.add_argument("config", nargs="?", help="job config (YAML)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue this run")
    train.add_argument("--run-root", metavar="DIR", help="folder for the new run")
    run = commands.add_parser("run", help="run a prepared run directory")
    run.add_argument("run_dir")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = build_parser().parse_args(argv)
    from napari_wsi_ml.jobs.distributed import shutdown_distributed
    from napari_wsi_ml.jobs.runner import EXIT_CODES, execute_run, run_job

    try:
        if args.command == "run":
            try:
                return EXIT_CODES[execute_run(args.run_dir)]
            finally:
                shutdown_distributed()
        if args.config is None and args.resume is None:
            raise WsiMlError("give a config file, or --resume RUN_DIR")
        outcome = run_job(args.config, resume_dir=args.resume, run_root=args.run_root)
        print(f"{outcome.status}: {outcome.run_dir}")
        return outcome.exit_code
    except WsiMlError as error:
        print(f"napari_wsi_ml.jobs: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
