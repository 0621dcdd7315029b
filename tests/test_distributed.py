"""Data-parallel fine-tuning with 2 gloo ranks on this CPU: `zoo finetune --nproc 2` and torchrun itself give
what one process gives, the feature pass is split between the ranks, and a killed rank fails the run in one
line, keeps the checkpoint, and `--resume` in one process finishes it."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from helpers import run_zoo
from zoo.finetuning.distributed import Ranks, root_failure, shard
from zoo.finetuning.jobs import _rank_batches
from zoo.modeldir import read_config

LITE0 = "tf_efficientnet_lite0.in1k"


def feature_files(home: Path) -> list[Path]:
    return sorted((home / "zoo" / "features").glob("*.safetensors"))


@pytest.mark.parametrize("size", [0, 1, 5, 40, 41, 160])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_hold_every_sample_exactly_once_in_order(size, world):
    shares = [list(shard(size, Ranks(rank, world))) for rank in range(world)]
    assert [i for share in shares for i in share] == list(range(size))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_each_global_batch_is_split_between_the_ranks_and_a_tail_too_small_is_dropped():
    order = torch.arange(70)
    parts = [_rank_batches(order, 32, Ranks(rank, 3), least=2) for rank in range(3)]
    # 32 = 11 + 11 + 10; the last 6 samples give each rank 2: kept
    assert [len(b) for b in parts[0]] == [11, 11, 2] and [len(b) for b in parts[2]] == [10, 10, 2]
    assert sorted(i for rank in parts for batch in rank for i in batch) == list(range(70))
    short = [_rank_batches(torch.arange(69), 32, Ranks(rank, 3), least=2) for rank in range(3)]
    assert [len(rank) for rank in short] == [2, 2, 2]  # 5 samples cannot give three ranks two each


def test_the_rank_that_failed_first_is_named_not_the_ones_that_lost_it(tmp_path, monkeypatch):
    from torch.distributed.elastic.multiprocessing.errors import ErrorHandler, ProcessFailure

    from zoo.errors import ArgumentError

    def recorded(name: str, exc: Exception) -> str:
        path = tmp_path / name
        monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(path))
        try:
            raise exc
        except Exception as raised:
            ErrorHandler().record_exception(raised)
        return str(path)

    lost = recorded("lost.json", RuntimeError("[gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:1"))
    cause = recorded("cause.json", ArgumentError("the output '/x' already exists", "pass --overwrite"))
    failures = {0: ProcessFailure(0, 11, 1, lost), 1: ProcessFailure(1, 12, 1, cause), 2: ProcessFailure(2, 13, -15, "none")}
    assert root_failure(failures) == (1, "the output '/x' already exists (pass --overwrite)")  # a zoo error speaks for itself
    killed = {0: ProcessFailure(0, 11, 1, lost), 1: ProcessFailure(1, 12, -9, "none")}
    assert root_failure(killed) == (1, "killed by SIGKILL")
    crashed = recorded("crashed.json", ValueError("bad value"))
    assert root_failure({0: ProcessFailure(0, 11, 1, crashed)}) == (0, "ValueError: bad value")


def test_batchnorm_layers_become_syncbatchnorm_sharing_what_they_learn_and_come_back():
    from torch import nn

    from zoo.finetuning.distributed import restore, sync_batchnorm

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
    originals = [model[1], model[2][1]]
    replaced = sync_batchnorm(model)
    assert [type(model[1]), type(model[2][1])] == [nn.SyncBatchNorm, nn.SyncBatchNorm]
    model[2][1].running_mean.add_(3.0)  # what training does to the statistics, in place
    model.load_state_dict({**model.state_dict(), "1.weight": torch.full((4,), 2.0)})
    restore(replaced)
    assert [model[1], model[2][1]] == originals
    assert torch.equal(originals[1].running_mean, torch.full((4,), 3.0)) and torch.equal(originals[0].weight, torch.full((4,), 2.0))


def exchange(rank: int, world: int, store: str, results: str) -> None:
    """One gloo rank: gather its shard of 2 rows over 3 ranks (rank 0 has none), receive rank 0's tensor."""
    import torch.distributed as dist

    from zoo.finetuning.distributed import broadcast_tensor, gather_rows

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    rows = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    part = shard(len(rows), Ranks(rank, world))
    gathered = gather_rows(rows[part.start : part.stop] if part else None)
    sent = broadcast_tensor(torch.tensor([[7, 8]], dtype=torch.int64) if rank == 0 else None)
    torch.save({"gathered": gathered, "sent": sent}, f"{results}.{rank}")
    dist.destroy_process_group()


