"""The config of a run: the shared defaults (configs/<dataset>.py import and modify them),
the variants, the check every loaded config passes, and the predicates the loop asks of it.

Each number that changes results sits here with the METHOD.md section it comes from.
"""

import ml_collections

from ssgan_jax.core.errors import ConfigError

GENERATORS = ("deeplabv3_resnet50", "fcn8s_vgg16")
ADV_FORMS = ("minimax", "non_saturating")  # loss.adv_form (METHOD.md, "Losses")
CLASS_BALANCES = ("", "median_frequency")  # loss.class_balance
TRAININGS = ("baseline", "gan", "semi")


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.variant = ""  # "<generator>_<training>", set from configs/X.py:<arg>
    config.seed = 0
    config.batch_size = 2  # global batch per step (METHOD.md section 6)
    config.eval_batch_size = 2

    # Data (METHOD.md section 7); dataset configs set name, sizes and paths.
    config.data = ml_collections.ConfigDict()
    config.data.name = "camvid"  # "camvid", "voc2012_aug" or "cityscapes"
    config.data.manual_dir = ""  # folder with the downloaded archives/folders
    config.data.data_dir = ""  # where TFDS writes the prepared dataset ("" = TFDS default)
    config.data.train_split = "train"
    config.data.val_split = "val"
    config.data.crop_size = (500, 500)  # training crop (METHOD.md section 6: 500x500)
    # eval images are padded to this (bottom/right): (height, width), or "auto" = the largest
    # image of the prepared dataset (resolved once it is prepared; recorded resolved)
    config.data.eval_size = ml_collections.FieldReference((512, 512), field_type=object)
    config.data.scale_range = (0.5, 2.0)  # random scale augmentation
    config.data.flip = True
    # The input pipeline (data/pipeline.py, Grain): batches prepared at once by threads of each
    # process, batches held ready, and worker processes (0 = the threads of the training
    # process; on a GPU host, workers escape Python's lock: PERFORMANCE.md "Input pipeline")
    config.data.threads = 4
    config.data.prefetch = 4
    config.data.workers = 0
    # Input normalisation (RGB in [0, 1]): torchvision's ImageNet statistics, which its
    # ResNet50 and VGG16 weights expect.
    config.data.mean = (0.485, 0.456, 0.406)
    config.data.std = (0.229, 0.224, 0.225)
    # Labelled subset of train_split (semi-supervised runs; data/subset.py): "" = all; a
    # fraction "0.125", a count "46" or a file of image ids (stems). The choice depends only
    # on the split and split_seed; it is written to <workdir>/labeled_ids.txt.
    config.data.labeled = ""
    config.data.split_seed = 0
    # Unlabelled images (semi.unlabeled_batch_size > 0): "" and "" = the train_split images
    # outside the labelled subset; or a split of the dataset, or a glob of image files.
    config.data.unlabeled_split = ""
    config.data.unlabeled_glob = ""
    # Your own dataset (data.name = "folder", data/folder.py, README "Your own dataset"): the
    # layout under manual_dir ("{split}" is replaced by each split's name) and the classes file
    config.data.folder = ml_collections.ConfigDict()
    config.data.folder.classes_file = "classes.json"  # relative to manual_dir, or absolute
    config.data.folder.splits = ("train", "val", "test")
    config.data.folder.images = "{split}/images"
    config.data.folder.labels = "{split}/labels"
    config.data.folder.image_suffix = ""  # "" = any of .jpg .jpeg .png
    config.data.folder.label_suffix = ".png"
    config.data.folder.list_file = ""  # e.g. "{split}.txt": the stems of a split, one a line

    # Generator G (METHOD.md section 2).
    config.model = ml_collections.ConfigDict()
    # "deeplabv3_resnet50", "fcn8s_vgg16", or your own flax.linen.Module as an importable
    # "module:Class", built as Class(num_classes=..., **model.kwargs) (models/registry.py)
    config.model.name = "deeplabv3_resnet50"
    config.model.kwargs = ml_collections.ConfigDict()
    config.model.width = 1  # channel divisor; 1 = the paper's (torchvision's) networks
    config.model.output_stride = 8  # DeepLabv3: atrous stages 3-4 (METHOD.md section 2)
    config.model.dropout_rate = 0.5  # ASPP projection / FCN fc6-fc7 (torchvision, FCN)
    # "train": batch statistics averaged over all devices; "frozen": running statistics,
    # no update (METHOD.md section 6 trains with batch 2, where batch statistics are noisy).
    config.model.bn_mode = "frozen"
    config.model.dtype = "float32"  # compute dtype: "float32" or "bfloat16"
    # precision of float32 convs and matmuls (jax.default_matmul_precision): "default" = the
    # backend's (TF32 tensor cores on NVIDIA Ampere and later, full float32 on CPUs),
    # "highest" = full float32 everywhere, "high" = bf16x3 where the backend has it
    config.model.matmul_precision = "default"
    # convs of G and A as GEMMs (models/conv.py, tuned on XLA:CPU): "auto" = on the CPU only,
    # XLA's own convolution elsewhere (cuDNN on GPUs); "on"/"off" force it
    config.model.conv_rewrites = "auto"
    # BatchNorm's backward: "on" = models/norm.py's one-pass VJP (measured faster on XLA:CPU),
    # "off" = autodiff of flax.linen.BatchNorm; "auto" = "on" on the CPU only, until a GPU
    # measurement says otherwise (same variables and results either way)
    config.model.bn_vjp = "auto"

    # Adversary A (METHOD.md section 3, Table 2).
    config.adversary = ml_collections.ConfigDict()
    config.adversary.image_branch = "resnet50"  # first layers of "resnet50" or "vgg16"
    config.adversary.image_branch_depth = 1  # ResNet stages after the stem / VGG blocks
    config.adversary.width = 1
    config.adversary.map_features = (64, 128)  # shallow map branch (METHOD.md section 3)
    config.adversary.trunk_features = (64, 128, 256, 512)  # Table 2 rows 0, 1, 3, 5
    config.adversary.grid = 4  # 4x4 judgement cells (METHOD.md section 3)
    config.adversary.activation = "leaky_relu"  # the paper does not say; or "relu"
    # The layout-judging adversary (METHOD.md section 3, "The layout-judging adversary"; off =
    # the paper's method). rescale_fake: the fake map is G's map epsilon-rescaled against its
    # own argmax (the real map's rule), so real and fake differ only where the labels differ;
    # map_full_resolution: the map branch's convs at full map resolution (the paper's layout
    # resizes the map to the image branch's grid first: nothing thinner than its stride seen)
    config.adversary.rescale_fake = False
    config.adversary.map_full_resolution = False

    # epsilon-rescaling of real maps (METHOD.md section 4).
    config.rescaling = ml_collections.ConfigDict()
    config.rescaling.eps = 0.9

    # Losses (METHOD.md section 5).
    config.loss = ml_collections.ConfigDict()
    config.loss.ignore_label = 255
    config.loss.adv_form = "minimax"  # paper's; or "non_saturating" (Luc et al.)
    config.loss.lam = 0.01  # weight of G's adversarial term
    # Class balancing of G's cross-entropy (not the paper's; off in its configs): "" = none,
    # "median_frequency" = SegNet's weights from the training labels' pixel counts (counted
    # when the dataset is prepared, stored beside it); the run resolves them into
    # loss.class_weights (one weight per class; set it directly to give your own)
    config.loss.class_balance = ""
    # the balanced weights raised to this power: 1 = median frequency, 0.5 = its square root
    # (softer: frequent classes lose less), 0 = unweighted
    config.loss.class_balance_power = 1.0
    config.loss.class_weights = ()
    config.loss.d_weight = 1.0  # weight of loss_d (Eq. 7's lam; unweighted by default)
    # your own terms of G's loss (training/loss_terms.py, README "Your own loss term"):
    # "module:function" or "module:function=weight", added in every G update of both phases
    config.loss.extra_terms = ()

    # Semi-supervised phase 2: unlabelled images train G through the adversary.
    config.semi = ml_collections.ConfigDict()
    config.semi.unlabeled_batch_size = 0  # global batch of unlabelled images; 0 = none
    config.semi.lam_adv_unlabeled = 0.01  # weight of G's adversarial term on unlabelled images
    config.semi.adversary_unlabeled = True  # A also judges G's maps of unlabelled images
    # self-training (AdvSemiSeg's L_semi): cross-entropy on unlabelled pixels towards G's own
    # argmax where sigmoid(A), brought to pixel resolution, exceeds mask_threshold
    config.semi.lam_semi = 0.0  # 0 = off
    config.semi.mask_threshold = 0.2
    config.semi.start_step = 0  # phase-2 iteration from which self-training is on

    # Initial weights. ImageNet weights as torchvision/timm safetensors (README, "Pretrained
    # weights"); "" = random init, with a warning (METHOD.md section 6 starts from ImageNet).
    config.weights = ml_collections.ConfigDict()
    config.weights.generator = ""  # resnet50 / vgg16 state dict for G's backbone
    config.weights.adversary = ""  # resnet50 / vgg16 state dict for A's image branch
    # Phase 2 from a finished phase-1 run: its workdir (latest checkpoint) or
    # "<workdir>:<step>". Only G's weights are taken; optimizers start afresh.
    config.init_from = ""

    # Phase 1: G alone (METHOD.md section 6). Steps count iterations (one global batch each).
    config.phase1 = ml_collections.ConfigDict()
    config.phase1.steps = 100_000
    config.phase1.lr = 1e-4  # Adam, decayed linearly ...
    config.phase1.end_lr = 1e-5  # ... to this over the phase

    # Phase 2: G + A, alternating (METHOD.md section 6). Optimizers are re-created here.
    config.phase2 = ml_collections.ConfigDict()
    config.phase2.steps = 0  # 0 = a baseline run (G alone)
    config.phase2.lr = 3e-5  # G's Adam, reset to this at the phase start
    config.phase2.end_lr = 3e-6  # the paper gives no end value; the same 10x as phase 1
    config.phase2.d_lr = 3e-4  # A: SGD with momentum
    config.phase2.d_end_lr = 3e-4  # constant unless lowered (the paper decays only G's lr)
    config.phase2.d_momentum = 0.9
    config.phase2.d_steps = 1  # adversary updates per iteration (the paper alternates 1:1)
    config.phase2.g_steps = 1  # generator updates per iteration
    # One G forward per iteration, shared by the A updates and the G update (one jitted
    # iteration; the A updates then see the dropout sample G's update uses). Needs g_steps == 1.
    config.phase2.share_generator_forward = True

    # Optimizer extras, shared by both phases (0 = off).
    config.optim = ml_collections.ConfigDict()
    config.optim.weight_decay = 0.0  # L2 added to G's gradients (torch-style), not decoupled
    config.optim.d_weight_decay = 0.0
    config.optim.grad_clip_norm = 0.0  # global-norm clipping of G's gradients
    config.optim.d_grad_clip_norm = 0.0
    config.optim.adam_eps = 1e-8  # Adam's epsilon (TF1/torch default)

    # Loop: logging, validation, checkpoints, health checks.
    config.train = ml_collections.ConfigDict()
    config.train.log_every = 50
    config.train.eval_every = 5000  # validation on data.val_split (and a checkpoint with it)
    config.train.checkpoint_every = 1000
    config.train.keep_checkpoints = 3  # the latest K, plus the best by validation mIoU
    config.train.health_window = 200  # iterations over which A's accuracy is judged
    config.train.adversary_won_accuracy = 0.99  # mean accuracy above this: "A has won"
    config.train.adversary_idle_margin = 0.02  # |accuracy - 0.5| below this: "A learns nothing"
    # The adversary probe (METHOD.md section 5, "Diagnosing the adversary"): every N phase-2
    # iterations, A's scores on the real map, G's map and G's labels made confident, G's
    # entropy and the adversarial gradient's share and direction, logged as probe/*; 0 = off.
    # A warning, once, when sharpening closes this share of A's real-fake gap (mean of 3 probes)
    config.train.probe_every = 100
    config.train.confidence_share_warning = 0.9
    # a training batch with fewer labelled pixels, or crops less filled by their images, than
    # these shares is reported once (all-void labels train at ce = 0; crops much larger than
    # the scaled images train on padding)
    config.train.min_labelled_share = 0.01
    config.train.min_image_share = 0.25
    config.train.donate = True  # donate the state's buffers to each step (saves memory)
    # a profile of this many steps into <workdir>/profile (jax.profiler;
    # TensorBoard's profile plugin or Perfetto reads it); 0 = none
    config.train.profile_steps = 0
    config.train.profile_first_step = 10  # the step it starts at (after compilation)

    # Evaluation (--mode=eval) and test-time inference. Training's validation uses the same
    # inference settings, so its logged mIoU is what --mode=eval reports for that checkpoint.
    config.eval = ml_collections.ConfigDict()
    config.eval.checkpoint = "latest"  # "latest", "best" (validation mIoU) or a step number
    config.eval.split = ""  # "" = data.val_split; e.g. "test"
    config.eval.mode = "whole"  # "whole": the image padded to data.eval_size; or "sliding"
    config.eval.window = (0, 0)  # sliding window (h, w); (0, 0) = data.crop_size
    config.eval.stride = (0, 0)  # sliding stride (h, w); (0, 0) = 2/3 of the window
    config.eval.scales = (1.0,)  # multi-scale TTA, e.g. (0.75, 1.0, 1.25); logits averaged
    config.eval.flip = False  # also average the horizontally flipped image's logits
    config.eval.windows_per_call = 0  # sliding windows per forward pass; 0 = all (memory)
    # Boundary F1, fragmentation and speckle (inference/region_metrics.py; README "Evaluate"):
    # what the adversary is meant to change (METHOD.md sections 1 and 8), on the host
    config.eval.region_metrics = True
    # your own metrics (inference/metric_registry.py, README "Your own metric"): importable
    # "module:Class" names, each built as Class(num_classes=..., ignore_label=...)
    config.eval.metrics = ()
    config.eval.boundary_tolerance = 0.0  # pixels; 0 = 0.75% of each image's diagonal
    config.eval.min_region = 0  # speckle: components below this many pixels; 0 = 0.05% of image
    config.eval.tensorboard_images = 3  # validation pictures (image | truth | prediction)

    # Prediction files (--mode=predict), from the checkpoint config.eval.checkpoint.
    config.predict = ml_collections.ConfigDict()
    config.predict.input = ""  # a glob of image files; "" = the dataset split config.eval.split
    config.predict.output_dir = ""  # "" = <workdir>/predictions/<split or files>_step_<N>
    config.predict.max_images = 0  # 0 = all
    config.predict.overlay_alpha = 0.5  # weight of the colour map in the overlay
    # an image that cannot be read or decoded: False = stop, naming it; True = skip it (said
    # and counted in predictions.json)
    config.predict.skip_unreadable = False

    # --mode=export (inference/export.py): G of eval.checkpoint as serialized StableHLO and ONNX
    config.export = ml_collections.ConfigDict()
    # "auto" = StableHLO, and ONNX where jax2onnx and onnxruntime are installed (README,
    # "Use a trained model"); or a comma list of "stablehlo", "onnx"
    config.export.formats = "auto"
    config.export.output_dir = ""  # "" = <workdir>/export/step_<N>
    config.export.size = (0, 0)  # input (height, width); (0, 0) = data.eval_size
    config.export.platforms = ("cpu", "cuda")  # jax.export lowering platforms

    # --mode=diagnose (training/diagnose.py; METHOD.md section 5, "Diagnosing the adversary"):
    # the adversary probe of checkpoint eval.checkpoint, and how many labels differ from a
    # reference run's on eval.split (or the validation split)
    config.diagnose = ml_collections.ConfigDict()
    config.diagnose.batches = 8  # training batches the probe is averaged over
    config.diagnose.reference = ""  # workdir of a run of the same generator; "" = none
    config.diagnose.reference_checkpoint = "latest"  # "latest", "best" or a step

    # --mode=benchmark (training/benchmark.py, docs/PERFORMANCE.md)
    config.benchmark = ml_collections.ConfigDict()
    config.benchmark.iterations = 10  # timed iterations per step (median/min/max reported)
    config.benchmark.warmup = 2  # untimed iterations after compilation
    config.benchmark.eval = True  # also time the eval forward pass at data.eval_size
    # which train steps to compile and time; "phase2_iteration" times what training runs
    # (the fused program, or the separate phase-2 steps; it compiles what it needs)
    config.benchmark.steps = ("generator_phase1", "adversary", "generator_phase2",
                              "phase2_iteration")
    # peak FLOP/s of one device for the "fraction_of_peak" figures; 0 = benchmark.PEAK_FLOPS's
    # entry for the device kind and model.dtype (NVIDIA data sheets), none known on CPUs
    config.benchmark.peak_flops_per_s = 0.0
    return config


