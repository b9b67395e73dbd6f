"""How long the built-in lung-nodule model takes on a full-size CT series.

    .venv/bin/python bench/assist_inference.py [--slices 300] [--matrix 512] [--repeat 3]
                                               [--device cpu|cuda] [--threads N]

One synthetic chest CT (fixtures/ct.py, 0.7 mm pixels, 1.25 mm slices, five
planted nodules; generating it is not timed), then, on the same series:

(floor)    a plain forward pass of the same network (NoduleNet, the committed
           weights) on the same input: the candidate patches the pipeline
           builds for this series, batched as the predictor batches them;
(pipeline) LungNodulePredictor.predict(series): resampling to the 1.4 mm
           working grid, lung mask, blob candidates at 4 scales in 2 windows,
           Hessian blobness, patch cutting, the same forward pass, and
           proposals in the readers' finding model with size and type.

The pipeline's stages are timed too, so the ratio can be read: the network
is a small part; finding candidates is most of it. Machines are shared:
quote the ratios. Best of --repeat runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    import torch

    from assist_models.lung_nodule import candidates as cand
    from assist_models.lung_nodule.predictor import (
        LungNodulePredictor,
        extract_patches,
        prepare,
    )
    from assist_models.lung_nodule.synthetic import synthetic_series
    from assist_models.preprocess import resample

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--matrix", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    series, truth = synthetic_series(
        990_000, "fine", nodules=5, slices=args.slices, matrix=args.matrix
    )
    print(
        f"series: {series.shape[0]} x {series.shape[1]} x {series.shape[2]} "
        f"({series.pixels.nbytes / 1e6:.0f} MB float32), spacing {series.spacing} mm, "
        f"{len(truth)} planted nodules; generated in {time.perf_counter() - t0:.1f} s "
        "(not timed)"
    )
    model = LungNodulePredictor(device=args.device)
    print(
        f"device: {model.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"network parameters: {sum(p.numel() for p in model.net.parameters())}"
    )
    prep = prepare(series)
    patches = prep.patches
    print(f"candidates (network input): {len(prep.candidates)} patches of 24^3")

    model.score(patches)  # warm-up (allocator, kernels)
    floor = best(lambda: model.score(patches), args.repeat)
    result = {}

    def pipeline():
        result["p"] = model.predict(series)

    whole = best(pipeline, args.repeat)
    target = (cand.SPACING_MM,) * 3
    t_resample = best(lambda: resample(series.pixels, series.spacing, target), args.repeat)
    working = prep.working
    t_cand = best(lambda: cand.find_candidates(working), args.repeat)
    centres = [c.index for c in prep.candidates]
    t_patch = best(lambda: extract_patches(working, centres), args.repeat)
    print(f"floor: forward pass only       {floor:8.3f} s")
    print(
        f"pipeline: predict(series)      {whole:8.3f} s  "
        f"({len(result['p'].proposals)} proposals at threshold {result['p'].threshold})"
    )
    print(f"  resample to 1.4 mm           {t_resample:8.3f} s")
    print(f"  lung mask + candidates       {t_cand:8.3f} s")
    print(f"  cut patches                  {t_patch:8.3f} s")
    print(f"pipeline / floor:              {whole / floor:8.1f} x")
    print(f"slices per second (pipeline):  {series.shape[0] / whole:8.1f}")


if __name__ == "__main__":
    main()
