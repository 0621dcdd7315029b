"""The perceptron and MLP families, and a smoke test of the head protocol over every architecture."""
from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits, load_iris

import zoo
from zoo.build import build_model, count_params, example_input
from zoo.heads import ACTIVATIONS, HeadProtocol, freeze_groups

ALL_ARCHS = zoo.list_models(pretrained=False)


def test_perceptron_rule_converges_on_linearly_separable_iris():
    iris = load_iris()
    keep = iris.target < 2  # setosa vs versicolor: linearly separable
    x, y = iris.data[keep], iris.target[keep]
    model = zoo.load("perceptron", in_features=4)
    result = model.fit(x, y, max_epochs=50)
    assert result.converged and result.errors == 0 and result.epochs < 50
    assert (model.predict(x).numpy() == y).all()


def test_perceptron_reports_non_convergence_on_xor():
    from zoo_perceptron.model import ConvergenceWarning

    x = [[0, 0], [0, 1], [1, 0], [1, 1]]
    y = [0, 1, 1, 0]
    model = zoo.load("perceptron")
    with pytest.warns(ConvergenceWarning, match=r"did not converge after 25 epochs: \d training examples still misclassified"):
        result = model.fit(x, y, max_epochs=25)
    assert not result.converged and result.epochs == 25 and 1 <= result.errors <= 4


def test_logistic_perceptron_learns_by_gradient_descent():
    iris = load_iris()
    keep = iris.target > 0  # versicolor vs virginica: not separable, but mostly right
    x = torch.tensor(iris.data[keep], dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    y = iris.target[keep] - 1
    model = zoo.load("perceptron-logistic", in_features=4)
    result = model.fit(x, y, max_epochs=300, lr=0.5)
    assert result.loss < 0.2 and result.errors <= 6


def test_perceptron_rejects_bad_training_data():
    model = zoo.load("perceptron")
    with pytest.raises(zoo.DataError, match="x has 2 rows and y has 1"):
        model.fit([[0, 0], [1, 1]], [0])
    with pytest.raises(zoo.DataError, match=r"labels must lie in 0..1, got 0..2"):
        model.fit([[0, 0], [1, 1]], [0, 2])


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_mlp_activation_learns_digits(activation):
    digits = load_digits()
    x = torch.tensor(digits.data[:600] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target[:600])
    torch.manual_seed(0)
    model = zoo.load("mlp", hidden=(32,), activation=activation)
    assert isinstance(model.blocks[0][1], ACTIVATIONS[activation])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert (model(x).argmax(1) == y).float().mean() > 0.85


def test_mlp_options_dropout_and_batch_norm():
    model = zoo.load("mlp", hidden=(16, 8), dropout=0.3, batch_norm=True)
    kinds = [type(m).__name__ for m in model.blocks[0]]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout"]
    assert model.blocks[0][0].bias is None  # batch norm's shift replaces the bias
    assert [name for name, _ in freeze_groups(model)] == ["blocks.0", "blocks.1", "head"]


def test_bad_architecture_arguments_are_named():
    with pytest.raises(zoo.ArgumentError, match=r"mlp: activation='swish' is not allowed \(use one of: sigmoid"):
        zoo.load("mlp", activation="swish")
    with pytest.raises(zoo.ArgumentError, match=r"mlp takes no argument 'widths' \(valid arguments: in_features, hidden"):
        zoo.load("mlp", widths=(3,))
    with pytest.raises(zoo.ArgumentError, match=r"dropout must be in \[0, 1\)"):
        zoo.load("mlp", dropout=1.5)


@pytest.mark.parametrize("name", ALL_ARCHS)
def test_every_architecture_follows_the_head_protocol(name):
    """Build, forward, split into features + head, replace the head, and freeze groups cover every parameter."""
    arch = zoo.get_registry().archs[name]
    torch.manual_seed(0)
    model = build_model(arch).eval()
    assert isinstance(model, HeadProtocol)
    x = example_input(arch, batch=2)
    with torch.no_grad():
        out = model(x)
        assert out.shape[0] == 2 and torch.isfinite(out).all()
        assert torch.allclose(model.forward_head(model.forward_features(x)), out)
        model.reset_classifier(3)
        assert model(x).shape[-1] == 3
        model.reset_classifier(0)  # features only
        # timm's MobileNetV3 and VGG put a pre-logits layer in the head: that is the feature width then
        assert model(x).shape[-1] == (getattr(model, "head_hidden_size", None) or model.num_features)
    groups = freeze_groups(model)
    grouped = [id(p) for _, params in groups for p in params]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters()), "each parameter in exactly one group"
    assert model.zoo.arch == name


@pytest.mark.parametrize("name", ALL_ARCHS)
def test_declared_parameter_counts_match_a_meta_build(name):
    arch = zoo.get_registry().archs[name]
    if arch.num_params is None:
        pytest.skip(f"{name} declares no parameter count")
    assert count_params(arch) == arch.num_params


@pytest.mark.parametrize("value", [-1, 2.5, True, "3"])
def test_a_bad_num_classes_is_an_argument_error_for_every_family(value):
    for name in ("perceptron", "mlp", "lenet5", "lstm"):
        with pytest.raises(zoo.ArgumentError, match=f"num_classes must be a non-negative integer, got {value!r}"):
            zoo.load(name, num_classes=value, pretrained=False)