BASELINES = ("no_phase2", "phase2_without_adversary")


def parse_arg(arg: str | None, file: str, sizes: tuple[str, ...] = ()) -> dict[str, str]:
    """``configs/<file>.py:<arg>`` -> ``{"generator", "training"[, "size"]}``.

    ``arg`` is comma-separated named values in big_vision's style,
    ``generator=fcn8s_vgg16,training=gan,size=cpu`` (any subset; the rest take their
    defaults: ``deeplabv3_resnet50``, ``gan``, the first of ``sizes``), or the short spellings
    ``<generator>_<training>`` and a bare size (``fcn8s_vgg16_gan,cpu``). ConfigError names the
    choices for anything else.
    """
    choices = {"generator": GENERATORS, "training": TRAININGS}
    if sizes:
        choices["size"] = sizes
    out = {"generator": GENERATORS[0], "training": "gan", **({"size": sizes[0]} if sizes else {})}
    usage = (f"configs/{file}.py:" + ",".join(f"{k}=<{'|'.join(v)}>" for k, v in choices.items())
             + f" (or <generator>_<training>{',<size>' if sizes else ''})")
    for part in filter(None, (p.strip() for p in (arg or "").split(","))):
        key, eq, value = part.partition("=")
        if eq:
            if key not in choices or value not in choices[key]:
                raise ConfigError(f"unknown config argument {part!r}; use {usage}")
            out[key] = value
        elif part in choices.get("size", ()):
            out["size"] = part
        elif sizes and "_" not in part:
            raise ConfigError(f"unknown size {part!r} in configs/{file}.py:{arg}; use one of "
                              f"{sizes}")
        else:
            generator, _, training = part.rpartition("_")
            if generator not in GENERATORS or training not in TRAININGS:
                raise ConfigError(f"unknown config variant {part!r}; use {usage}, e.g. "
                                  f"{[f'{g}_{t}' for g in GENERATORS for t in TRAININGS]}")
            out["generator"], out["training"] = generator, training
    return out


