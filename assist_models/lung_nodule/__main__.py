"""Train or evaluate the built-in lung-nodule model.

.venv/bin/python -m assist_models.lung_nodule train [--out DIR] [--seed 0] [--series 16]
.venv/bin/python -m assist_models.lung_nodule evaluate [--weights FILE] [--series 20]
                                                       [--write-card]
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
    parser = argparse.ArgumentParser(prog="python -m assist_models.lung_nodule")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train on synthetic series; write weights + card")
    t.add_argument("--out", default=str(WEIGHTS_DIR))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--series", type=int, default=16)
    t.add_argument("--nodules", type=int, default=6)
    t.add_argument("--steps", type=int, default=1500)
    e = sub.add_parser("evaluate", help="FROC / CPM on held-out synthetic series")
    e.add_argument("--weights", default=str(WEIGHTS))
    e.add_argument("--series", type=int, default=20)
    e.add_argument("--nodules", type=int, default=5)
    e.add_argument("--write-card", action="store_true", help="put the figures in the card")
    args = parser.parse_args(argv)
    command = ".venv/bin/python -m assist_models.lung_nodule " + shlex.join(argv)
    if args.command == "train":
        summary = train(
            args.out,
            seed=args.seed,
            series=args.series,
            nodules=args.nodules,
            steps=args.steps,
            command=command,
        )
        print(json.dumps(summary, indent=2))
        return 0
    result = ev.evaluate(
        weights=args.weights, series=args.series, nodules=args.nodules, progress=True
    )
    figures = ev.performance(result)
    print(json.dumps({**figures, **result["run"]}, indent=2))
    if args.write_card:
        ev.write_card_performance(result, command, Path(args.weights).with_suffix(".card.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
