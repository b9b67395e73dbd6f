"""Train or evaluate the built-in chest radiograph model.

.venv/bin/python -m assist_models.chest_radiograph train [--out DIR] [--seed 0] [--images 1000]
                                                         [--steps 800]
.venv/bin/python -m assist_models.chest_radiograph evaluate [--weights FILE] [--images 400]
                                                            [--size PX] [--write-card]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from . import evaluate as ev
from .predictor import WEIGHTS, WEIGHTS_DIR
from .training import train


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m assist_models.chest_radiograph")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train on synthetic radiographs; write weights + card")
    t.add_argument("--out", default=str(WEIGHTS_DIR))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--images", type=int, default=1000)
    t.add_argument("--steps", type=int, default=800)
    e = sub.add_parser("evaluate", help="ROC AUC per class on held-out synthetic radiographs")
    e.add_argument("--weights", default=str(WEIGHTS))
    e.add_argument("--images", type=int, default=400)
    e.add_argument("--size", type=int, default=None, help="one matrix for all (default: drawn)")
    e.add_argument("--write-card", action="store_true", help="put the figures in the card")
    args = parser.parse_args(argv)
    command = ".venv/bin/python -m assist_models.chest_radiograph " + shlex.join(argv)
    if args.command == "train":
        summary = train(
            args.out,
            seed=args.seed,
            images=args.images,
            steps=args.steps,
            command=command,
            progress=True,
        )
        print(json.dumps(summary, indent=2))
        return 0
    result = ev.evaluate(weights=args.weights, images=args.images, size=args.size, progress=True)
    figures = ev.performance(result)
    print(json.dumps({**figures, **result["run"]}, indent=2))
    if args.write_card:
        ev.write_card_performance(result, command, Path(args.weights).with_suffix(".card.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