def apply_variant(config: ml_collections.ConfigDict, generator: str, training: str,
                  baseline: str = "no_phase2") -> ml_collections.ConfigDict:
    """Set the generator and the training (``parse_arg``'s values).

    ``gan`` trains phase 1 then phase 2 (the adversary) for the phase lengths the dataset
    config set. ``semi`` is ``gan`` with 1/8 of the labels (``data.labeled``, unless the dataset
    config set it) and the rest of the training images unlabelled in phase 2, after
    AdvSemiSeg's protocol (Hung et al., BMVC 2018): as many unlabelled images per batch as
    labelled ones, adversarial weight lam / 10 on them, self-training (weight 0.1, mask
    threshold 0.2) from a quarter of phase 2 on. ``baseline`` trains G alone: for
    ``no_phase2`` only phase 1
    (``phase2.steps = 0``); for ``phase2_without_adversary`` both phases with ``loss.lam = 0``,
    phase 2 resetting G's optimizer as the GAN run does (the matched control, configs/camvid.py).
    """
    if baseline not in BASELINES:
        raise ConfigError(f"baseline must be one of {BASELINES}; got {baseline!r}")
    config.model.name = generator
    config.variant = f"{generator}_{training}"
    if training == "semi":
        config.data.labeled = config.data.labeled or "0.125"
        config.semi.unlabeled_batch_size = config.batch_size
        config.semi.lam_adv_unlabeled = config.loss.lam / 10
        config.semi.lam_semi = 0.1
        config.semi.mask_threshold = 0.2
        config.semi.start_step = config.phase2.steps // 4
    if training == "baseline":
        if baseline == "no_phase2":
            config.phase2.steps = 0
        else:
            config.loss.lam = 0.0
    return config


