"""Remake the torchvision parity fixtures of ``tests/fixtures/torch_parity/`` (README there).

    python -m launch.tools.make_parity_fixtures [--out=tests/fixtures/torch_parity] [--seed=0]

Needs torch, torchvision and safetensors (not this package's dependencies; e.g. a separate
venv with ``pip install torch torchvision safetensors numpy``). Builds small networks from
torchvision's own classes with every channel count divided by ``--divisor`` (8), random
weights and random non-trivial BatchNorm statistics, in eval mode and float32, and stores
their state dicts (torchvision's key names) as safetensors with the outputs torchvision
computes for fixed random inputs (NCHW ``.npz``). ``tests/models/test_parity.py`` loads the
weights into our networks and compares the outputs.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _resnet_class():
    import torch.nn as nn
    from torchvision.models import resnet

    class SmallResNet(resnet.ResNet):
        """torchvision's ResNet50 (Bottleneck, [3, 4, 6, 3]) with the stem and stage widths
        divided by ``divisor``: its own ``_make_layer``, key names and forward."""

        def __init__(self, divisor: int, num_classes: int = 1000,
                     replace_stride_with_dilation=None):
            nn.Module.__init__(self)
            self._norm_layer = nn.BatchNorm2d
            self.inplanes, self.dilation, self.groups = 64 // divisor, 1, 1
            self.base_width = 64
            rs = replace_stride_with_dilation or [False, False, False]
            self.conv1 = nn.Conv2d(3, self.inplanes, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(self.inplanes)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            block = resnet.Bottleneck
            self.layer1 = self._make_layer(block, 64 // divisor, 3)
            self.layer2 = self._make_layer(block, 128 // divisor, 4, 2, dilate=rs[0])
            self.layer3 = self._make_layer(block, 256 // divisor, 6, 2, dilate=rs[1])
            self.layer4 = self._make_layer(block, 512 // divisor, 3, 2, dilate=rs[2])
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512 // divisor * block.expansion, num_classes)
            for m in self.modules():  # torchvision ResNet's own initialisation of its convs
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    return SmallResNet


def _randomize(model, generator) -> None:
    """Random BatchNorm statistics and affine parameters far from identity (weight in
    [0.5, 1.5), the last BatchNorm of each bottleneck in [0.1, 0.3) so activations stay of
    order 1; running variance in [0.5, 1.5); means and every bias ~ N(0, 0.1)), so a BatchNorm
    convention mistake shows. Convolution and linear weights keep torchvision's own
    initialisation."""
    import torch

    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
            elif tensor.ndim == 1:  # BatchNorm weight
                low, width = (0.1, 0.2) if name.endswith("bn3.weight") else (0.5, 1.0)
                tensor.copy_(low + width * torch.rand(tensor.shape, generator=generator))


def _save(out: str, name: str, model, arrays: dict) -> None:
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    save_file(state, os.path.join(out, f"{name}.safetensors"))
    np.savez(os.path.join(out, f"{name}_io.npz"),
             **{k: v.detach().numpy().astype(np.float32) for k, v in arrays.items()})
    print(f"{name}: {len(state)} tensors, outputs {sorted(arrays)}", flush=True)


def make(out: str, divisor: int = 8, seed: int = 0) -> None:
    import torch
    from torchvision.models import vgg
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    os.makedirs(out, exist_ok=True)
    SmallResNet = _resnet_class()

    # ResNet50 at output stride 32, then the same weights dilated to output stride 8
    net = SmallResNet(divisor).eval()
    _randomize(net, g)
    x = torch.randn(2, 3, 64, 80, generator=g)
    with torch.no_grad():
        io = {"x": x}
        h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        io["os32_stem"] = h
        for k in ("layer1", "layer2", "layer3", "layer4"):
            h = getattr(net, k)(h)
            io[f"os32_{k}"] = h
        io["os32_logits"] = net(x)
        dilated = SmallResNet(divisor, replace_stride_with_dilation=[False, True, True]).eval()
        dilated.load_state_dict(net.state_dict())
        h = dilated.layer2(dilated.layer1(dilated.maxpool(dilated.relu(dilated.bn1(
            dilated.conv1(x))))))
        io["os8_layer3"] = h = dilated.layer3(h)
        io["os8_layer4"] = dilated.layer4(h)
    _save(out, f"resnet50_w{divisor}", net, io)

    # DeepLabv3: the OS8 backbone (no fc), ASPP 12/24/36 and torchvision's head layout
    backbone = SmallResNet(divisor, replace_stride_with_dilation=[False, True, True])
    channels = 256 // divisor
    head = torch.nn.Sequential(
        ASPP(2048 // divisor, [12, 24, 36], out_channels=channels),
        torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(channels), torch.nn.ReLU(), torch.nn.Conv2d(channels, 21, 1))
    model = DeepLabV3(IntermediateLayerGetter(backbone, {"layer4": "out"}), head).eval()
    _randomize(model, g)
    x = torch.randn(2, 3, 65, 81, generator=g)  # odd sizes: padding conventions show
    with torch.no_grad():
        feats = model.backbone(x)["out"]
        io = {"x": x, "backbone_out": feats, "aspp_out": model.classifier[0](feats),
              "logits": model(x)["out"]}
    _save(out, f"deeplabv3_resnet50_w{divisor}", model, io)

    # VGG16's convolutional layers (torchvision's configuration "D")
    cfg = [v if v == "M" else v // divisor for v in vgg.cfgs["D"]]
    features = vgg.make_layers(cfg, batch_norm=False)
    holder = torch.nn.Module()
    holder.features = features
    holder.eval()
    _randomize(holder, g)
    x = torch.randn(2, 3, 64, 96, generator=g)
    with torch.no_grad():
        io, h = {"x": x}, x
        for i, layer in enumerate(features):
            h = layer(h)
            if i in (16, 23, 30):
                io[{16: "pool3", 23: "pool4", 30: "pool5"}[i]] = h
    _save(out, f"vgg16_w{divisor}", holder, io)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "torch_parity"))
    parser.add_argument("--divisor", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make(args.out, args.divisor, args.seed)


if __name__ == "__main__":
    main()
