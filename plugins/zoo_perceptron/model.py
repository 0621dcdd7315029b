"""The perceptron: one linear layer, trained by Rosenblatt's rule (step) or by gradient descent (sigmoid)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from zoo.errors import ArgumentError, DataError
from zoo.heads import ZooModel

ACTIVATIONS = ("step", "sigmoid")


class ConvergenceWarning(UserWarning):
    """The perceptron rule did not separate the training data within max_epochs."""


@dataclass(frozen=True)
class FitResult:
    """How `fit` ended: whether every training example is classified right, and after how long."""

    converged: bool
    epochs: int
    errors: int
    loss: float | None = None

    def __str__(self) -> str:
        if self.converged:
            return f"converged after {self.epochs} epochs"
        return f"did not converge after {self.epochs} epochs: {self.errors} training examples still misclassified"


class Perceptron(ZooModel):
    """y = act(W x + b). `forward` returns the scores W x + b, one per class."""

    group_names = ("head",)

    def __init__(self, in_features: int = 2, num_classes: int = 2, activation: str = "step"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ArgumentError(f"unknown perceptron activation {activation!r}", f"use one of: {', '.join(ACTIVATIONS)}")
        if num_classes < 2:
            raise ArgumentError(f"a perceptron needs num_classes >= 2, got {num_classes}")
        self.in_features = in_features
        self.num_features = in_features
        self.num_classes = num_classes
        self.activation = activation
        self.head = self.make_head(num_classes)

    def make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.in_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class indices: the step of the score (argmax over classes)."""
        return self(torch.as_tensor(x, dtype=torch.float32)).argmax(dim=1)

    def fit(self, x, y, *, max_epochs: int = 100, lr: float = 1.0, seed: int = 0) -> FitResult:
        """Train on (x, y): the perceptron rule for `step`, gradient descent on cross-entropy for `sigmoid`."""
        x = torch.as_tensor(x, dtype=torch.float32).flatten(1)
        y = torch.as_tensor(y, dtype=torch.long)
        if x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise DataError(f"x has {x.shape[0]} rows and y has {y.shape[0]}: they must match and not be empty")
        if x.shape[1] != self.in_features:
            name = "perceptron" if self.activation == "step" else "perceptron-logistic"
            raise DataError(
                f"x has {x.shape[1]} features per row, but this perceptron was built for {self.in_features}",
                f"build it for your data: zoo.load({name!r}, in_features={x.shape[1]})",
            )
        if int(y.min()) < 0 or int(y.max()) >= self.num_classes:
            raise DataError(f"labels must lie in 0..{self.num_classes - 1}, got {int(y.min())}..{int(y.max())}")
        fit = self._fit_rule if self.activation == "step" else self._fit_gradient
        result = fit(x, y, max_epochs=max_epochs, lr=lr, generator=torch.Generator().manual_seed(seed))
        if self.activation == "step" and not result.converged:
            warnings.warn(f"perceptron {result}", ConvergenceWarning, stacklevel=2)
        return result

    @torch.no_grad()
    def _fit_rule(self, x, y, *, max_epochs, lr, generator) -> FitResult:
        # The multi-class perceptron rule; with two classes it is Rosenblatt's rule on w = w1 - w0.
        weight, bias = self.head.weight, self.head.bias
        for epoch in range(1, max_epochs + 1):
            for i in torch.randperm(len(x), generator=generator).tolist():
                pred = int((weight @ x[i] + bias).argmax())
                if pred != int(y[i]):
                    weight[y[i]] += lr * x[i]
                    bias[y[i]] += lr
                    weight[pred] -= lr * x[i]
                    bias[pred] -= lr
            errors = int((self.predict(x) != y).sum())
            if errors == 0:
                return FitResult(True, epoch, 0)
        return FitResult(False, max_epochs, errors)

    def _fit_gradient(self, x, y, *, max_epochs, lr, generator) -> FitResult:
        optimizer = torch.optim.SGD(self.parameters(), lr=lr)
        for _ in range(max_epochs):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(self(x), y)
            loss.backward()
            optimizer.step()
        errors = int((self.predict(x) != y).sum())
        return FitResult(errors == 0, max_epochs, errors, float(loss.detach()))


def perceptron(*, in_features: int = 2, num_classes: int = 2) -> Perceptron:
    """The classic perceptron: step activation, trained by the perceptron rule."""
    return Perceptron(in_features, num_classes, activation="step")


def logistic(*, in_features: int = 2, num_classes: int = 2) -> Perceptron:
    """The logistic variant: a sigmoid (softmax) output trained by gradient descent."""
    return Perceptron(in_features, num_classes, activation="sigmoid")
