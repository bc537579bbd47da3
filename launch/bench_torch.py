"""The PyTorch reference for docs/PERFORMANCE.md: torchvision's DeepLabv3-ResNet50 or FCN train
step, timed like ``python -m ssgan_jax.benchmark`` times ours.

    python launch/bench_torch.py --model=deeplabv3_resnet50 --batch=2 --crop 180 240 --threads=2

Needs torch and torchvision, which are not project dependencies: install them in a separate
environment (``pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu``).
One train step = forward, cross-entropy (ignore 255), backward, Adam update; BatchNorm in
training mode, dropout on, random init, random inputs. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time


def _import_torchvision():
    """torchvision, even where its C extension does not match the installed torch.

    A torchvision wheel built against another torch build (for instance the registry's
    torchvision 0.28.0 next to torch 2.13.0+cpu) fails at import with ``operator torchvision::nms
    does not exist``: its fake-kernel registrations need the compiled ops. The segmentation and
    classification models use none of them (nms, roi_align, deform_conv are detection ops), so
    the registrations are skipped and a note says so in the JSON.
    """
    import sys
    import types

    try:
        import torchvision
        return torchvision, None
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType(
            "torchvision._meta_registrations")
        import torchvision
        return torchvision, f"torchvision C ops unavailable ({err}); models only"


MODELS = ("deeplabv3_resnet50", "fcn_vgg16")


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    """The train-step settings (shared with launch/bench_vs_torch.py, which forwards them)."""
    parser.add_argument("--model", default="deeplabv3_resnet50", choices=MODELS)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--crop", type=int, nargs=2, default=(180, 240))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)


def step_argv(args: argparse.Namespace) -> list[str]:
    """``args``' train-step settings as command-line arguments for this script."""
    return [f"--model={args.model}", f"--batch={args.batch}", "--crop", *map(str, args.crop),
            f"--threads={args.threads}", f"--iterations={args.iterations}",
            f"--warmup={args.warmup}"]


def main() -> None:
    import torch
    torchvision, torchvision_note = _import_torchvision()

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_step_arguments(parser)
    parser.add_argument("--classes", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.model == "deeplabv3_resnet50":
        model = torchvision.models.segmentation.deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=args.classes, aux_loss=False)
    else:  # torchvision has no FCN-8s/VGG16: VGG16 features + FCN-32s-style head, for scale
        vgg = torchvision.models.vgg16(weights=None).features
        head = torch.nn.Sequential(torch.nn.Conv2d(512, 4096, 7, padding=3), torch.nn.ReLU(),
                                   torch.nn.Dropout(), torch.nn.Conv2d(4096, 4096, 1),
                                   torch.nn.ReLU(), torch.nn.Dropout(),
                                   torch.nn.Conv2d(4096, args.classes, 1))

        class Fcn(torch.nn.Module):
            def forward(self, x):
                y = head(vgg(x))
                return {"out": torch.nn.functional.interpolate(y, size=x.shape[-2:],
                                                               mode="bilinear")}

        model = Fcn()
        model.add_module("vgg", vgg)
        model.add_module("head", head)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    h, w = args.crop
    x = torch.randn(args.batch, 3, h, w)
    y = torch.randint(0, args.classes, (args.batch, h, w))
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    seconds = []
    for i in range(args.warmup + args.iterations):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x)["out"], y)
        loss.backward()
        opt.step()
        if i >= args.warmup:
            seconds.append(time.perf_counter() - start)
    ms = [1000 * s for s in seconds]
    print(json.dumps({
        "framework": f"torch {torch.__version__}, torchvision {torchvision.__version__}",
        "model": args.model, "parameters": params, "batch": args.batch, "crop": [h, w],
        "threads": args.threads, "iterations": args.iterations,
        "median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
        "images_per_s": args.batch / (statistics.median(ms) / 1000),
        "peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "note": torchvision_note,
    }, indent=1))


if __name__ == "__main__":
    main()