def small_networks(config: ml_collections.ConfigDict, width: int, map_features, trunk_features,
                   dropout_rate: float | None = None) -> None:
    """G and A at 1/``width`` of the paper's channels, from random init: BatchNorm with batch
    statistics (running ones start meaningless: frozen unit statistics would not normalise),
    A's map branch and trunk of ``map_features`` and ``trunk_features``. The one block the
    demo, the ``,cpu`` recipe, the tests' tiny runs and the GPU parity check each size."""
    config.model.width = width
    config.model.bn_mode = "train"
    config.adversary.width = width
    config.adversary.map_features = tuple(map_features)
    config.adversary.trunk_features = tuple(trunk_features)
    if dropout_rate is not None:
        config.model.dropout_rate = dropout_rate


def tiny_networks(config: ml_collections.ConfigDict) -> None:
    """The smallest networks that still have every layer (1/32 width, A of 8 features, no
    dropout: every number a deterministic function of state and batch): the tests' runs and
    the GPU parity check."""
    small_networks(config, 32, (8, 8), (8, 8, 8, 8), dropout_rate=0.0)


def apply_cpu_recipe(config: ml_collections.ConfigDict) -> None:
    """The ``,cpu`` size of configs/camvid.py and configs/folder.py: networks at 1/8 width from
    random init (BatchNorm with batch statistics: running ones start meaningless), 128x160
    crops, cross-entropy balanced by the square roots of the median-frequency weights, 8000 +
    1500 iterations: of the three recipe runs (docs/RESULTS.md, the recipe section; one seed
    each) the one with the best validation mIoU."""
    config.data.crop_size = (128, 160)
    config.data.eval_size = (180, 240)
    small_networks(config, 8, (16, 32), (32, 64, 128, 128))
    config.loss.class_balance = "median_frequency"
    config.loss.class_balance_power = 0.5
    config.phase1.steps = 8000
    config.phase1.lr = 2e-3  # from scratch: 20x the paper's fine-tuning rates
    config.phase1.end_lr = 1e-5
    config.phase2.steps = 1500
    config.phase2.lr = 3e-4
    config.phase2.end_lr = 3e-5
    config.phase2.d_lr = 1e-3
    config.phase2.d_end_lr = 1e-3
    config.optim.d_grad_clip_norm = 10.0
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
    config.train.keep_checkpoints = 2


