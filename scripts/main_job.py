"""README's main job: train zoo's MLP on scikit-learn's handwritten digits and print the test accuracy."""
from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import zoo


def main() -> None:
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    model = zoo.load("mlp", in_features=64, hidden=(128, 64), num_classes=10, activation="relu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for epoch in range(30):
        model.train()
        for idx in torch.randperm(len(x_train)).split(64):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(f"mlp on digits: test accuracy {accuracy:.3f} ({len(y_test)} held-out images)")


if __name__ == "__main__":
    main()
