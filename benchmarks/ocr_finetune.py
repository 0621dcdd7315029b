"""english-ocr: CER on clean DejaVu Sans lines, and before/after fine-tuning on a font it reads worse.

    python benchmarks/ocr_finetune.py                       # defaults below
    python benchmarks/ocr_finetune.py --train 200 --test 50 --epochs 3 --font /path/to/font.ttf
    python benchmarks/ocr_finetune.py --onednn              # only: the BiLSTMs at new widths, oneDNN on vs off

The poor font is Computer Modern Italic (cmti10.ttf, shipped by the matplotlib pip package) unless
--font names another. The vocabulary is split in two: training lines use one half's words, the
held-out lines only the other half's, so a lower CER after fine-tuning is reading, not memorising.
Fine-tuning runs `zoo.finetune(..., strategy=...)` on the rendered folder (the text-lines format) and
`zoo.evaluate` scores the held-out folder before and after.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

VOCABULARY = (
    "river stone light paper green house water market field table window garden morning evening letter number "
    "winter summer yellow silver orange street bridge castle forest animal simple nothing people little "
    "quick brown jumps over lazy dog mother father sister brother school teacher planet rocket engine"
).split()
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def matplotlib_font(name: str = "cmti10.ttf") -> Path:
    """A font file the matplotlib package ships (Computer Modern Italic by default)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name


def split_vocabulary(seed: int = 0) -> tuple[list[str], list[str]]:
    """The words in two disjoint halves: training words, held-out words."""
    words = sorted(VOCABULARY)
    random.Random(seed).shuffle(words)
    return words[: len(words) // 2], words[len(words) // 2 :]


def cer(model: str, folder: Path) -> dict:
    import zoo

    report = zoo.evaluate(model, folder, batch_size=8)
    return {k: round(v, 4) for k, v in report.metrics.items()}


def onednn_lstm_seconds(widths: list[int]) -> dict:
    """Median seconds of english-ocr's BiLSTMs on one line at each new width, oneDNN on vs off (the
    model turns it off around them: zoo_ocr.model.onednn_off; here it is set by hand around `sequence`)."""
    import torch

    import zoo

    model = zoo.load("english-ocr").eval()
    figures = {}
    for enabled, offset in ((True, 0), (False, 1)):  # other widths for each setting: every shape is new
        times = []
        for width in widths:
            with torch.inference_mode():
                columns = model.features(torch.randn(1, 1, 64, width + offset)).mean(dim=2).permute(0, 2, 1)
                torch.backends.mkldnn.enabled = enabled
                started = time.perf_counter()
                model.sequence(columns)
                times.append(time.perf_counter() - started)
                torch.backends.mkldnn.enabled = True
        figures["on" if enabled else "off"] = round(sorted(times)[len(times) // 2], 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clean", type=int, default=100, help="clean DejaVu Sans lines scored (0: skip)")
    parser.add_argument("--train", type=int, default=120, help="training lines in the poor font")
    parser.add_argument("--test", type=int, default=40, help="held-out lines in the poor font, of the other words")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--size", type=int, default=32, help="font size in pixels (the line is scaled to 64)")
    parser.add_argument("--strategy", default="full", help="head, last-n:K or full")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--font", type=Path, default=None)
    parser.add_argument("--onednn", action="store_true", help="only time the BiLSTMs with oneDNN on vs off")
    args = parser.parse_args()
    if args.onednn:
        print(json.dumps({"bilstm_seconds_new_width": onednn_lstm_seconds([300 + 14 * i for i in range(6)])}))
        return

    import zoo
    from zoo_ocr.render import random_lines, write_lines

    font = args.font or matplotlib_font()
    train_words, test_words = split_vocabulary()
    figures: dict = {"font": str(font), "size": args.size}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.clean:
            clean = write_lines(root / "clean", random_lines(VOCABULARY, args.clean, seed=1), DEJAVU, 32)
            figures["clean_dejavu"] = cer("english-ocr", clean)
        train = write_lines(root / "train", random_lines(train_words, args.train, seed=2), font, args.size)
        test = write_lines(root / "test", random_lines(test_words, args.test, seed=3), font, args.size)
        figures["before"] = cer("english-ocr", test)
        started = time.perf_counter()
        result = zoo.finetune(
            "english-ocr", train, output=str(root / "tuned"), epochs=args.epochs, strategy=args.strategy, lr=args.lr,
            batch_size=8, val_split=0.1,
        )
        figures["finetune_seconds"] = round(time.perf_counter() - started, 1)
        figures["after"] = cer(str(result.output), test)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