def adversary_stride(adv: ml_collections.ConfigDict) -> int:
    """The stride of the adversary's image branch (METHOD.md section 3): ResNet50's stem and
    stages (4, 4, 8, 16, 32 after stages 1..4), VGG16's pools (2 per block)."""
    depth = adv.image_branch_depth
    return 4 * 2 ** max(depth - 1, 0) if adv.image_branch == "resnet50" else 2 ** depth


def adversary_on(config: ml_collections.ConfigDict) -> bool:
    """A's judgement reaches G (``loss.lam > 0``), so a phase-2 iteration trains A. With
    ``loss.lam == 0`` phase 2 is G alone with phase 2's schedule and optimizer reset (the
    matched baseline of a GAN run)."""
    return config.loss.lam > 0


def adversarial_phase2(config: ml_collections.ConfigDict) -> bool:
    """The run has a phase 2 that trains A."""
    return config.phase2.steps > 0 and adversary_on(config)


def semi_phase2(config: ml_collections.ConfigDict) -> bool:
    """Phase 2 takes unlabelled images: an adversary to learn from and a batch of them."""
    return adversarial_phase2(config) and config.semi.unlabeled_batch_size > 0


def check_devices(config: ml_collections.ConfigDict, training: bool) -> None:
    """Batches split evenly over all devices of the job: ``eval_batch_size`` always, the
    training batches when ``training``. ``main`` checks once the backend is up (after joining
    a multi-process job), for the modes that batch over the devices; the benchmark checks
    for itself (it is also called from Python)."""
    import jax

    devices = jax.device_count()
    for key in ("batch_size", "eval_batch_size") if training else ("eval_batch_size",):
        if config[key] % devices:
            raise ConfigError(f"config.{key}={config[key]} is not divisible by the {devices} "
                              f"devices of this job; set --config.{key} to a multiple of "
                              f"{devices}")
    u = config.semi.unlabeled_batch_size
    if training and adversary_on(config) and u % devices:
        raise ConfigError(f"config.semi.unlabeled_batch_size={u} is not divisible by the "
                          f"{devices} devices of this job; set it to a multiple of {devices}")


