"""`zoo push DIR org/repo` and `zoo.push`: the upload goes through huggingface_hub's real client to a
local upload server (tests/hub_upload_server.py) that commits into the git repositories olah serves,
so every download half is the real olah round trip."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import zoo
from finetune_data import real_digits
from hub_upload_server import UploadServer
from zoo.cli import cli
from zoo.modeldir import save_model_dir

WRITE, READ = "hf_zoo_tests_write", "hf_zoo_tests_read"


@pytest.fixture
def upload(hub, monkeypatch):
    """The upload server, writing into the local hub's repositories; HF_TOKEN is a token it lets write.
    HF_ENDPOINT stays olah's: a push names the upload server (`push_cli`)."""
    server = UploadServer(hub, tokens={WRITE: "write", READ: "read"})
    server.start()
    monkeypatch.setenv("HF_TOKEN", WRITE)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """mlp.digits fine-tuned on 20 real digits per class: a model directory with base weights and metrics."""
    digits = real_digits(tmp_path_factory, per_class=20)
    out = tmp_path_factory.mktemp("digits-model") / "mlp-digits"
    zoo.finetune("mlp.digits", digits, output=str(out), epochs=2)
    return out


@pytest.fixture
def other_model(tmp_path):
    """A different model of the same architecture, built and saved here."""
    torch.manual_seed(7)
    model = zoo.load("mlp", pretrained=False, hidden=(64,))
    model.zoo.labels = [str(d) for d in range(10)]
    return save_model_dir(model, tmp_path / "other", metrics={"val_accuracy": 0.25})


def copy_model(source, folder, names=("config.json", "model.safetensors", "README.md")):
    """A copy of some files of a model directory, to damage."""
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes((source / name).read_bytes())
    return folder


def edit_config(folder, change) -> None:
    """Apply `change` to the zoo fields of config.json (under "zoo" in format 2, the top level in 1)."""
    raw = json.loads((folder / "config.json").read_text())
    change(raw.get("zoo", raw))
    (folder / "config.json").write_text(json.dumps(raw))


def push_cli(server: UploadServer, *args: str, env: dict | None = None):
    """`zoo push ...` in this process, with HF_ENDPOINT at the upload server."""
    return CliRunner().invoke(cli, ["push", *args], env={"HF_ENDPOINT": server.endpoint, **(env or {})})


def same_outputs(a: str, b: str) -> bool:
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(zoo.load(a).eval()(x), zoo.load(b).eval()(x))


def tree(server: UploadServer, repo: str, rev: str = "main") -> set[str]:
    folder = server.hub.repo_dir(repo)
    out = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev], cwd=folder, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_push_then_load_from_the_hub_gives_the_outputs_of_the_directory(upload, digits_model, tmp_path):
    repo = f"zoo-push/{tmp_path.name}"
    result = push_cli(upload, str(digits_model), repo)
    assert result.exit_code == 0, result.output
    commit = upload.commits[-1]
    assert result.stdout == f"{upload.endpoint}/{repo}/commit/{commit.sha}\n"
    assert f"pushed {digits_model} to {upload.endpoint}/{repo}" in result.stderr
    assert same_outputs(f"hf://{repo}", str(digits_model))
    assert same_outputs(f"hf://{repo}@{commit.sha}", str(digits_model))
    assert zoo.load(f"hf://{repo}").zoo.labels == [str(d) for d in range(10)]


def test_the_commit_message_names_the_base_model_and_the_metrics(upload, digits_model, tmp_path):
    repo = f"zoo-push/{tmp_path.name}"
    assert push_cli(upload, str(digits_model), repo).exit_code == 0
    config = zoo.modeldir.read_config(digits_model)
    summary = upload.commits[-1].summary
    assert summary.startswith("zoo: mlp fine-tuned from mlp.digits (")
    assert f"val_accuracy {config['metrics']['val_accuracy']:.4g}" in summary
    assert f"val_loss {config['metrics']['val_loss']:.4g}" in summary
    log = subprocess.run(["git", "log", "-1", "--format=%s"], cwd=upload.hub.repo_dir(repo), capture_output=True, text=True)
    assert log.stdout.strip() == summary  # the commit olah serves


