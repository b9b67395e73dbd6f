"""python manage.py train_assist_model lung-nodule --out DIR [--series N] [--seed S]
[--steps K] [--nodules M] [--slices L]

Trains a built-in model on synthetic series (assist_models.lung_nodule.train:
same data and network as the committed weights) into DIR, then registers the
result as a new version of the model (its version carries the weights' sha256
prefix). Audited. Measure it with `python -m assist_models.lung_nodule evaluate`.
"""

from __future__ import annotations

import shlex
import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from annotation_server.reading import assist


class Command(BaseCommand):
    help = "Train a built-in assist model on synthetic data and register it as a new version."

    def add_arguments(self, parser):
        parser.add_argument("model", choices=sorted(assist.TRAINABLE))
        parser.add_argument("--out", required=True, help="folder for the weights and card")
        parser.add_argument("--series", type=int, default=16, help="synthetic training series")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--steps", type=int, default=1500, help="optimiser steps")
        parser.add_argument("--nodules", type=int, default=6, help="nodules planted per series")
        parser.add_argument(
            "--slices",
            type=int,
            default=None,
            help="slices of the fine-protocol series (coarse ones get 3/5); default: the "
            "generator's (fewer: faster, for a trial run)",
        )

    def handle(self, *args, model, out, series, seed, steps, nodules, slices, **options):
        spec = assist.TRAINABLE[model]
        command = "python manage.py " + shlex.join(sys.argv[1:])
        try:
            summary = import_string(spec["train"])(
                out,
                seed=seed,
                series=series,
                steps=steps,
                nodules=nodules,
                slices={"fine": slices, "coarse": max(8, slices * 3 // 5)} if slices else None,
                command=command,
            )
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        try:
            row = assist.register_trained(model, out, summary=summary)
        except assist.AssistError as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(
            f"trained {row.name} {row.version} (sha256 {row.weights_sha256}, "
            f"{summary.get('total_s')} s) and registered it as #{row.pk}"
        )