# Far above what any optimizer of these networks trains with: a run at such a rate goes on at
# finite loss and learns nothing (lr 1e6 ended at mIoU 0.8%), so it is said at load.
HIGH_LR = {"phase1.lr": 0.1, "phase2.lr": 0.1, "phase2.d_lr": 10.0}


# Loss weights far above any setting tried: at lam = 1e6 the adversarial term swamps the
# cross-entropy (loss_g -7.2e5, ce stopped falling), so they are said at load.
HIGH_WEIGHT = {"loss.lam": 10.0, "semi.lam_adv_unlabeled": 10.0, "semi.lam_semi": 10.0,
               "loss.d_weight": 100.0}


def warnings_of(config: ml_collections.ConfigDict) -> list[str]:
    """Values a run may go on with but probably should not (printed once at load)."""
    out = []
    for table, consequence in (
            (HIGH_WEIGHT, "this term will swamp the cross-entropy, and G may stop learning the "
                          "labels"),
            (HIGH_LR, "training may run at finite loss and learn nothing")):
        for key, limit in table.items():
            part, name = key.split(".")
            if config[part][name] > limit:
                out.append(f"config.{key}={config[part][name]:g} is far above the usual range "
                           f"(at most {limit:g}; the default is "
                           f"{get_config()[part][name]:g}): {consequence}")
    return out