def test_a_message_given_is_the_commit_message(upload, digits_model, tmp_path):
    repo = f"zoo-push/{tmp_path.name}"
    assert push_cli(upload, str(digits_model), repo, "-m", "second try, lr 3e-3").exit_code == 0
    assert upload.commits[-1].summary == "second try, lr 3e-3"


def test_a_revision_lands_on_its_branch_and_loads_from_it(upload, digits_model, other_model, tmp_path):
    repo = f"zoo-push/{tmp_path.name}"
    assert push_cli(upload, str(digits_model), repo).exit_code == 0
    result = push_cli(upload, str(other_model), repo, "--revision", "experiment-2")
    assert result.exit_code == 0, result.output
    assert f"{repo}/tree/experiment-2" in result.stderr
    assert upload.commits[-1].revision == "experiment-2"
    assert same_outputs(f"hf://{repo}@experiment-2", str(other_model))
    assert same_outputs(f"hf://{repo}", str(digits_model))  # main is untouched
    assert not same_outputs(f"hf://{repo}@experiment-2", f"hf://{repo}")
    again = push_cli(upload, str(digits_model), repo, "--revision", "experiment-2")  # the branch exists now
    assert again.exit_code == 0, again.output
    assert same_outputs(f"hf://{repo}@experiment-2", str(digits_model))


def test_private_reaches_the_hub_and_a_second_push_keeps_the_repository(upload, digits_model, other_model, tmp_path):
    repo = f"zoo-push/{tmp_path.name}"
    assert push_cli(upload, str(digits_model), repo, "--private").exit_code == 0
    assert upload.created[repo]["visibility"] == "private"
    assert push_cli(upload, str(other_model), repo).exit_code == 0
    assert [c.revision for c in upload.commits] == ["main", "main"]
    assert same_outputs(f"hf://{repo}", str(other_model))


def test_pushing_an_unchanged_directory_again_makes_no_commit_and_prints_the_current_one(upload, digits_model, tmp_path):
    repo = f"zoo-push/{tmp_path.name}"
    first = push_cli(upload, str(digits_model), repo)
    again = push_cli(upload, str(digits_model), repo)
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout == f"{upload.endpoint}/{repo}/commit/{upload.commits[-1].sha}\n"
    assert len(upload.commits) == 1


@pytest.mark.slow
def test_a_text_model_is_pushed_with_its_vocabulary_and_generates_the_same_from_the_hub(upload, tmp_path, monkeypatch):
    folder = save_model_dir(zoo.load("lstm-text"), tmp_path / "lm")
    repo = f"zoo-push/{tmp_path.name}"
    monkeypatch.setenv("HF_ENDPOINT", upload.endpoint)
    zoo.push(folder, repo)
    monkeypatch.setenv("HF_ENDPOINT", upload.hub.endpoint)
    assert upload.commits[-1].files == ["README.md", "config.json", "model.safetensors", "vocab.json"]
    pulled, local = zoo.load(f"hf://{repo}"), zoo.load(str(folder))
    assert pulled.tokenizer.tokens == local.tokenizer.tokens
    assert pulled.generate("To be, or not", max_new_tokens=30, seed=1) == local.generate("To be, or not", max_new_tokens=30, seed=1)


def test_zoo_push_in_python_returns_the_commit_url(upload, digits_model, tmp_path, monkeypatch):
    repo = f"zoo-push/{tmp_path.name}"
    monkeypatch.setenv("HF_ENDPOINT", upload.endpoint)
    url = zoo.push(digits_model, repo, commit_message="from python")
    assert url == f"{upload.endpoint}/{repo}/commit/{upload.commits[-1].sha}"
    assert upload.commits[-1].summary == "from python"


def test_only_the_files_config_json_lists_and_the_card_are_uploaded(upload, digits_model, tmp_path):
    folder = copy_model(digits_model, tmp_path / "model", names=("config.json", "model.safetensors", "README.md", "confusion_matrix.png"))
    (folder / ".DS_Store").write_bytes(b"\0\1junk")
    (folder / "checkpoint.pt").write_bytes(b"not for the hub")
    (folder / ".model.safetensors.lock").write_text("")
    (folder / "runs").mkdir()
    (folder / "runs" / "events.log").write_text("step 1")
    repo = f"zoo-push/{tmp_path.name}"
    result = push_cli(upload, str(folder), repo)
    assert result.exit_code == 0, result.output
    assert upload.commits[-1].files == ["README.md", "config.json", "model.safetensors"]
    assert tree(upload, repo) == {".gitattributes", "README.md", "config.json", "model.safetensors"}


