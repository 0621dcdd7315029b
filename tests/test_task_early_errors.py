"""A registry name whose architecture does a task no installed plugin registers is one error line
naming the registered tasks, from every command, before the model is built or any data is read."""
from __future__ import annotations

import os

import pytest

from helpers import run_zoo
from test_plugins import write_distribution

AUDIO_PLUGIN = """
    import zoo

    @zoo.hookimpl
    def register_architectures(register):
        register(zoo.ArchSpec(name="audio-net", family="mlp", build="zoo_audio:build",
                              tasks=("audio-captioning",), input=zoo.InputSpec("features", (16,)), num_params=17))
        register(zoo.ArchSpec(name="broken-net", family="mlp", build="zoo_audio:build",
                              tasks=("tabular-classification",), input=zoo.InputSpec("features", (16,))))

    def build(**kwargs):
        import os
        open(os.environ["ZOO_AUDIO_MARKER"], "w").close()  # the architecture was built: it must not be
        raise RuntimeError("built")
"""


@pytest.fixture
def audio_env(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "zoo-audio", "zoo_audio", AUDIO_PLUGIN)
    marker = tmp_path / "built"
    return {"PYTHONPATH": str(site), "ZOO_AUDIO_MARKER": str(marker), "HF_HUB_OFFLINE": "1"}, marker


@pytest.mark.parametrize("command", [
    ("predict", "audio-net", "clip.wav"),
    ("export", "audio-net", "--format", "onnx"),
    ("eval", "audio-net", "--data", "{data}"),
    ("finetune", "audio-net", "--data", "{data}"),
    ("info", "audio-net"),
])
def test_a_registry_name_of_an_unregistered_task_is_refused_before_it_is_built(audio_env, tmp_path, command):
    env, marker = audio_env
    data = tmp_path / "data"
    data.mkdir()
    args = [a.format(data=data) for a in command]
    result = run_zoo(*args, env=env, cwd=tmp_path)
    if command[0] == "info":  # describing a model builds nothing: it says which task it names
        assert result.returncode == 0, result.stderr
        assert "audio-captioning" in result.stdout and not marker.exists()
        return
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: audio-net names task 'audio-captioning', which no installed plugin registers; "
                               "registered tasks: image-classification, language-modeling"), lines[0]
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "site"]


def test_an_architecture_whose_build_raises_is_named_with_its_plugin_not_an_internal_error(audio_env, tmp_path):
    env, marker = audio_env
    result = run_zoo("predict", "broken-net", "x.png", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert marker.exists()  # it was built, and raised
    assert result.stderr.strip().splitlines() == [
        "Error: architecture 'broken-net' (plugin zoo-audio) failed to build with no arguments: RuntimeError: built "
        "(check the architecture arguments; if they are right, report it to the plugin's authors)"
    ]
