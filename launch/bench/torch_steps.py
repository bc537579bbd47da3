"""The PyTorch reference for docs/PERFORMANCE.md: torchvision's DeepLabv3-ResNet50 or FCN train
step, timed like ``--mode=benchmark`` times ours.

    python -m launch.bench.torch_steps --model=deeplabv3_resnet50 --batch=2 --crop 180 240 \
        --threads=2
    python -m launch.bench.torch_steps --device=cuda --batch=16 --crop 512 512 --precision=bf16 \
        --channels-last --bn=train --eval-size 512 512      (the GPU throughput setting)

Needs torch and torchvision, which are not project dependencies: install them in a separate
environment (``pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu``).
One train step = forward, cross-entropy (ignore 255), backward, Adam update; dropout on, random
init, random inputs. Settings: ``--device`` (cuda timings end with ``torch.cuda.synchronize``;
cuDNN autotuning on), ``--precision`` fp32 (TF32 off), tf32 (TF32 on for matmuls and convs) or
bf16 (autocast to bfloat16, float32 master weights), ``--channels-last``, ``--bn`` train (batch
statistics) or frozen (running statistics, affine parameters still trained, as ours), and
``--compile`` (``torch.compile``; its first iteration is reported as ``first_iteration_s``).
``--eval-size H W`` also times the eval forward pass (no grad, ``--eval-batch`` images).
Prints one JSON object; ``median_ms`` etc. at the top level are the train step's.
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
    """The train-step settings (shared with launch/bench/vs_torch.py, which forwards them)."""
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


def _build(torch, torchvision, name: str, classes: int):
    if name == "deeplabv3_resnet50":
        return torchvision.models.segmentation.deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=classes, aux_loss=False)
    # torchvision has no FCN-8s/VGG16: VGG16 features + FCN-32s-style head, for scale
    vgg = torchvision.models.vgg16(weights=None).features
    head = torch.nn.Sequential(torch.nn.Conv2d(512, 4096, 7, padding=3), torch.nn.ReLU(),
                               torch.nn.Dropout(), torch.nn.Conv2d(4096, 4096, 1),
                               torch.nn.ReLU(), torch.nn.Dropout(),
                               torch.nn.Conv2d(4096, classes, 1))

    class Fcn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vgg, self.head = vgg, head

        def forward(self, x):
            y = self.head(self.vgg(x))
            return {"out": torch.nn.functional.interpolate(y, size=x.shape[-2:],
                                                           mode="bilinear")}

    return Fcn()


def _set_bn(torch, model, mode: str) -> None:
    """``train``: every module in training mode; ``frozen``: BatchNorm layers use (and keep)
    their running statistics, the rest trains."""
    model.train()
    if mode == "frozen":
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()


def _timed(torch, fn, iterations: int, warmup: int, cuda: bool):
    """(seconds of the first call, seconds of each timed call); each call ends synchronised.
    On CUDA the peak-memory counter is reset after the warm-up, so that the peak read after
    this call is the steady state's, without cuDNN autotuning's trial workspaces."""
    def once():
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    first = once()
    for _ in range(max(0, warmup - 1)):
        once()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    return first, [once() for _ in range(iterations)]


def _summary(seconds: list[float], images: int) -> dict:
    ms = [1000 * s for s in seconds]
    median = statistics.median(ms)
    return {"median_ms": median, "min_ms": min(ms), "max_ms": max(ms),
            "images_per_s": images / (median / 1000)}


def main() -> None:
    import torch
    torchvision, torchvision_note = _import_torchvision()

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_step_arguments(parser)
    parser.add_argument("--classes", type=int, default=11)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--bn", default="train", choices=("train", "frozen"))
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--eval-size", type=int, nargs=2, default=None)
    parser.add_argument("--eval-batch", type=int, default=None, help="default: --batch")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device=cuda: torch sees no CUDA device")
    cuda = args.device == "cuda"
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tf32 = args.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cuda
    device = torch.device(args.device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = _build(torch, torchvision, args.model, args.classes).to(
        device, memory_format=memory_format)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    run = torch.compile(model) if args.compile else model
    h, w = args.crop
    x = torch.randn(args.batch, 3, h, w, device=device).to(memory_format=memory_format)
    y = torch.randint(0, args.classes, (args.batch, h, w), device=device)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
    autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def train_step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_fn(run(x)["out"].float(), y)
        loss.backward()
        opt.step()

    _set_bn(torch, model, args.bn)
    first, seconds = _timed(torch, train_step, args.iterations, args.warmup, cuda)
    train_peak = torch.cuda.max_memory_allocated() if cuda else None
    out = {
        "framework": f"torch {torch.__version__}, torchvision {torchvision.__version__}",
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "model": args.model, "parameters": params, "batch": args.batch, "crop": [h, w],
        "threads": args.threads, "iterations": args.iterations, "warmup": args.warmup,
        "precision": args.precision, "channels_last": args.channels_last, "bn": args.bn,
        "compile": args.compile,
        **_summary(seconds, args.batch), "first_iteration_s": first,
        "peak_device_bytes_train": train_peak,  # timed iterations only (after warm-up)
    }
    if args.eval_size:
        eh, ew = args.eval_size
        n = args.eval_batch or args.batch
        xe = torch.randn(n, 3, eh, ew, device=device).to(memory_format=memory_format)
        model.eval()

        def forward():
            with torch.no_grad(), autocast:
                run(xe)["out"].argmax(1)

        first_e, seconds_e = _timed(torch, forward, args.iterations, args.warmup, cuda)
        out["eval"] = {"size": [eh, ew], "batch": n, **_summary(seconds_e, n),
                       "first_iteration_s": first_e}
    out["peak_device_bytes"] = (max(train_peak, torch.cuda.max_memory_allocated())
                                if cuda else None)
    out["peak_host_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["note"] = torchvision_note
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