def test_a_damaged_weight_file_is_refused_before_anything_is_uploaded(upload, digits_model, tmp_path):
    folder = copy_model(digits_model, tmp_path / "damaged")
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    (folder / "model.safetensors").write_bytes(bytes(data))
    result = push_cli(upload, str(folder), f"zoo-push/{tmp_path.name}")
    assert result.exit_code == 1
    expected = zoo.modeldir.read_config(folder)["files"]["weights"]["sha256"]
    assert result.stderr == (
        f"Error: {folder / 'model.safetensors'} has sha256 {hashlib.sha256(data).hexdigest()}, config.json says "
        f"{expected}; nothing was uploaded (the directory {folder} is damaged: save or download it again)\n"
    )
    assert upload.requests == [] and upload.commits == []


def test_a_truncated_weight_file_is_refused_by_its_size(upload, digits_model, tmp_path):
    folder = copy_model(digits_model, tmp_path / "truncated")
    size = (folder / "model.safetensors").stat().st_size
    (folder / "model.safetensors").write_bytes((digits_model / "model.safetensors").read_bytes()[:-10])
    result = push_cli(upload, str(folder), f"zoo-push/{tmp_path.name}")
    assert result.exit_code == 1
    assert f"is {size - 10} bytes, config.json says {size}; nothing was uploaded" in result.stderr
    assert upload.requests == []


def test_a_missing_listed_file_is_refused(upload, digits_model, tmp_path):
    folder = copy_model(digits_model, tmp_path / "incomplete", names=("config.json",))
    result = push_cli(upload, str(folder), f"zoo-push/{tmp_path.name}")
    assert result.exit_code == 1
    assert f"Error: {folder}: model.safetensors (files.weights in config.json) is missing" in result.stderr
    assert upload.requests == []


def test_a_folder_that_is_not_a_model_directory_is_refused(upload, tmp_path):
    (tmp_path / "images" / "cat").mkdir(parents=True)
    (tmp_path / "images" / "cat" / "1.png").write_bytes(b"png")
    result = push_cli(upload, str(tmp_path / "images"), "zoo-push/images")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {tmp_path / 'images'} is not a model directory: it has no config.json (pass a directory written by zoo)\n"
    )
    assert upload.requests == []


@pytest.mark.parametrize("repo_id, problem", [
    ("just-a-name", "it is not org/name"),
    ("org/name/extra", "it is not org/name"),
    ("hf://org/name", "it is not org/name"),
    ("/name", "it is not org/name"),
    ("org/my model", "Repo id must use alphanumeric chars, '-', '_' or '.'"),
    ("org/x--y", "Cannot have -- or .. in repo_id"),
])
def test_a_repo_id_the_hub_would_refuse_is_refused_first(upload, digits_model, repo_id, problem):
    result = push_cli(upload, str(digits_model), repo_id)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {repo_id!r} is not a Hub repository id: {problem}")
    assert result.stderr.endswith("(give it as org/name, e.g. my-org/lite0-faces)\n")
    assert upload.requests == []


def test_a_listed_file_outside_the_directory_is_refused(upload, digits_model, tmp_path):
    folder = copy_model(digits_model, tmp_path / "escape")
    (tmp_path / "secret.txt").write_text("not yours")
    edit_config(folder, lambda zoo_fields: zoo_fields["files"].update(extra="../secret.txt"))
    result = push_cli(upload, str(folder), f"zoo-push/{tmp_path.name}")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {folder}: file name '../secret.txt' leads outside the model directory")
    assert upload.requests == []


def test_a_weights_symlink_out_of_the_directory_is_refused_even_with_the_right_bytes(upload, digits_model, tmp_path):
    folder = copy_model(digits_model, tmp_path / "linked", names=("config.json", "README.md"))
    (folder / "model.safetensors").symlink_to(digits_model / "model.safetensors")
    result = push_cli(upload, str(folder), f"zoo-push/{tmp_path.name}")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: {folder / 'model.safetensors'} is a symlink to {digits_model / 'model.safetensors'}, outside the model directory"
    )
    assert upload.requests == []


