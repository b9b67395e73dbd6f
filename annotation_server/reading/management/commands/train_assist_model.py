"""python manage.py train_assist_model {lung-nodule,chest-radiograph} --out DIR
[--series N] [--seed S] [--steps K] [--nodules M] [--slices L]

Trains a built-in model on synthetic data (its trainer, e.g.
assist_models.lung_nodule.train: same data and network as the committed
weights) into DIR, then registers the result as a new version of the model (its
version carries the weights' sha256 prefix). Audited. An option not given keeps
the trainer's own default, the one its committed weights were trained with
(lung-nodule: 16 series, 1500 steps; chest-radiograph: 1000 images, 800 steps);
for chest-radiograph --series counts images and --nodules/--slices do not apply.
Measure the result with `python -m assist_models.<model> evaluate`.
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
        parser.add_argument(
            "--series", type=int, help="synthetic training series (radiographs: images)"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--steps", type=int, help="optimiser steps")
        parser.add_argument("--nodules", type=int, help="nodules planted per series (CT)")
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
            given = {"series": series, "steps": steps, "nodules": nodules}
            if slices:
                given["slices"] = {"fine": slices, "coarse": max(8, slices * 3 // 5)}
            summary = import_string(spec["train"])(
                out,
                seed=seed,
                command=command,
                **{k: v for k, v in given.items() if v is not None},
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
