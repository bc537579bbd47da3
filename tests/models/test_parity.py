"""Our networks, loaded through ssgan_jax.weights, reproduce torchvision's outputs.

Fixtures: ../shared/fixtures/torch_parity (README there): width/8 networks built from
torchvision's own classes, eval mode, float32; tolerance atol=rtol=1e-4.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssgan_jax.models import DeepLabV3, ResNet, VGG16Features
from ssgan_jax.training.weights import load_torch_weights, read_safetensors

TOL = dict(atol=1e-4, rtol=1e-4)


def nhwc(a):
    return np.asarray(a).transpose(0, 2, 3, 1)


def load(model, parity_dir, name, shape, **kw):
    variables = model.init(jax.random.key(0), jnp.zeros(shape), **kw)
    tensors = read_safetensors(parity_dir / f"{name}.safetensors")
    loaded, report = load_torch_weights(variables, tensors)
    assert len(report.loaded) == len(tensors)  # strict: every tensor used, nothing skipped
    return loaded, np.load(parity_dir / f"{name}_io.npz")


@pytest.mark.parametrize("output_stride", [32, 8])
def test_resnet50(parity_dir, output_stride):
    model = ResNet(width=8, output_stride=output_stride, num_classes=1000)
    variables, io = load(model, parity_dir, "resnet50_w8", (1, 64, 80, 3))
    out = model.apply(variables, nhwc(io["x"]), train=False)
    keys = ["stem", "layer1", "layer2", "layer3", "layer4"] if output_stride == 32 else [
        "layer3", "layer4"]
    for k in keys:
        np.testing.assert_allclose(out[k], nhwc(io[f"os{output_stride}_{k}"]), **TOL, err_msg=k)
    if output_stride == 32:
        np.testing.assert_allclose(out["logits"], io["os32_logits"], **TOL)


def test_deeplabv3_resnet50(parity_dir):
    model = DeepLabV3(num_classes=21, width=8, output_stride=8)
    variables, io = load(model, parity_dir, "deeplabv3_resnet50_w8", (1, 65, 81, 3))
    logits, feats = model.apply(variables, nhwc(io["x"]), train=False, return_features=True)
    np.testing.assert_allclose(feats["backbone_out"], nhwc(io["backbone_out"]), **TOL)
    np.testing.assert_allclose(feats["aspp_out"], nhwc(io["aspp_out"]), **TOL)
    assert logits.shape == (2, 65, 81, 21)
    np.testing.assert_allclose(logits, nhwc(io["logits"]), **TOL)


def test_vgg16_features(parity_dir):
    model = VGG16Features(width=8)
    variables, io = load(model, parity_dir, "vgg16_w8", (1, 64, 96, 3))
    out = model.apply(variables, nhwc(io["x"]))
    for k in ("pool3", "pool4", "pool5"):
        np.testing.assert_allclose(out[k], nhwc(io[k]), **TOL, err_msg=k)