def test_a_card_whose_front_matter_is_not_yaml_is_refused_before_any_request(upload, digits_model, tmp_path):
    folder = copy_model(digits_model, tmp_path / "card")
    (folder / "README.md").write_text("---\nlicense: [mit\n---\n\n# a model\n")
    result = push_cli(upload, str(folder), f"zoo-push/{tmp_path.name}", "-m", "a message of my own")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {folder / 'README.md'}: the front matter is not valid YAML (")
    assert "nothing was uploaded (fix the block between the --- lines at the top of README.md" in result.stderr
    assert upload.requests == []


def test_card_metadata_the_hub_refuses_is_named(upload, digits_model, tmp_path):
    folder = copy_model(digits_model, tmp_path / "card")
    (folder / "README.md").write_text("---\nlicense: mit\nmodel-index:\n  name: not-a-list\n---\n\n# a model\n")
    result = push_cli(upload, str(folder), f"zoo-push/{tmp_path.name}")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: the Hub at {upload.endpoint} refused the model card's metadata: nothing was committed "
        '("model-index" must be an array of objects with "name" and "results") '
        "(fix the front matter of README.md (https://huggingface.co/docs/hub/model-cards))\n"
    )
    assert upload.commits == []


def test_a_wrong_token_is_refused_with_the_remedy(upload, digits_model, tmp_path):
    result = push_cli(upload, str(digits_model), f"zoo-push/{tmp_path.name}", env={"HF_TOKEN": "hf_wrong"})
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: the Hub at {upload.endpoint} did not accept the token (401 Unauthorized): nothing was committed "
        "(set HF_TOKEN to a valid token with write access, pass --token, or run `hf auth login`)\n"
    )
    assert upload.commits == []


def test_no_token_at_all_is_refused_with_the_remedy(upload, digits_model, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-token"))
    result = push_cli(upload, str(digits_model), f"zoo-push/{tmp_path.name}")
    assert result.exit_code == 1
    assert "did not accept the token (401 Unauthorized)" in result.stderr and "`hf auth login`" in result.stderr
    assert upload.commits == []


@pytest.mark.parametrize("exists", [False, True], ids=["new-repo", "existing-repo"])
def test_a_read_only_token_is_refused_with_the_remedy(upload, digits_model, other_model, tmp_path, exists):
    repo = f"zoo-push/{tmp_path.name}"
    if exists:  # create_repo's 403 makes huggingface_hub look the repo up; the upload is then refused
        assert push_cli(upload, str(digits_model), repo).exit_code == 0
    result = push_cli(upload, str(other_model), repo, env={"HF_TOKEN": READ})
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: the token may not write to {repo} on {upload.endpoint} (403 Forbidden): nothing was committed "
        "(use a token with write access to the 'zoo-push' namespace (a fine-grained or read token cannot push), "
        "or push to a namespace you own)\n"
    )
    assert len(upload.commits) == int(exists)


def test_the_token_option_is_used_over_hf_token(upload, digits_model, tmp_path):
    result = push_cli(upload, str(digits_model), f"zoo-push/{tmp_path.name}", "--token", WRITE, env={"HF_TOKEN": "hf_wrong"})
    assert result.exit_code == 0, result.output
    assert len(upload.commits) == 1


