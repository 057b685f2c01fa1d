"""The one config system: typed dataclasses, unknown keys rejected, dotted overrides."""
from dataclasses import dataclass, field
from typing import Literal

import pytest

from cliprt_core.config import ConfigError, load_config, save_config, to_dict


@dataclass
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)


@dataclass
class Run:
    name: str = "run"
    steps: int = 10
    amp: bool = False
    mode: Literal["chunk", "discrete"] = "chunk"
    tasks: list[int] = field(default_factory=list)
    path: str | None = None
    optim: Optim = field(default_factory=Optim)


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: a\noptim: {lr: 0.5}\n")
    run = load_config(Run, path, ["steps=20", "optim.betas=[0.8, 0.9]", "tasks=[1, 2]", "optim.lr=1e-4",
                                  "amp=true", "path=null"])
    assert run == Run(name="a", steps=20, amp=True, tasks=[1, 2],
                      optim=Optim(lr=1e-4, betas=(0.8, 0.9)))
    save_config(run, tmp_path / "out.yaml")
    assert load_config(Run, tmp_path / "out.yaml") == run
    assert to_dict(run)["optim"]["betas"] == [0.8, 0.9]


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "optim.lrr"),
    ("stepz=1", "stepz"),
    ("steps=abc", "steps: expected an integer"),
    ("amp=3", "amp: expected true/false"),
    ("mode=other", "mode: 'other' is not one of"),
    ("optim.betas=[1]", "expected 2 items"),
    ("name", "key=value"),
    ("steps.x=1", "steps: expected an integer"),
    ("name.x=1", "not a section"),
])
def test_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Run, {"name": "n"}, [override])


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optim: {lr: 0.1, momentum: 0.9}\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: unknown config key\(s\) in 'optim': "
                                          r"optim\.momentum"):
        load_config(Run, path)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Run, tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Run, bad)
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(Run, bad)


def test_duplicate_keys_are_errors_not_last_one_wins(tmp_path):
    """YAML silently keeps the last of two equal keys; a config file must not."""
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\noptim:\n  lr: 0.1\n  betas: [0.9, 0.9]\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: duplicate key 'lr' \(line 3 and line 5\)"):
        load_config(Run, path)


def test_settings_derive_flags_and_parse_like_the_config(capsys):
    """One definition per setting: the flag, its help and its parsing come from the field."""
    import argparse

    from cliprt_core.cli.options import add_config_flags, given_flags
    from cliprt_core.config import leaves, setting

    @dataclass(frozen=True)
    class Inner:
        backend: Literal["torch", "onnx"] = setting("torch", "which backend (100% eager)")
        seed_of_weights: int | None = setting(None, "seed")

    @dataclass(frozen=True)
    class Outer:
        inner: Inner = field(default_factory=Inner)
        video: bool = setting(False, "write videos")

    found = leaves(Outer)
    assert set(found) == {"backend", "seed_of_weights", "video"}
    assert found["backend"].path == ("inner", "backend") and found["backend"].choices == (
        "torch", "onnx")
    assert found["seed_of_weights"].parse("7") == 7 and found["video"].parse("true") is True
    with pytest.raises(ConfigError, match="seed_of_weights"):
        found["seed_of_weights"].parse("seven")
    parser = argparse.ArgumentParser()
    add_config_flags(parser, Outer)
    args = parser.parse_args(["--backend", "onnx", "--no-video"])
    assert given_flags(args, Outer) == {"backend": "onnx", "video": False}
    assert "100% eager" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--backend", "tensorflow"])
    assert "invalid choice" in capsys.readouterr().err
