"""The classic CNNs written in the project: LeNet-5 and the small VGG."""
from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

import zoo
from zoo.heads import freeze_groups


def test_lenet5_is_the_classic_network():
    model = zoo.load("lenet5")
    assert [type(m).__name__ for m in model.conv1] == ["Conv2d", "Tanh", "AvgPool2d"]
    assert model.conv2[0].out_channels == 16 and model.fc1[1].out_features == 120 and model.fc2[0].out_features == 84
    assert sum(p.numel() for p in model.parameters()) == 61706  # LeCun et al.'s count for C1..F6 plus a 10-way head
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert [name for name, _ in freeze_groups(model)] == ["conv1", "conv2", "fc1", "fc2", "head"]


def test_lenet5_takes_other_sizes_channels_and_relu():
    model = zoo.load("lenet5", in_chans=3, img_size=28, activation="relu", num_classes=4)
    assert isinstance(model.conv1[1], torch.nn.ReLU)
    assert model(torch.randn(1, 3, 28, 28)).shape == (1, 4)


def test_vgg_mini_stacks_conv_relu_pool_stages():
    model = zoo.load("vgg-mini", widths=(8, 16), convs_per_stage=2, batch_norm=True, dropout=0.2)
    kinds = [type(m).__name__ for m in model.stages[0]]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 16)
    assert [name for name, _ in freeze_groups(model)] == ["stages.0", "stages.1", "head"]


def test_vgg_mini_learns_digits():
    digits = load_digits()
    x = torch.tensor(digits.images[:500] / 16.0, dtype=torch.float32)[:, None]  # 8×8: two pools -> 2×2
    y = torch.tensor(digits.target[:500])
    torch.manual_seed(0)
    model = zoo.load("vgg-mini", in_chans=1, widths=(16, 32), convs_per_stage=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert (model.eval()(x).argmax(1) == y).float().mean() > 0.9


def test_bad_cnn_arguments_are_refused_with_the_remedy():
    with pytest.raises(zoo.ArgumentError, match=r"lenet5: activation='gelu' is not allowed \(use one of: tanh, relu\)"):
        zoo.load("lenet5", activation="gelu")
    with pytest.raises(zoo.ArgumentError, match="LeNet-5 needs img_size >= 16, got 12"):
        zoo.load("lenet5", img_size=12)
    with pytest.raises(zoo.ArgumentError, match=r"widths must be positive"):
        zoo.load("vgg-mini", widths=())
    with pytest.raises(zoo.ArgumentError, match=r"dropout must be in \[0, 1\)"):
        zoo.load("vgg-mini", dropout=2.0)


def test_lenet5_names_its_fixed_input_size_when_given_another():
    model = zoo.load("lenet5")
    with pytest.raises(zoo.ArgumentError, match=r"takes 32×32 images, got 64×64 \(resize the images to 32 px, or build it with img_size=64\)"):
        model(torch.zeros(1, 1, 64, 64))
    assert zoo.load("lenet5", img_size=64)(torch.zeros(1, 1, 64, 64)).shape == (1, 10)