@pytest.mark.slow
def test_rows_are_gathered_in_order_from_ranks_with_and_without_a_share(tmp_path):
    import torch.multiprocessing

    torch.multiprocessing.spawn(exchange, args=(3, str(tmp_path / "store"), str(tmp_path / "out")), nprocs=3)
    for rank in range(3):
        got = torch.load(tmp_path / f"out.{rank}", weights_only=True)
        assert torch.equal(got["gathered"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
        assert torch.equal(got["sent"], torch.tensor([[7, 8]]))


def scores(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` rows of seeded scores over 4 classes, and targets some of which are -100 (not counted)."""
    generator = torch.Generator().manual_seed(5)
    outputs, targets = torch.randn(count, 4, generator=generator), torch.randint(0, 4, (count,), generator=generator)
    targets[::5] = -100
    return outputs, targets


def merge_accuracy(rank: int, world: int, store: str, results: str) -> None:
    """One gloo rank: count its shard of the scores, then merge every rank's count."""
    import json

    import torch.distributed as dist

    from zoo.finetuning.distributed import merge_over_ranks
    from zoo.tasks.classification import Accuracy

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    outputs, targets = scores(23)
    part = shard(len(targets), Ranks(rank, world))
    mine = Accuracy()
    mine.update(outputs[part.start : part.stop], targets[part.start : part.stop])
    merged = merge_over_ranks(mine)
    Path(f"{results}.{rank}").write_text(json.dumps({"own": mine.result(), "merged": merged.result()}))
    dist.destroy_process_group()


@pytest.mark.slow
def test_metrics_merged_over_the_ranks_are_one_process_metrics_on_every_rank(tmp_path):
    import torch.multiprocessing

    from zoo.tasks.classification import Accuracy

    whole = Accuracy()
    whole.update(*scores(23))
    torch.multiprocessing.spawn(merge_accuracy, args=(3, str(tmp_path / "store"), str(tmp_path / "out")), nprocs=3)
    got = [json.loads((tmp_path / f"out.{rank}").read_text()) for rank in range(3)]
    assert [g["merged"] for g in got] == [whole.result()] * 3
    assert any(g["own"] != whole.result() for g in got)  # no rank alone had it


def train_batchnorm_step(rank: int, world: int, store: str) -> None:
    """One nccl rank: a BatchNorm model trains one step as SyncBatchNorm, and gets its own layers back."""
    import torch.distributed as dist
    from torch import nn

    from zoo.finetuning.distributed import Wrapped

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"file://{store}", rank=rank, world_size=world)
    device = torch.device("cuda", rank)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2)).to(device)
    model(torch.zeros(2, 3, 8, 8, device=device))
    batchnorm = model[1]
    wrapped = Wrapped(model, lambda module, x: module(x), device, batchnorm=True)
    assert isinstance(model[1], nn.SyncBatchNorm)
    wrapped.ddp(torch.randn(4, 3, 8, 8, device=device)).sum().backward()
    wrapped.unwrap()
    assert model[1] is batchnorm and int(batchnorm.num_batches_tracked) == 1
    dist.destroy_process_group()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="SyncBatchNorm and nccl need CUDA")
def test_on_cuda_batchnorm_trains_synchronised_over_the_ranks(tmp_path):
    import torch.multiprocessing

    world = min(2, torch.cuda.device_count())
    torch.multiprocessing.spawn(train_batchnorm_step, args=(world, str(tmp_path / "store")), nprocs=world)


@pytest.mark.slow
def test_a_global_batch_too_small_for_the_ranks_is_refused_naming_the_least(faces, tmp_path):
    result = run_zoo("finetune", "lenet5", "--data", str(faces), "--batch-size", "1", "--nproc", "2", "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    # lenet5 has no weights: the warning that it trains whole comes once, from rank 0, not from every rank
    assert result.stderr.count("Warning: lenet5 has no pretrained weights") == 1
    # Every rank refuses it: the line names the one whose error came first.
    assert re.fullmatch(
        r"Error: rank [01] of 2 failed: --batch-size 1 is split between 2 ranks, and each needs 1 sample of it at least "
        r"\(use --batch-size 2 or more: it is the global batch\)", result.stderr.strip().splitlines()[-1]
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_warning_of_the_run_points_at_the_code_that_called_finetune(faces, tmp_path):
    from zoo.finetuning.strategy import RandomBackboneWarning

    with pytest.warns(RandomBackboneWarning) as caught:
        zoo.finetune("lenet5", faces, output=str(tmp_path / "out"), epochs=1, steps_per_epoch=1)
    assert caught[0].filename == __file__  # not a frame inside zoo (engine.run holds the process group)


LEAVE_GROUP = """
import glob, json, os, socket, torch
from zoo.finetuning.distributed import Wrapped, process_group
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(probe.getsockname()[1]))
with process_group("cpu"):
    model = torch.nn.Linear(3, 2)
    wrapped = Wrapped(model, lambda module, inputs: module(inputs), torch.device("cpu"), batchnorm=False)
    wrapped.ddp(torch.ones(4, 3)).sum().backward()
    del wrapped
print(json.dumps(sorted(open(task + "/comm").read().strip() for task in glob.glob("/proc/self/task/*"))))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process's threads from /proc")
def test_leaving_the_process_group_ends_gloo_threads_so_the_rank_cannot_abort_at_exit():
    """A fresh interpreter (nothing imported before the group) trains one step under DDP and leaves the group.
    A group kept alive past destroy_process_group is torn down during interpreter shutdown, where a worker
    aborted ("terminate called without an active exception", 2 of 15 two-rank runs)."""
    done = subprocess.run([sys.executable, "-c", LEAVE_GROUP], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    threads = json.loads(done.stdout.strip().splitlines()[-1])
    assert threads and not [name for name in threads if "gloo" in name], threads


def test_each_rank_runs_the_command_line_it_was_given():
    from zoo.cli.finetune import finetune_command, rank_command

    given = {"epochs": 3, "lr": 0.0005, "cache": False, "pretrained": False, "strategy": "last-n:2", "output": "out dir"}
    argv = rank_command("lenet5", "./faces", given, quiet=True, json_=True)
    ctx = finetune_command.make_context("finetune", argv[1:])
    assert {name: ctx.params[name] for name in given} == given
    assert (ctx.params["model"], ctx.params["data"], ctx.params["quiet"], ctx.params["json_"], ctx.params["nproc"]) == (
        "lenet5", "./faces", True, True, 1
    )


@pytest.mark.slow
def test_nproc_is_refused_inside_a_torchrun_rank_and_bad_options_before_any_rank_starts(faces, tmp_path):
    inside = run_zoo("finetune", "lenet5", "--data", str(faces), "--nproc", "2", env={"RANK": "0", "WORLD_SIZE": "2"})
    assert inside.returncode == 1
    assert inside.stderr.strip() == (
        "Error: --nproc in a process torchrun started (drop --nproc: torchrun's --nproc-per-node says how many ranks)"
    )
    bad = run_zoo("finetune", "lenet5", "--data", str(faces), "--nproc", "2", "--epochs", "0", "-o", str(tmp_path / "o"))
    assert (bad.returncode, bad.stderr.strip()) == (1, "Error: epochs must be a positive integer, got 0")
    typo = run_zoo("finetune", "lenet55", "--data", str(faces), "--nproc", "2")
    assert typo.returncode == 1 and typo.stderr.startswith("Error: unknown model 'lenet55' (did you mean 'lenet5'")  # no rank started
    zero = run_zoo("finetune", "lenet5", "--data", str(faces), "--nproc", "0")
    assert zero.returncode == 2 and "--nproc" in zero.stderr
    cores = os.cpu_count()
    many = run_zoo("finetune", "lenet5", "--data", str(faces), "--device", "cpu", "--nproc", str(cores + 1))
    assert (many.returncode, many.stderr.strip()) == (1, (
        f"Error: --nproc {cores + 1} on a machine with {cores} CPU cores: each rank needs one at least "
        f"(use --nproc {cores} or fewer, or torchrun on several machines: see docs/scaling.md)"
    ))


@pytest.mark.slow
def test_head_on_two_ranks_matches_one_process_and_each_rank_computes_half_the_features(faces, tmp_path, isolated_env):
    one = zoo.finetune(LITE0, faces, output=str(tmp_path / "one"), image_size=64, epochs=3, runtime="eager")
    single_features = load_file(feature_files(isolated_env)[0])
    feature_files(isolated_env)[0].unlink()  # the ranks compute them again, not read them
    two = run_zoo(
        "finetune", LITE0, "--data", str(faces), "-o", str(tmp_path / "two"), "--image-size", "64", "--epochs", "3",
        "--runtime", "eager", "--nproc", "2", "--json",
    )
    assert two.returncode == 0, two.stderr
    summary = json.loads(two.stdout)  # one summary: rank 0 alone prints
    assert abs(summary["val_accuracy"] - one.val_accuracy) <= 0.01 and one.val_accuracy >= 0.9
    assert summary["val_loss"] == pytest.approx(one.metrics["val_loss"], abs=1e-4)
    assert (summary["features"], summary["feature_pass"]["ranks"], summary["feature_pass"]["per_rank"]) == ("computed", 2, [100, 100])
    training = read_config(tmp_path / "two")["training"]
    assert training["feature_pass"]["per_rank"] == [100, 100] and training["ranks"] == 2
    # Stored once, by rank 0: every sample's features once, in the one-process order.
    [stored] = feature_files(isolated_env)
    gathered = load_file(stored)
    for name in ("train_x", "val_x"):
        torch.testing.assert_close(gathered[name], single_features[name], atol=1e-4, rtol=1e-4)
    for name in ("train_y", "val_y"):
        assert torch.equal(gathered[name], single_features[name])
    # A second 2-rank run reads the cache (rank 0 sends it), and trains the same head.
    again = run_zoo(
        "finetune", LITE0, "--data", str(faces), "-o", str(tmp_path / "again"), "--image-size", "64", "--epochs", "3",
        "--runtime", "eager", "--nproc", "2", "--json",
    )
    assert again.returncode == 0, again.stderr
    cached = json.loads(again.stdout)
    assert (cached["features"], cached["feature_pass"], cached["val_loss"]) == ("cached", None, summary["val_loss"])


@pytest.mark.slow
def test_full_on_two_ranks_started_by_torchrun_matches_one_process(faces, tmp_path):
    # 31 does not divide between 2 ranks: each batch is split 16 + 15, and the loss scaling keeps it one batch.
    one = zoo.finetune("lenet5.digits", faces, output=str(tmp_path / "one"), strategy="full", epochs=3, batch_size=31)
    torchrun = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "zoo",
         "finetune", "lenet5.digits", "--data", str(faces), "--strategy", "full", "--epochs", "3", "--batch-size", "31",
         "-o", str(tmp_path / "two"), "--json"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert torchrun.returncode == 0, torchrun.stderr
    summary = json.loads(torchrun.stdout)
    assert abs(summary["val_accuracy"] - one.val_accuracy) <= 0.01 and one.val_accuracy > one.metrics["majority_baseline"]
    # The global batch means what it means in one process: the same losses, epoch by epoch.
    for mine, theirs in zip(summary["history"], one.history):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-4)
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], abs=1e-4)
    assert read_config(tmp_path / "two")["training"]["ranks"] == 2


def rank_pid(launcher: subprocess.Popen, rank: int) -> int:
    """The pid of the worker torchrun started for `rank` (a child of the launcher; RANK in its environment)."""
    for child in Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return int(child)
    raise AssertionError(f"no worker of rank {rank} under {launcher.pid}")


@pytest.mark.slow
def test_a_killed_rank_fails_the_run_in_one_line_and_resume_in_one_process_finishes_it(faces, tmp_path):
    output = tmp_path / "out"
    checkpoint = tmp_path / ".out.partial" / "checkpoint.pt"
    command = ["finetune", "lenet5.digits", "--data", str(faces), "--strategy", "full", "--epochs", "20",
               "--patience", "0", "-o", str(output)]
    launcher = subprocess.Popen(
        [str(Path(sys.executable).parent / "zoo"), *command, "--nproc", "2"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 300
    while not checkpoint.is_file():
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()
        time.sleep(0.05)
    os.kill(rank_pid(launcher, 1), signal.SIGKILL)
    stdout, stderr = launcher.communicate(timeout=300)
    assert launcher.returncode == 1 and stdout == ""
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert errors == [stderr.strip().splitlines()[-1]]
    assert re.fullmatch(
        rf"Error: rank 1 of 2 failed: killed by SIGKILL \(the checkpoint {re.escape(str(checkpoint))} of the last finished "
        r"epoch is kept: run the same command with --resume to continue\)", errors[0]
    )
    assert not output.exists() and checkpoint.is_file()
    kept = torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"]
    assert 1 <= kept < 20
    resumed = run_zoo(*command, "--resume", "--json", env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["epochs_run"] == 20
    training = read_config(output)["training"]
    assert (training["resumed_from_epoch"], training["ranks"]) == (kept, 1)
    assert not checkpoint.parent.exists()


@pytest.mark.slow
def test_ctrl_c_stops_every_rank_and_says_how_to_continue_in_one_line(faces, tmp_path):
    output = tmp_path / "out"
    checkpoint = tmp_path / ".out.partial" / "checkpoint.pt"
    command = ["finetune", "lenet5.digits", "--data", str(faces), "--strategy", "full", "--epochs", "20", "--patience", "0",
               "-o", str(output), "--nproc", "2"]
    # As a terminal's Ctrl-C: SIGINT to the launcher and its ranks, one process group.
    launcher = subprocess.Popen(
        [str(Path(sys.executable).parent / "zoo"), *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not checkpoint.is_file():
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()
        time.sleep(0.05)
    os.killpg(launcher.pid, signal.SIGINT)
    stdout, stderr = launcher.communicate(timeout=300)
    assert (launcher.returncode, stdout) == (128 + signal.SIGINT, "")
    kept = torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"]
    assert stderr.strip() == (
        f"Interrupted: SIGINT after epoch {kept} of 20: the checkpoint {checkpoint} is kept; to continue: "
        f"zoo {' '.join(command)} --resume"
    )
    assert not output.exists()


@pytest.mark.slow
def test_two_machines_meet_at_the_rendezvous_endpoint_as_the_docs_show(faces, tmp_path):
    """docs/scaling.md's two-machine command, both "machines" on this one: torchrun --nnodes 2 --rdzv-endpoint."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "faces-1", "-m", "zoo", "finetune", "lenet5.digits",
            "--data", str(faces), "--strategy", "full", "--epochs", "2", "-o", str(tmp_path / "out"), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    machines = [subprocess.Popen(node, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [machine.communicate(timeout=600) for machine in machines]
    assert [machine.returncode for machine in machines] == [0, 0], [stderr for _, stderr in results]
    summaries = [json.loads(stdout) for stdout, _ in results if stdout.strip()]
    assert len(summaries) == 1 and summaries[0]["epochs_run"] == 2  # rank 0 alone, on whichever machine it is
    assert read_config(tmp_path / "out")["training"]["ranks"] == 2