def require(config: ml_collections.ConfigDict, ok: bool, key: str, what: str) -> None:
    """ConfigError ``config.<key> must be <what>; got <its value>`` unless ``ok``."""
    if not ok:
        value = config
        for part in key.split("."):
            value = value[part]
        raise ConfigError(f"config.{key} must be {what}; got {value!r}")


def check(config: ml_collections.ConfigDict) -> None:
    """Raise ConfigError naming the first bad value of ``config`` that needs no component to
    judge, and what it must be. ``ssgan_jax.checks.check`` runs it with the dataset's and the
    networks' own checks once, when a config is loaded."""
    def need(ok: bool, key: str, what: str) -> None:
        require(config, ok, key, what)

    need(config.batch_size > 0, "batch_size", "> 0")
    need(config.eval_batch_size > 0, "eval_batch_size", "> 0")
    need(config.phase1.steps >= 0, "phase1.steps", ">= 0")
    need(config.phase2.steps >= 0, "phase2.steps", ">= 0")
    need(config.phase1.steps + config.phase2.steps > 0, "phase1.steps",
         "> 0 or phase2.steps > 0 (nothing to train)")
    need(config.phase2.d_steps >= 1, "phase2.d_steps", ">= 1")
    need(config.phase2.g_steps >= 1, "phase2.g_steps", ">= 1")
    need(not config.phase2.share_generator_forward or config.phase2.g_steps == 1,
         "phase2.g_steps", "1 when phase2.share_generator_forward is True (a second G update "
         "needs a fresh forward); or set --config.phase2.share_generator_forward=False")
    need(0.0 < config.rescaling.eps < 1.0, "rescaling.eps", "in (0, 1)")
    need(config.loss.lam >= 0, "loss.lam", ">= 0")
    need(config.loss.adv_form in ADV_FORMS, "loss.adv_form", f"one of {ADV_FORMS}")
    need(config.loss.class_balance in CLASS_BALANCES, "loss.class_balance",
         f"one of {CLASS_BALANCES}")
    need(0 <= config.loss.class_balance_power <= 4, "loss.class_balance_power",
         "between 0 and 4 (1 = median frequency, 0.5 = its square root)")
    for key in ("log_every", "eval_every", "checkpoint_every", "keep_checkpoints",
                "health_window"):
        need(config.train[key] >= 1, f"train.{key}", ">= 1")
    need(len(config.data.crop_size) == 2 and min(config.data.crop_size) > 0,
         "data.crop_size", "(height, width) > 0")
    eval_size = config.data.eval_size
    need(eval_size == "auto" or (isinstance(eval_size, (tuple, list)) and len(eval_size) == 2
                                 and all(isinstance(v, int) and v > 0 for v in eval_size)),
         "data.eval_size", "(height, width) > 0, or \"auto\" (the largest image of the "
         "prepared dataset)")
    for key in ("phase1.lr", "phase1.end_lr", "phase2.lr", "phase2.end_lr", "phase2.d_lr",
                "phase2.d_end_lr"):
        part, name = key.split(".")
        need(config[part][name] > 0, key, "> 0 (a learning rate)")
    need(config.data.threads >= 1, "data.threads", ">= 1")
    need(config.data.prefetch >= 1, "data.prefetch", ">= 1")
    need(config.data.workers >= 0, "data.workers", ">= 0 (0 = no worker processes)")
    scales = tuple(config.data.scale_range)
    need(len(scales) == 2 and 0 < scales[0] <= scales[1], "data.scale_range",
         "(low, high) with 0 < low <= high (random scale factors of the training images)")
    need(len(config.data.mean) == 3, "data.mean", "3 values, one per RGB channel, in [0, 1]")
    need(len(config.data.std) == 3 and min(config.data.std) > 0, "data.std",
         "3 values > 0, one per RGB channel (images are divided by them)")
    need(config.train.probe_every >= 0, "train.probe_every", ">= 0 (0 = no adversary probe)")
    need(0 < config.train.confidence_share_warning <= 1, "train.confidence_share_warning",
         "in (0, 1]")
    need(config.train.profile_steps >= 0, "train.profile_steps", ">= 0 (0 = no profile)")
    need(config.train.profile_first_step >= 1, "train.profile_first_step", ">= 1")
    semi = config.semi
    need(semi.unlabeled_batch_size >= 0, "semi.unlabeled_batch_size", ">= 0 (0 = no "
         "unlabelled images)")
    need(semi.lam_adv_unlabeled >= 0, "semi.lam_adv_unlabeled", ">= 0")
    need(semi.lam_semi >= 0, "semi.lam_semi", ">= 0 (0 = no self-training)")
    need(0.0 <= semi.mask_threshold < 1.0, "semi.mask_threshold", "in [0, 1)")
    need(semi.start_step >= 0, "semi.start_step", ">= 0")
    need(not semi_phase2(config) or config.phase2.share_generator_forward,
         "phase2.share_generator_forward", "True for semi-supervised phase 2 (one fused "
         "iteration over labelled and unlabelled images)")
    stride = adversary_stride(config.adversary)
    need(min(config.data.crop_size) >= 4 * stride, "data.crop_size",
         f"at least {4 * stride}x{4 * stride}: the adversary's image branch "
         f"({config.adversary.image_branch}, depth {config.adversary.image_branch_depth}) has "
         f"stride {stride} and Table 2's trunk pools its features twice")
    need(1 <= config.adversary.grid <= max(1, min(config.data.crop_size) // 8),
         "adversary.grid", f"in 1..{max(1, min(config.data.crop_size) // 8)} (at most one "
         "judgement cell per 8x8 pixels of data.crop_size)")
    need(0.0 <= config.predict.overlay_alpha <= 1.0, "predict.overlay_alpha", "in [0, 1]")
    need(config.diagnose.batches >= 1, "diagnose.batches", ">= 1")
    need(config.benchmark.iterations >= 1, "benchmark.iterations", ">= 1")
    need(config.benchmark.warmup >= 0, "benchmark.warmup", ">= 0")
    from ssgan_jax.core import settings  # config.eval's settings check themselves

    settings.from_config(config)
