"""Images/s of `zoo predict FOLDER --output preds.csv` against the loops people write, on the same files.

    HF_HUB_OFFLINE=1 python benchmarks/predict_throughput.py [--turns 5] [--batch-size 32] [--rounds 5] [--loop-images N]

Writes scikit-image's 200 LFW faces / non-faces (25×25 PNG) in `--turns` orientations (as they are,
then PIL's transpositions: mirrored, upside down, turned 90°, 180°, 270°, transposed, transversed;
5 gives 1,000 files) into a temporary folder, then times, in this process, on tf_efficientnet_lite0.in1k (weights
from the pip package, as `zoo.load` gets them offline):

  (a) zoo: `zoo.predict.files.predict_files(model, files, "preds.csv")`, the library function
      behind `zoo predict --output`, with the CLI's defaults (--runtime auto, --workers) and the
      given batch size, its ONNX export cached by the first run (a0);
  (b) a plain loop, one image at a time: PIL open, the model's transform, `model(x[None])`;
  (c) timm's own preprocessing (`create_transform(**resolve_data_config({}, model=model))`) and a
      batched forward loop over a `DataLoader` of the same batch size and workers, on timm's model.

First, in an empty ZOO_HOME, (a0): zoo's first run over all the files, which (auto) times eager,
exports the model to ONNX and checks it, and leaves the export cached for the runs after it.
Each path then runs once untimed on 2 batches. The files are then cut into `--rounds` equal parts,
and each part goes through (a) and (c), in alternating order, then (b) (on `--loop-images` files
in all, spread over the parts, when given: its rate does not change along the way), so that a
shared machine's load falls on all three alike. The table gives images/s over all parts, zoo's
ratio to each loop and the share of files whose top-1 class agrees with zoo's; targets: (a) ≥ 3×
(b), (a) ≥ (c). Last, the largest difference between zoo's probabilities (top-5, ONNX Runtime) and
eager PyTorch's on the first 64 files.
"""
from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

ARCH = "tf_efficientnet_lite0"
WEIGHTS = f"{ARCH}.in1k"


def write_images(root: Path, turns: int) -> list[Path]:
    """The LFW faces in `turns` orientations, as PNG files under root/faces; their paths in order."""
    from PIL import Image

    from zoo.data.packaged import write_dataset

    write_dataset("lfw-faces", root / "lfw")
    orientations = [None, *list(Image.Transpose)[:7]]
    folder = root / "faces"
    for source in sorted((root / "lfw").rglob("*.png")):
        (folder / source.parent.name).mkdir(parents=True, exist_ok=True)
        with Image.open(source) as image:
            for k, turn in enumerate(orientations[:turns]):
                (image if turn is None else image.transpose(turn)).save(folder / source.parent.name / f"{source.stem}-{k}.png")
    return sorted(folder.rglob("*.png"), key=lambda p: p.relative_to(folder).parts)


def zoo_path(model, paths: list[Path], out: Path, batch_size: int, workers: int, runtime: str = "auto") -> list[int]:
    """(a): the library function behind `zoo predict --output`; the top-1 class index of each file."""
    from zoo.predict.files import predict_files

    zoo_path.summary = predict_files(model, paths, out, top_k=1, batch_size=batch_size, workers=workers, overwrite=True, runtime=runtime)
    index = {label: i for i, label in enumerate(model.zoo.labels)}
    with out.open(newline="") as stream:
        return [index[row["label_1"]] for row in csv.DictReader(stream)]


def largest_difference(model, paths: list[Path], root: Path, workers: int) -> float:
    """The largest difference of zoo's top-5 probabilities (auto: ONNX Runtime) from eager's."""
    from zoo.predict.files import predict_files

    tops = {}
    for runtime in ("auto", "eager"):
        predict_files(model, paths, root / f"{runtime}.csv", top_k=5, workers=workers, overwrite=True, runtime=runtime)
        with (root / f"{runtime}.csv").open(newline="") as stream:
            tops[runtime] = [(row[f"label_{k}"], float(row[f"prob_{k}"])) for row in csv.DictReader(stream) for k in range(1, 6)]
    assert [label for label, _ in tops["auto"]] == [label for label, _ in tops["eager"]], "top-5 labels differ"
    return max(abs(a[1] - e[1]) for a, e in zip(tops["auto"], tops["eager"]))


def plain_loop(model, paths: list[Path]) -> list[int]:
    """(b): one image at a time through the model's own transform."""
    import torch
    from PIL import Image

    from zoo.data.image_files import image_transform

    transform = image_transform(model.zoo.preprocess)
    model.eval()
    top = []
    with torch.no_grad():
        for path in paths:
            x = transform(Image.open(path).convert("RGB"))
            top.append(int(model(x[None]).argmax(-1)))
    return top


