"""Every config and variant loads, passes the checks, and carries the paper's settings."""

import importlib.util
import pathlib
import re

import pytest

from ssgan_jax.core import config as default_config
from ssgan_jax.core.config import check as check_config

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"


def _load(name, arg=None):
    spec = importlib.util.spec_from_file_location(name, CONFIGS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


@pytest.mark.parametrize("name", ["demo", "camvid", "voc2012", "cityscapes"])
@pytest.mark.parametrize("generator", default_config.GENERATORS)
@pytest.mark.parametrize("training", default_config.TRAININGS)
def test_variants(name, generator, training):
    config = _load(name, f"{generator}_{training}")
    check_config(config)
    assert config.model.name == generator
    if name == "camvid":  # the matched baseline: phase 2 without the adversarial term
        assert config.phase2.steps > 0 and (config.loss.lam > 0) == (training != "baseline")
    else:
        assert (config.phase2.steps > 0) == (training != "baseline")
    semi = config.semi
    if training == "semi":  # AdvSemiSeg's protocol: 1/8 of the labels, as many unlabelled
        assert config.data.labeled == "0.125"
        assert semi.unlabeled_batch_size == config.batch_size
        assert semi.lam_adv_unlabeled == pytest.approx(config.loss.lam / 10)
        assert (semi.lam_semi, semi.mask_threshold) == (0.1, 0.2)
        assert semi.start_step == config.phase2.steps // 4
    else:
        assert config.data.labeled == "" and semi.unlabeled_batch_size == 0


@pytest.mark.parametrize("training", default_config.TRAININGS)
def test_camvid_cpu_size(training):
    config = _load("camvid", f"fcn8s_vgg16_{training},cpu")
    check_config(config)
    assert config.model.width == 8 and tuple(config.data.eval_size) == (180, 240)
    assert config.phase1.steps == 8000 and config.phase2.steps == 1500
    assert config.loss.class_balance == "median_frequency" and config.loss.class_weights == ()
    assert config.loss.class_balance_power == 0.5  # the recipe run with the best validation
    assert (config.loss.lam == 0) == (training == "baseline")
    assert (config.semi.unlabeled_batch_size > 0) == (training == "semi")
    assert (config.eval.checkpoint, config.eval.split) == ("best", "test")
    with pytest.raises(ValueError, match="unknown size 'tpu'"):
        _load("camvid", "fcn8s_vgg16_gan,tpu")
    gpu = _load("camvid", f"fcn8s_vgg16_{training},gpu")
    check_config(gpu)
    assert gpu.model.width == 1 and tuple(gpu.data.crop_size) == (360, 480)  # full width
    assert gpu.loss.class_balance == "median_frequency" and gpu.batch_size == 16
    # the paper configs stay unbalanced
    assert _load("voc2012").loss.class_balance == _load("cityscapes").loss.class_balance == ""


@pytest.mark.parametrize("name", ["voc2012", "cityscapes"])
def test_paper_settings_are_the_defaults(name):
    c = _load(name)
    assert c.variant == "deeplabv3_resnet50_gan"
    assert (c.batch_size, tuple(c.data.crop_size)) == (2, (500, 500))  # METHOD.md section 6
    assert (c.phase1.lr, c.phase1.end_lr) == (1e-4, 1e-5)
    assert (c.phase2.lr, c.phase2.d_lr, c.phase2.d_momentum) == (3e-5, 3e-4, 0.9)
    assert c.loss.lam == 1e-2 and c.loss.adv_form == "minimax" and c.rescaling.eps == 0.9


def test_unknown_variant_names_the_choices():
    with pytest.raises(ValueError, match="deeplabv3_resnet50_gan"):
        _load("voc2012", "resnet_gan")


@pytest.mark.parametrize("name", ["demo", "camvid", "voc2012", "cityscapes"])
def test_named_config_arguments_equal_the_short_spellings(name):
    sizes = ",size=cpu" if name == "camvid" else ""
    short = ",cpu" if name == "camvid" else ""
    named = _load(name, f"generator=fcn8s_vgg16,training=baseline{sizes}")
    assert named.to_dict() == _load(name, f"fcn8s_vgg16_baseline{short}").to_dict()
    # any subset: the others keep their defaults
    partial = _load(name, "training=baseline")
    assert partial.model.name == "deeplabv3_resnet50" and partial.variant.endswith("_baseline")
    assert _load(name, "").to_dict() == _load(name, "deeplabv3_resnet50_gan").to_dict()


def test_bad_named_arguments_name_the_choices():
    with pytest.raises(ValueError,
                       match=r"unknown config argument 'size=tpu'.*size=<full\|cpu\|gpu>"):
        _load("camvid", "size=tpu")
    with pytest.raises(ValueError, match=r"unknown config argument 'size=cpu'"):
        _load("voc2012", "size=cpu")  # voc2012 has no sizes
    with pytest.raises(ValueError, match=r"unknown config argument 'model=unet'"):
        _load("demo", "model=unet")


def test_the_check_at_load_refuses_bad_benchmark_and_predict_values():
    """Checked once, when the config is loaded (the benchmark and predict trust it)."""
    for key, value, text in (("benchmark.iterations", 0, "config.benchmark.iterations must be"),
                             ("benchmark.warmup", -1, "config.benchmark.warmup must be"),
                             ("predict.overlay_alpha", 1.5, "overlay_alpha must be in [0, 1]")):
        config = default_config.get_config()
        section, field = key.split(".")
        config[section][field] = value
        with pytest.raises(ValueError, match=re.escape(text)):
            check_config(config)