def test_the_token_hf_auth_login_saved_is_used(upload, digits_model, tmp_path):
    """`hf auth login` (huggingface_hub's own CLI, against the test server) saves the token; a new
    `zoo push` process without HF_TOKEN uses it."""
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_ENDPOINT=upload.endpoint)
    bin_dir = os.path.dirname(sys.executable)
    login = subprocess.run([os.path.join(bin_dir, "hf"), "auth", "login", "--token", WRITE], capture_output=True, text=True, env=env)
    assert login.returncode == 0, login.stderr
    repo = f"zoo-push/{tmp_path.name}"
    result = subprocess.run([os.path.join(bin_dir, "zoo"), "push", str(digits_model), repo, "-q"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{upload.endpoint}/{repo}/commit/{upload.commits[-1].sha}\n"
    assert ("GET", "/api/whoami-v2") in upload.requests


@pytest.mark.parametrize("where", ["environment", "huggingface_hub"])
def test_hf_hub_offline_is_refused_before_any_network_call(upload, digits_model, tmp_path, monkeypatch, where):
    if where == "huggingface_hub":  # the variable was set when huggingface_hub was imported, and is not now
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    env = {"HF_HUB_OFFLINE": "1"} if where == "environment" else {}
    result = push_cli(upload, str(digits_model), f"zoo-push/{tmp_path.name}", env=env)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: pushing needs the Hub, and HF_HUB_OFFLINE is set: nothing was uploaded "
        "(unset HF_HUB_OFFLINE (or set it to 0) on a machine that reaches the Hub)\n"
    )
    assert upload.requests == []


def test_an_unreachable_hub_is_refused_with_the_remedy(digits_model, tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_TOKEN", WRITE)
    result = CliRunner().invoke(cli, ["push", str(digits_model), "zoo-push/unreachable"], env={"HF_ENDPOINT": endpoint})
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: the Hub at {endpoint} cannot be reached: nothing was uploaded "
        "(check the network connection, or HF_ENDPOINT if you set it)\n"
    )


# -- the done-when: lite0 fine-tuned on the faces, pushed, loaded by timm from the Hub --------
TIMM_LOGITS = """
import json, sys, numpy as np, timm, torch
model = timm.create_model(sys.argv[1], pretrained=True).eval()
with torch.no_grad():
    np.save(sys.argv[3], model(torch.from_numpy(np.load(sys.argv[2]))).numpy())
print(json.dumps(timm.data.resolve_data_config({}, model=model)))
"""


@pytest.mark.slow
def test_lite0_fine_tuned_on_faces_pushed_loads_in_timm_from_the_hub_with_identical_logits(upload, tmp_path):
    from PIL import Image

    from zoo.data.packaged import write_dataset

    write_dataset("lfw-faces", tmp_path / "faces")
    out = tmp_path / "lite0-faces"
    result = zoo.finetune("tf_efficientnet_lite0.in1k", tmp_path / "faces", output=str(out), epochs=5)
    repo = f"zoo-push/{tmp_path.name}"
    pushed = push_cli(upload, str(out), repo)
    assert pushed.exit_code == 0, pushed.output
    assert upload.commits[-1].summary.startswith(
        f"zoo: tf_efficientnet_lite0 fine-tuned from timm/tf_efficientnet_lite0.in1k (val_accuracy {result.val_accuracy:.4g}"
    )

    local = zoo.load(str(out)).eval()
    size = local.zoo.preprocess["input_size"][1:]
    mean, std = (np.array(local.zoo.preprocess[k], dtype=np.float32)[:, None, None] for k in ("mean", "std"))
    photos = sorted((tmp_path / "faces").glob("*/*.png"))[::50]
    batch = np.ascontiguousarray(np.stack([  # contiguous: a strided input may take another conv kernel
        (np.asarray(Image.open(p).convert("RGB").resize(tuple(size)), dtype=np.float32).transpose(2, 0, 1) / 255 - mean) / std
        for p in photos
    ]), dtype=np.float32)
    with torch.no_grad():
        expected = local(torch.from_numpy(batch)).numpy()
        assert np.array_equal(zoo.load(f"hf://{repo}").eval()(torch.from_numpy(batch)).numpy(), expected)
    np.save(tmp_path / "batch.npy", batch)
    timm_run = subprocess.run(  # a new process: huggingface_hub reads HF_ENDPOINT (olah) at import
        [sys.executable, "-c", TIMM_LOGITS, f"hf-hub:{repo}", str(tmp_path / "batch.npy"), str(tmp_path / "timm.npy")],
        capture_output=True, text=True,
    )
    assert timm_run.returncode == 0, timm_run.stderr[-3000:]
    assert np.array_equal(np.load(tmp_path / "timm.npy"), expected)
    data_config = json.loads(timm_run.stdout)
    preprocess = local.zoo.preprocess
    assert (data_config["input_size"], data_config["mean"], data_config["std"]) == (
        list(preprocess["input_size"]), list(preprocess["mean"]), list(preprocess["std"])
    )
    assert (data_config["interpolation"], data_config["crop_pct"]) == (preprocess["interpolation"], preprocess["crop_pct"])
