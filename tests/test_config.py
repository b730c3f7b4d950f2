"""Training configs: strict TOML validation naming the key; the shipped recipes load."""

import pytest

from dbd_core.paths import configs_dir
from dbd_core.train.config import ConfigError, load_config, resolve_path, validate


def _write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_defaults_and_override(tmp_path):
    cfg = load_config(_write(tmp_path, '[optim]\nlr = 1\n[run]\nsteps = 5\n'))
    assert cfg["optim"]["lr"] == 1.0 and isinstance(cfg["optim"]["lr"], float)
    assert cfg["run"]["steps"] == 5 and cfg["loss"]["region"] == "iou"


@pytest.mark.parametrize("text, key", [
    ("[optim]\nlr_rate = 0.1\n", "optim.lr_rate"),
    ("[optimizer]\nlr = 0.1\n", "[optimizer]"),
    ('[run]\nsteps = "100"\n', "run.steps"),
    ("[run]\nsteps = 1.5\n", "run.steps"),
    ("[data]\naugment = 1\n", "data.augment"),
    ("[run]\nsteps = true\n", "run.steps"),
    ('[loss]\nregion = "jaccard"\n', "loss.region"),
    ("[optim]\nlr = -1\n", "optim.lr"),
    ("[val]\nfraction = 1.5\n", "val.fraction"),
])
def test_bad_keys_and_types_are_named(tmp_path, text, key):
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, text))
    assert key in str(e.value) and "c.toml" in str(e.value)


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[run\n"))
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize("name", ["teacher", "student", "finetune_student", "finetune_teacher"])
def test_shipped_recipes_are_valid(name):
    cfg = load_config(configs_dir() / f"{name}.toml")
    assert cfg["run"]["steps"] > 0
    if name == "teacher":
        assert cfg["data"]["kind"] == "synthetic" and cfg["data"]["sharp"]


def test_relative_paths_resolve_against_config_folder(tmp_path):
    # A name that cannot exist relative to the cwd, so only the config's folder can resolve it.
    name = f"data-{tmp_path.name}"
    (tmp_path / name).mkdir()
    sub = tmp_path / "configs"
    sub.mkdir()
    cfg = load_config(_write(sub, ""))
    assert resolve_path(f"../{name}", cfg) == str(sub / f"../{name}")
    assert validate({}, "x")["run"]["kind"] == "teacher"
