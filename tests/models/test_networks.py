"""Shapes, BatchNorm modes, the FCN upsampler and the adversary's judgement grid."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssgan_jax.models import (
    Adversary,
    DeepLabV3,
    FCN8s,
    ResNet,
    build_adversary,
    build_generator,
    matmul_precision,
)
from ssgan_jax.models import norm as norm_lib
from ssgan_jax.models.conv import Conv
from ssgan_jax.models.fcn import bilinear_upsample_kernel, upsample2x
from ssgan_jax.models.layers import adaptive_avg_pool, bilinear_matrix, resize_bilinear


def _shapes(model, *inputs, **kw):
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs, **kw))
    return jax.eval_shape(lambda v: model.apply(v, *inputs, **kw), variables)


@pytest.mark.parametrize("model", [DeepLabV3(num_classes=21), FCN8s(num_classes=21)])
def test_full_width_generators_keep_500x500(model):
    out = _shapes(model, jnp.zeros((1, 500, 500, 3)))
    assert out.shape == (1, 500, 500, 21)


@pytest.mark.parametrize("branch,depth", [("resnet50", 1), ("vgg16", 2)])
def test_full_width_adversary_gives_4x4_grid(branch, depth):
    adv = Adversary(image_branch=branch, image_branch_depth=depth)
    out = _shapes(adv, jnp.zeros((2, 500, 500, 3)), jnp.zeros((2, 500, 500, 21)))
    assert out.shape == (2, 4, 4)


@pytest.mark.parametrize("h,w", [(37, 53), (64, 64), (100, 75)])
def test_small_generators_run_on_any_size(h, w):
    x = jax.random.normal(jax.random.key(0), (1, h, w, 3))
    for model in (DeepLabV3(num_classes=5, width=16), FCN8s(num_classes=5, width=16)):
        variables = model.init(jax.random.key(1), x)
        out = model.apply(variables, x)
        assert out.shape == (1, h, w, 5)
        assert np.all(np.isfinite(np.asarray(out)))


def test_fcn_output_pixel_is_aligned_with_input_pixel():
    # Zero the padding effect: the output at (i, j) must not depend on how much padding the
    # input needs, only on the image. Crop a 64x64 image to 60x60: the 60x60 result's
    # interior must equal the 64x64 result's top-left, up to the receptive-field border.
    model = FCN8s(num_classes=3, width=16)
    x = jax.random.normal(jax.random.key(0), (1, 64, 64, 3))
    variables = model.init(jax.random.key(1), x)
    # give the score layers non-zero weights so the output depends on the image
    variables = jax.tree_util.tree_map(lambda a: a + 0.01, variables)
    full = model.apply(variables, x)
    x60 = x.at[:, 60:, :, :].set(0).at[:, :, 60:, :].set(0)
    cropped = model.apply(variables, x60[:, :60, :60])
    padded = model.apply(variables, x60)
    np.testing.assert_allclose(cropped, padded[:, :60, :60], atol=1e-5)
    assert not np.allclose(full, padded)  # the image content matters


def test_upsample2x_bilinear_init_interpolates():
    f = 3
    layer = upsample2x(f, "up", jnp.float32)
    x = jax.random.normal(jax.random.key(0), (1, 6, 8, f))
    params = layer.init(jax.random.key(1), x)
    kernel = params["params"]["kernel"]
    np.testing.assert_array_equal(kernel, bilinear_upsample_kernel(2, f))
    y = layer.apply(params, x)
    assert y.shape == (1, 12, 16, f)
    # away from the border it is bilinear (half-pixel centres), as torch's bilinear deconv
    ref = resize_bilinear(x, 12, 16)
    np.testing.assert_allclose(y[:, 1:-1, 1:-1], ref[:, 1:-1, 1:-1], atol=1e-5)
    # the same layer as flax's ConvTranspose with torch's k=4, s=2, p=1 (same parameters)
    random = {"params": {"kernel": jax.random.normal(jax.random.key(2), kernel.shape)}}
    flax_layer = nn.ConvTranspose(f, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                                  use_bias=False)
    np.testing.assert_allclose(layer.apply(random, x), flax_layer.apply(random, x),
                               rtol=1e-6, atol=1e-6)


def test_resize_bilinear_upsampling_is_jax_image_resize():
    """Upsampling as two matrix products equals jax.image.resize (half-pixel centres, edge
    pixels at the borders); by hand: 2 -> 4 reads x = -0.25, 0.25, 0.75, 1.25."""
    np.testing.assert_allclose(bilinear_matrix(2, 4), [[1, 0], [0.75, 0.25], [0.25, 0.75],
                                                       [0, 1]])
    for shape, out in (((2, 23, 30, 5), (180, 240)), ((1, 3, 4, 2), (5, 9)),
                       ((1, 6, 6, 1), (6, 12))):
        x = jax.random.normal(jax.random.key(0), shape)
        want = jax.image.resize(x, (shape[0], *out, shape[3]), "bilinear")
        np.testing.assert_allclose(resize_bilinear(x, *out), want, atol=2e-5, rtol=1e-5)
    x = jax.random.normal(jax.random.key(1), (1, 16, 16, 2))  # downsampling: antialiased
    np.testing.assert_array_equal(resize_bilinear(x, 4, 4),
                                  jax.image.resize(x, (1, 4, 4, 2), "bilinear"))


def test_adaptive_avg_pool_matches_torch_bins():
    x = jnp.arange(1 * 5 * 6 * 1, dtype=jnp.float32).reshape(1, 5, 6, 1)
    y = np.asarray(adaptive_avg_pool(x, 4, 4))[0, ..., 0]
    a = np.asarray(x)[0, ..., 0]
    # torch bins for 5 -> 4: [0,2) [1,3) [2,4) [3,5); for 6 -> 4: [0,2) [1,3) [3,5) [4,6)
    rows = [(0, 2), (1, 3), (2, 4), (3, 5)]
    cols = [(0, 2), (1, 3), (3, 5), (4, 6)]
    want = np.array([[a[r0:r1, c0:c1].mean() for c0, c1 in cols] for r0, r1 in rows])
    np.testing.assert_allclose(y, want, rtol=1e-6)


def test_adversary_cells_are_local_judgements():
    adv = Adversary(image_branch="vgg16", image_branch_depth=1, width=16,
                    map_features=(8,), trunk_features=(8, 8, 8, 8))
    x = jax.random.normal(jax.random.key(0), (1, 64, 64, 3))
    m = jax.nn.softmax(jax.random.normal(jax.random.key(1), (1, 64, 64, 4)), -1)
    variables = adv.init(jax.random.key(2), x, m)
    out = adv.apply(variables, x, m)
    assert out.shape == (1, 4, 4)
    # changing the map in the top-left corner changes the top-left cell, not the far corner
    m2 = m.at[:, :8, :8, :].set(jnp.eye(4)[0])
    diff = np.abs(np.asarray(adv.apply(variables, x, m2) - out))[0]
    assert diff[0, 0] > 0 and diff[3, 3] == 0


def test_adversary_rejects_bad_inputs():
    adv = Adversary(image_branch="vgg16", image_branch_depth=1, width=16)
    with pytest.raises(ValueError, match="maps"):
        adv.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 16, 16, 4)))
    with pytest.raises(ValueError, match="too small"):
        adv.init(jax.random.key(0), jnp.zeros((1, 6, 6, 3)), jnp.zeros((1, 6, 6, 4)))
    with pytest.raises(ValueError, match="image_branch"):
        Adversary(image_branch="alexnet").init(
            jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 32, 4)))


@pytest.mark.parametrize("shape", [(1, 32, 32), (1, 32, 32, 1), (1, 3, 32, 32)])
def test_generators_name_wrong_image_shape(shape):
    for model in (DeepLabV3(num_classes=3, width=16), FCN8s(num_classes=3, width=16)):
        with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
            model.init(jax.random.key(0), jnp.zeros(shape))


def _bn_model_and_vars(frozen, axis_name=None):
    model = ResNet(width=16, num_stages=1, bn_frozen=frozen, bn_axis_name=axis_name)
    x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
    return model, model.init(jax.random.key(1), x), x


def test_batchnorm_train_updates_stats_frozen_does_not():
    model, variables, x = _bn_model_and_vars(frozen=False)
    _, upd = model.apply(variables, x, train=True, mutable=["batch_stats"])
    changed = jax.tree_util.tree_map(
        lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
        variables["batch_stats"], upd["batch_stats"])
    assert all(jax.tree_util.tree_leaves(changed))

    model, variables, x = _bn_model_and_vars(frozen=True)
    out, upd = model.apply(variables, x, train=True, mutable=["batch_stats"])
    jax.tree_util.tree_map(np.testing.assert_array_equal, variables["batch_stats"],
                           upd["batch_stats"])
    np.testing.assert_allclose(out["layer1"], model.apply(variables, x)["layer1"], atol=1e-6)


def test_batchnorm_statistics_are_averaged_over_axis_name():
    # Two "devices" (vmap with an axis name) with 2 images each must normalise exactly as one
    # device with all 4 images: that is what cross-device BN means.
    model, variables, x = _bn_model_and_vars(frozen=False, axis_name="batch")
    single = ResNet(width=16, num_stages=1)
    want, _ = single.apply(variables, x, train=True, mutable=["batch_stats"])
    split = x.reshape(2, 2, 32, 32, 3)
    got, _ = jax.vmap(
        lambda xb: model.apply(variables, xb, train=True, mutable=["batch_stats"]),
        axis_name="batch")(split)
    # atol: float32 summation order differs between the vmapped and the 4-image GEMMs (up to
    # 2e-5 here); per-device instead of global statistics differ by up to 1.9.
    np.testing.assert_allclose(got["layer1"].reshape(want["layer1"].shape), want["layer1"],
                               atol=1e-4)


def test_builders_from_config():
    model = ml_collections.ConfigDict(dict(
        name="deeplabv3_resnet50", width=16, output_stride=16, dropout_rate=0.1,
        bn_mode="frozen", dtype="float32", conv_rewrites="off", bn_vjp="off"))
    g = build_generator(model, num_classes=7)
    assert isinstance(g, DeepLabV3) and g.bn_frozen and g.output_stride == 16
    # the conv and BatchNorm classes are fields, bound here once
    assert g.conv.func is Conv and g.conv.keywords == {"gemm_forms": False}
    assert g.norm is nn.BatchNorm
    model.conv_rewrites, model.bn_vjp = "on", "on"
    g = build_generator(model, num_classes=7)
    assert g.conv.keywords == {"gemm_forms": True} and g.norm is norm_lib.BatchNorm
    model.conv_rewrites = "cpu"
    with pytest.raises(ValueError, match=r"conv_rewrites must be one of \('auto', 'on', 'off'\)"):
        build_generator(model, 7)
    model.conv_rewrites, model.bn_vjp = "auto", "gpu"
    with pytest.raises(ValueError, match=r"bn_vjp must be one of \('auto', 'on', 'off'\)"):
        build_generator(model, 7)
    model.bn_vjp = "auto"
    model.name = "fcn8s_vgg16"
    assert isinstance(build_generator(model, 7), FCN8s)
    model.name = "unet"
    with pytest.raises(ValueError, match="model.name"):
        build_generator(model, 7)
    model.name, model.bn_mode = "fcn8s_vgg16", "sync"
    with pytest.raises(ValueError, match="bn_mode"):
        build_generator(model, 7)
    adv = ml_collections.ConfigDict(dict(
        image_branch="vgg16", image_branch_depth=2, width=8, map_features=(16,),
        trunk_features=(8, 8, 8, 8), grid=2, activation="relu"))
    a = build_adversary(adv)
    assert a.grid == 2 and a.image_branch == "vgg16"


def test_matmul_precision_reaches_every_conv_of_the_traced_program():
    model = ml_collections.ConfigDict(dict(
        name="fcn8s_vgg16", width=32, dropout_rate=0.0, bn_mode="frozen", dtype="float32",
        conv_rewrites="off", bn_vjp="auto", matmul_precision="highest"))
    g = build_generator(model, num_classes=3)
    x = jnp.zeros((1, 32, 32, 3))
    variables = jax.eval_shape(lambda: g.init(jax.random.key(0), x))

    def counts(text):  # (convs, precision configs that say HIGHEST)
        return text.count("conv_general_dilated["), text.count("precision=(Precision.HIGHEST")

    with matmul_precision(model):
        convs, highest = counts(str(jax.make_jaxpr(lambda v: g.apply(v, x))(variables)))
    assert convs >= 15 and highest >= convs  # every conv (and any matmul)
    model.matmul_precision = "default"
    # (tests/conftest.py sets HIGHEST as JAX's default off the CPU; "default" leaves JAX's)
    with jax.default_matmul_precision(None), matmul_precision(model):
        # only the few ops that ask for HIGHEST themselves
        default = counts(str(jax.make_jaxpr(lambda v: g.apply(v, x))(variables)))
    assert default[0] == convs and default[1] < convs // 2
    model.matmul_precision = "tf32"
    with pytest.raises(ValueError, match="matmul_precision must be one of"):
        matmul_precision(model)


def test_default_config_builds_paper_networks():
    from ssgan_jax.core.config import get_config

    config = get_config()
    g = build_generator(config.model, num_classes=21)
    assert isinstance(g, DeepLabV3) and g.output_stride == 8 and g.width == 1
    a = build_adversary(config.adversary)
    out = _shapes(a, jnp.zeros((1, 500, 500, 3)), jnp.zeros((1, 500, 500, 21)))
    assert out.shape == (1, config.adversary.grid, config.adversary.grid)


@pytest.mark.parametrize("branch", ["resnet50", "vgg16"])
def test_adversary_judges_k_maps_per_image_with_one_image_branch_pass(branch):
    """A(x, [m1; m2]) == [A(x, m1); A(x, m2)]: the adversary step's shared image branch."""
    adversary = Adversary(image_branch=branch, width=32, map_features=(4,),
                          trunk_features=(4, 4, 4, 4))
    k = jax.random.split(jax.random.key(0), 3)
    images = jax.random.normal(k[0], (2, 32, 32, 3))
    maps = jax.nn.softmax(jax.random.normal(k[1], (4, 32, 32, 5)), axis=-1)
    variables = adversary.init(k[2], images, maps[:2])
    apply = jax.jit(adversary.apply)
    both = apply(variables, images, maps)
    each = jnp.concatenate([apply(variables, images, maps[:2]), apply(variables, images, maps[2:])])
    np.testing.assert_allclose(both, each, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        adversary.apply(variables, images, maps[:3])


def _conv_calls(fn, *args):
    """(custom-VJP convs, XLA convolutions) in ``fn``'s jaxpr, nested calls included."""
    custom = xla = 0
    todo = [jax.make_jaxpr(fn)(*args).jaxpr]
    while todo:
        jaxpr = todo.pop()
        for e in jaxpr.eqns:
            if e.primitive.name == "custom_vjp_call":
                inner = [q.primitive.name for q in e.params["call_jaxpr"].jaxpr.eqns]
                custom += "conv_general_dilated" in inner or "dot_general" in inner
                continue
            xla += e.primitive.name == "conv_general_dilated"
            todo += [sub.jaxpr if hasattr(sub, "jaxpr") else sub
                     for sub in jax.extend.core.jaxprs_in_params(e.params)]
    return custom, xla


@pytest.mark.parametrize("name", ["deeplabv3_resnet50", "fcn8s_vgg16", "adversary"])
def test_conv_rewrites_reach_every_conv_and_do_not_change_the_outputs(name):
    """model.conv_rewrites="off": every conv of G and A (nested backbones included), and its
    gradient, is XLA's convolution; "on": the GEMM forms (models/conv.py). Same outputs."""
    k = jax.random.split(jax.random.key(0), 3)
    images = jax.random.normal(k[0], (2, 32, 48, 3))
    maps = jax.nn.softmax(jax.random.normal(k[1], (2, 32, 48, 5)), axis=-1)
    results = {}
    for mode in ("on", "off"):
        if name == "adversary":
            net = Adversary(width=32, map_features=(4,), trunk_features=(4, 4, 4, 4),
                            conv=functools.partial(Conv, gemm_forms=mode == "on"))
            inputs = (images, maps)
        else:
            model = ml_collections.ConfigDict(dict(
                name=name, width=32, output_stride=8, dropout_rate=0.0, bn_mode="frozen",
                dtype="float32", conv_rewrites=mode, bn_vjp="auto"))
            net = build_generator(model, num_classes=5)
            inputs = (images,)
        variables = net.init(k[2], *inputs)

        def loss(params, net=net, variables=variables, inputs=inputs):
            return jnp.sum(net.apply({**variables, "params": params}, *inputs) ** 2)

        custom, xla = _conv_calls(jax.grad(loss), variables["params"])
        results[mode] = (custom, xla, jax.jit(loss)(variables["params"]))
    assert results["off"][0] == 0 and results["off"][1] > 0
    assert results["on"][0] > 0
    # gradients of the two forms are compared conv by conv in tests/models/test_conv.py
    np.testing.assert_allclose(results["on"][2], results["off"][2], rtol=1e-4)


class BNNet(nn.Module):
    """A generator of one's own with flax's BatchNorm (README, "Your own generator")."""

    num_classes: int
    axis_name: str | None = None

    @nn.compact
    def __call__(self, images, train: bool = False):
        x = nn.Conv(4, (3, 3))(images)
        x = nn.BatchNorm(use_running_average=not train, axis_name=self.axis_name)(x)
        return nn.Conv(self.num_classes, (1, 1))(nn.relu(x))


def bn_net_factory(num_classes, axis_name=None):
    return BNNet(num_classes=num_classes, axis_name=axis_name)


def test_own_generator_is_given_the_device_axis_for_its_batchnorm():
    """A generator that takes ``axis_name`` gets training's device axis (None at inference;
    an explicit kwarg wins), and with it normalises two "devices" of 2 images as one of 4."""
    from ssgan_jax.core import config as config_lib

    model = config_lib.get_config().model
    for name in (f"{__name__}:BNNet", f"{__name__}:bn_net_factory"):
        model.name = name
        assert build_generator(model, 3, axis_name="batch").axis_name == "batch"
        assert build_generator(model, 3).axis_name is None
    model.kwargs = ml_collections.ConfigDict({"axis_name": "mine"})
    assert build_generator(model, 3, axis_name="batch").axis_name == "mine"
    model.kwargs = ml_collections.ConfigDict({})
    model.name = f"{__name__}:BNNet"
    net = build_generator(model, 3, axis_name="batch")
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3)) * 3 + 1
    variables = net.init(jax.random.key(1), x)
    _, want = BNNet(3).apply(variables, x, train=True, mutable=["batch_stats"])
    _, got = jax.vmap(lambda xb: net.apply(variables, xb, train=True, mutable=["batch_stats"]),
                      axis_name="batch")(x.reshape(2, 2, 8, 8, 3))
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        np.testing.assert_allclose(b[0], a, atol=1e-5)  # each device holds the global stats
        np.testing.assert_allclose(b[1], a, atol=1e-5)
