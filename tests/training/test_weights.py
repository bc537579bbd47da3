"""Weight import: names, layouts, presets and errors (ssgan_jax.weights)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from ssgan_jax.models import Adversary, DeepLabV3, FCN8s, ResNet
from ssgan_jax.training.weights import (
    WeightImportError,
    _to_flax,
    imagenet_logits,
    load_pretrained,
    load_torch_weights,
    read_safetensors,
    torch_name,
)


def test_torch_names():
    assert torch_name("params", ("layer1_0", "conv1", "kernel")) == "layer1.0.conv1.weight"
    assert torch_name("batch_stats", ("layer1_0", "downsample_1", "mean")) == (
        "layer1.0.downsample.1.running_mean")
    assert torch_name("params", ("classifier_0", "convs_4_2", "scale")) == (
        "classifier.0.convs.4.2.weight")
    assert torch_name("params", ("score_pool4", "bias")) == "score_pool4.bias"
    assert torch_name("batch_stats", ("bn1", "var")) == "bn1.running_var"


def test_fc6_linear_reshaped_to_7x7_conv_equals_torch_linear():
    rng = np.random.default_rng(0)
    c, out = 5, 6
    feat = rng.normal(size=(1, 7, 7, c)).astype(np.float32)  # NHWC pooled features
    w = rng.normal(size=(out, c * 49)).astype(np.float32)  # torch Linear(C*7*7, out)
    torch_out = feat.transpose(0, 3, 1, 2).reshape(1, -1) @ w.T  # torch flattens NCHW
    kernel = _to_flax(w, (7, 7, c, out))
    ours = jax.lax.conv_general_dilated(
        feat, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(np.asarray(ours).reshape(1, out), torch_out, rtol=1e-5)
    assert _to_flax(w, (7, 7, c + 1, out)) is None  # does not fit -> reported as mis-shaped


def _fake_torchvision_vgg16(width):
    """A torchvision-named vgg16 state dict at width 1/width (convs + the 3 fc layers)."""
    rng = np.random.default_rng(1)
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    sd, cin, idx = {}, 3, 0
    for item in cfg:
        if item == "M":
            idx += 1
            continue
        cout = item // width
        sd[f"features.{idx}.weight"] = rng.normal(size=(cout, cin, 3, 3)).astype(np.float32)
        sd[f"features.{idx}.bias"] = rng.normal(size=(cout,)).astype(np.float32)
        cin, idx = cout, idx + 2
    fc = 4096 // width
    for i, (o, n) in {0: (fc, cin * 49), 3: (fc, fc), 6: (1000, fc)}.items():
        sd[f"classifier.{i}.weight"] = rng.normal(size=(o, n)).astype(np.float32)
        sd[f"classifier.{i}.bias"] = rng.normal(size=(o,)).astype(np.float32)
    return sd


def test_fcn8s_from_imagenet_vgg16(tmp_path):
    sd = _fake_torchvision_vgg16(width=64)
    path = tmp_path / "vgg16.safetensors"
    save_file(sd, str(path))
    model = FCN8s(num_classes=4, width=64)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    loaded, report = load_pretrained("fcn8s_vgg16", variables, path)
    assert set(report.unexpected_unused) == {"classifier.6.weight", "classifier.6.bias"}
    assert {n.split(".")[0] for n in report.missing_kept_init} == {
        "score_fr", "score_pool4", "score_pool3", "upscore2", "upscore_pool4"}
    fc6 = loaded["params"]["classifier_0"]["kernel"]
    np.testing.assert_allclose(fc6, _to_flax(sd["classifier.0.weight"], fc6.shape))
    np.testing.assert_allclose(loaded["params"]["features_28"]["kernel"],
                               sd["features.28.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(loaded["params"]["score_fr"]["kernel"],
                                  variables["params"]["score_fr"]["kernel"])


def test_deeplab_backbone_from_imagenet_resnet50(parity_dir):
    model = DeepLabV3(num_classes=3, width=8)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 33, 33, 3)))
    loaded, report = load_pretrained("deeplabv3_resnet50", variables,
                                     parity_dir / "resnet50_w8.safetensors")
    tensors = read_safetensors(parity_dir / "resnet50_w8.safetensors")
    np.testing.assert_array_equal(loaded["params"]["backbone"]["conv1"]["kernel"],
                                  tensors["conv1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(loaded["batch_stats"]["backbone"]["layer4_2"]["bn3"]["var"],
                                  tensors["layer4.2.bn3.running_var"])
    assert set(report.unexpected_unused) == {"backbone.fc.weight", "backbone.fc.bias"}
    assert all(n.startswith("classifier.") for n in report.missing_kept_init)
    assert report.missing_kept_init  # the head is new


@pytest.mark.parametrize("branch,file", [("resnet50", "resnet50_w8"), ("vgg16", "vgg16_w8")])
def test_adversary_image_branch_from_imagenet(parity_dir, branch, file):
    adv = Adversary(image_branch=branch, image_branch_depth=2, width=8, map_features=(8,),
                    trunk_features=(8, 8, 8, 8))
    variables = adv.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)),
                         jnp.zeros((1, 64, 64, 3)))
    loaded, report = load_pretrained("adversary", variables, parity_dir / f"{file}.safetensors")
    assert all(n.startswith("image_branch.") for n in report.loaded)
    assert {n.split(".")[0] for n in report.missing_kept_init} == {"map", "trunk"}
    tensors = read_safetensors(parity_dir / f"{file}.safetensors")
    key = "features.0.weight" if branch == "vgg16" else "layer2.0.conv2.weight"
    flax_path = ("features_0", "kernel") if branch == "vgg16" else ("layer2_0", "conv2", "kernel")
    leaf = loaded["params"]["image_branch"]
    for p in flax_path:
        leaf = leaf[p]
    np.testing.assert_array_equal(leaf, tensors[key].transpose(2, 3, 1, 0))


def test_wrong_architecture_names_keys(parity_dir):
    model = ResNet(width=8, num_classes=1000)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    with pytest.raises(WeightImportError) as e:
        load_torch_weights(variables, read_safetensors(parity_dir / "vgg16_w8.safetensors"))
    msg = str(e.value)
    assert "looks like: vgg16" in msg and "layer1.0.conv1.weight" in msg
    assert "features.0.weight" in msg  # unexpected, named
    with pytest.raises(WeightImportError, match="cannot initialise fcn8s_vgg16"):
        load_pretrained("fcn8s_vgg16", variables, parity_dir / "resnet50_w8.safetensors")


def test_wrong_width_names_misshaped_keys(parity_dir):
    model = ResNet(width=16, num_classes=1000)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    with pytest.raises(WeightImportError, match=r"wrong shape .*conv1\.weight"):
        load_torch_weights(variables, read_safetensors(parity_dir / "resnet50_w8.safetensors"))


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        read_safetensors(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(WeightImportError, match="cannot read"):
        read_safetensors(bad)


def test_imagenet_logits(parity_dir):
    path = parity_dir / "resnet50_w8.safetensors"
    images = np.random.default_rng(0).integers(0, 256, size=(2, 224, 224, 3), dtype=np.uint8)
    logits = imagenet_logits(path, images)
    assert logits.shape == (2, 1000)
    model = ResNet(width=8, num_classes=1000)
    variables, _ = load_torch_weights(
        model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))), read_safetensors(path))
    x = (images / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    want = model.apply(variables, jnp.asarray(x, jnp.float32))["logits"]
    np.testing.assert_allclose(logits, want, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="uint8"):
        imagenet_logits(path, images.astype(np.float32))
    with pytest.raises(WeightImportError, match="not a ResNet50"):
        imagenet_logits(parity_dir / "vgg16_w8.safetensors", images)