def timm_loop(model, paths: list[Path], batch_size: int, workers: int) -> list[int]:
    """(c): timm's transform, a DataLoader of `batch_size`, a batched forward loop."""
    import torch
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    transform = create_transform(**resolve_data_config({}, model=model))

    class Files(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> torch.Tensor:
            return transform(Image.open(paths[i]).convert("RGB"))

    top = []
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(Files(), batch_size=batch_size, num_workers=workers):
            top += model(batch).argmax(-1).tolist()
    return top


def timed(run) -> tuple[float, list[int]]:
    started = time.perf_counter()
    top = run()
    return time.perf_counter() - started, top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=5, help="orientations of each face, 200 files each (1..8)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="parts the files are cut into, each run by all three paths")
    parser.add_argument("--loop-images", type=int, default=None, help="time the one-at-a-time loop on this many files")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import timm
    import torch

    import zoo
    from zoo.cache import records
    from zoo.predict.files import default_workers

    workers = default_workers()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = write_images(root, args.turns)
        model = zoo.load(WEIGHTS)
        weights = next(r.path for r in records() if r.model == WEIGHTS)
        timm_model = timm.create_model(ARCH, pretrained=True, pretrained_cfg_overlay={"file": weights}).eval()
        os.environ["ZOO_HOME"] = str(root / "zoo-home")  # after the weights' lookup: an empty cache for (a0)
        first_seconds, first_top = timed(lambda: zoo_path(model, paths, root / "first.csv", args.batch_size, workers))
        first = zoo_path.summary.runtime
        zoo_path(model, paths[: 2 * args.batch_size], root / "warm.csv", args.batch_size, workers)
        plain_loop(model, paths[:4])
        timm_loop(timm_model, paths[: 2 * args.batch_size], args.batch_size, workers)

        loop_share = -(-(args.loop_images or len(paths)) // args.rounds)  # files per part for (b)
        runs = {
            "a": lambda part: zoo_path(model, part, root / "preds.csv", args.batch_size, workers),
            "b": lambda part: plain_loop(model, part[:loop_share]),
            "c": lambda part: timm_loop(timm_model, part, args.batch_size, workers),
        }
        seconds, tops, zoo_tops_b = {"a": 0.0, "b": 0.0, "c": 0.0}, {"a": [], "b": [], "c": []}, []
        for r in range(args.rounds):
            part = paths[r * len(paths) // args.rounds : (r + 1) * len(paths) // args.rounds]
            for key in ("a", "c", "b") if r % 2 == 0 else ("c", "a", "b"):
                took, top = timed(lambda: runs[key](part))
                seconds[key] += took
                tops[key] += top
            zoo_tops_b += tops["a"][len(tops["a"]) - len(part) :][:loop_share]  # zoo's answers for (b)'s files
        warm = zoo_path.summary.runtime
        difference = largest_difference(model, paths[:64], root, workers)

    rate = {key: len(tops[key]) / seconds[key] for key in seconds}
    agree = {"b": (zoo_tops_b, tops["b"]), "c": (tops["a"], tops["c"])}
    agreed = {key: sum(x == y for x, y in zip(*pair)) / len(pair[1]) for key, pair in agree.items()}
    print(f"{len(paths)} files in {args.rounds} parts, lite0, batch {args.batch_size}, workers {workers}, "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs; one-at-a-time loop on {len(tops['b'])} files")
    print("| path | images/s | zoo ÷ path | top-1 agrees with zoo |")
    print("|---|---|---|---|")
    print(f"| (a) zoo predict --output | {rate['a']:.1f} | 1.00× | 100 % |")
    print(f"| (b) one image at a time | {rate['b']:.1f} | {rate['a'] / rate['b']:.2f}× | {agreed['b']:.1%} |")
    print(f"| (c) timm transform + DataLoader | {rate['c']:.1f} | {rate['a'] / rate['c']:.2f}× | {agreed['c']:.1%} |")
    met = lambda ok: "met" if ok else "MISSED"  # noqa: E731
    print(f"targets: (a) ≥ 3× (b): {met(rate['a'] >= 3 * rate['b'])}; (a) ≥ (c): {met(rate['a'] >= rate['c'])}")
    first_rate = len(paths) / first_seconds
    print(f"(a0) zoo's first run, export included, all {len(paths)} files at once: {first_rate:.1f} images/s, "
          f"{first_rate / rate['b']:.2f}× (b), {first_rate / rate['c']:.2f}× (c); top-1 agrees with (a) on "
          f"{sum(x == y for x, y in zip(first_top, tops['a'])) / len(paths):.1%}")
    print(f"(a0) ran {first['runtime']} ({first['reason']}; export {first['export']}, {first['export_seconds']} s); "
          f"(a) ran {warm['runtime']} ({warm['reason']}) with {warm['threads']} ONNX Runtime thread(s) × {warm['lanes']} lane(s); "
          f"largest |probability - eager's| over 64 files' top-5: {difference:.2g}")

if __name__ == "__main__":
    main()
