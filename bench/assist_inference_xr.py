"""How long the built-in chest radiograph model takes on a full-size radiograph.

    .venv/bin/python bench/assist_inference_xr.py [--size 2000] [--repeat 5]
                                                  [--device cpu|cuda] [--threads N]

One synthetic PA chest radiograph (fixtures/xr.py through
assist_models/chest_radiograph/synthetic.py, all three findings, well exposed
and positioned; generating it is not timed), then, on the same image:

(floor)    a plain forward pass of the same network (ChestNet, the committed
           weights) on the prepared 256 x 256 input;
(pipeline) ChestRadiographPredictor.predict(series): polarity, padding and
           resizing to 256 x 256, the same forward pass, case probabilities
           and box proposals in the readers' finding model.

Machines are shared: quote the ratio. Best of --repeat runs.
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

    from assist_models.chest_radiograph.predictor import ChestRadiographPredictor, prepare
    from assist_models.chest_radiograph.synthetic import FINDINGS, synthetic_radiograph

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    case = synthetic_radiograph(
        9_990_000,
        size=args.size,
        findings=FINDINGS,
        exposure=None,
        positioning=None,
        angle_deg=0.0,
        shift=(0.0, 0.0),
    )
    series = case.series
    print(
        f"radiograph: {series.shape[1]} x {series.shape[2]}, {len(case.findings)} findings; "
        f"generated in {time.perf_counter() - t0:.1f} s (not timed)"
    )
    model = ChestRadiographPredictor(device=args.device)
    print(
        f"device: {model.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"network parameters: {sum(p.numel() for p in model.net.parameters())}"
    )
    image = prepare(series).image[None]
    model.forward(image)  # warm-up (allocator, kernels)
    floor = best(lambda: model.forward(image), args.repeat)
    result = {}

    def pipeline():
        result["p"] = model.predict(series)

    whole = best(pipeline, args.repeat)
    t_prepare = best(lambda: prepare(series), args.repeat)
    print(f"floor: forward pass only       {floor:8.4f} s")
    print(
        f"pipeline: predict(series)      {whole:8.4f} s  "
        f"({len(result['p'].proposals)} proposals at threshold {result['p'].threshold})"
    )
    print(f"  prepare (polarity, resize)   {t_prepare:8.4f} s")
    print(f"pipeline / floor:              {whole / floor:8.1f} x")


if __name__ == "__main__":
    main()
