"""Shared defaults of every ssgan-jax experiment; configs/<dataset>.py import and modify them.

Each number that changes results sits here with the PAPER.md section it comes from.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.batch_size = 2  # global batch per step (PAPER.md section 6)
    config.eval_batch_size = 2

    # Data (PAPER.md section 7); dataset configs set name, sizes and paths.
    config.data = ml_collections.ConfigDict()
    config.data.name = "camvid"  # "camvid", "voc2012_aug" or "cityscapes"
    config.data.manual_dir = ""  # folder with the downloaded archives/folders
    config.data.data_dir = ""  # where TFDS writes the prepared dataset ("" = TFDS default)
    config.data.train_split = "train"
    config.data.val_split = "val"
    config.data.crop_size = (500, 500)  # training crop (PAPER.md section 6: 500x500)
    config.data.eval_size = (512, 512)  # eval images are padded to this (bottom/right)
    config.data.scale_range = (0.5, 2.0)  # random scale augmentation
    config.data.flip = True
    config.data.shuffle_buffer = 1024
    # Input normalisation (RGB in [0, 1]): torchvision's ImageNet statistics, which its
    # ResNet50 and VGG16 weights expect.
    config.data.mean = (0.485, 0.456, 0.406)
    config.data.std = (0.229, 0.224, 0.225)

    # Generator G (PAPER.md section 2).
    config.model = ml_collections.ConfigDict()
    config.model.name = "deeplabv3_resnet50"  # or "fcn8s_vgg16"
    config.model.width = 1  # channel divisor; 1 = the paper's (torchvision's) networks
    config.model.output_stride = 8  # DeepLabv3: atrous stages 3-4 (PAPER.md section 2)
    config.model.dropout_rate = 0.5  # ASPP projection / FCN fc6-fc7 (torchvision, FCN)
    # "train": batch statistics averaged over all devices; "frozen": running statistics,
    # no update (PAPER.md section 6 trains with batch 2, where batch statistics are noisy).
    config.model.bn_mode = "frozen"
    config.model.dtype = "float32"  # compute dtype: "float32" or "bfloat16"

    # Adversary A (PAPER.md section 3, Table 2).
    config.adversary = ml_collections.ConfigDict()
    config.adversary.image_branch = "resnet50"  # first layers of "resnet50" or "vgg16"
    config.adversary.image_branch_depth = 1  # ResNet stages after the stem / VGG blocks
    config.adversary.width = 1
    config.adversary.map_features = (64, 128)  # shallow map branch (PAPER.md section 3)
    config.adversary.trunk_features = (64, 128, 256, 512)  # Table 2 rows 0, 1, 3, 5
    config.adversary.grid = 4  # 4x4 judgement cells (PAPER.md section 3)
    config.adversary.activation = "leaky_relu"  # the paper does not say; or "relu"

    # epsilon-rescaling of real maps (PAPER.md section 4).
    config.rescaling = ml_collections.ConfigDict()
    config.rescaling.eps = 0.9

    # Losses (PAPER.md section 5).
    config.loss = ml_collections.ConfigDict()
    config.loss.ignore_label = 255
    config.loss.adv_form = "minimax"  # paper's; or "non_saturating" (Luc et al.)
    config.loss.lam = 0.01  # weight of G's adversarial term
    config.loss.d_weight = 1.0  # weight of loss_d (Eq. 7's lam; unweighted by default)
    return config
