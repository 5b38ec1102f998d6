"""Bad input: one clear line naming the input and the fix, exit code 2, and nothing written."""

import subprocess
import sys

import pytest

from tightfit.cli.main import main


def _fails(args: list[str], capsys) -> str:
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def test_unknown_data_set(capsys, tmp_path):
    err = _fails(["run", "--data", "mnist", "--out", str(tmp_path / "r")], capsys)
    assert "unknown data set 'mnist'" in err and "imagefolder:PATH" in err
    assert not (tmp_path / "r").exists()


def test_missing_path(capsys, tmp_path):
    err = _fails(["run", "--data", f"imagefolder:{tmp_path}/nowhere", "--out", str(tmp_path / "r")], capsys)
    assert "nowhere does not exist" in err
    assert not (tmp_path / "r").exists()


def test_corrupt_image_file(capsys, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("TIGHTFIT_CACHE", str(tmp_path / "cache"))
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / "d" / split / cls).mkdir(parents=True)
            Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "d" / split / cls / "ok.png")
    bad = tmp_path / "d" / "train" / "b" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    err = _fails(["run", "--data", f"imagefolder:{tmp_path / 'd'}", "--out", str(tmp_path / "r")], capsys)
    assert str(bad) in err and "remove or replace it" in err


@pytest.mark.parametrize(("option", "value"), [("--latency", "3xs"), ("--size", "big"), ("--flops", "-5M")])
def test_malformed_number(capsys, option, value):
    err = _fails(["run", f"{option}={value}"], capsys)
    assert option in err and value in err


@pytest.mark.parametrize(("option", "value"), [("--schedule", "linear"), ("--model", "vgg")])
def test_unknown_option_value(capsys, option, value):
    err = _fails(["run", option, value], capsys)
    assert "invalid choice" in err and value in err


def test_unknown_target(capsys, tmp_path):
    err = _fails(["run", "--target", "tpu", "--out", str(tmp_path / "r")], capsys)
    assert "unknown target 'tpu'" in err and "accel.yaml" in err
    assert not (tmp_path / "r").exists()


def test_bad_arch_string(capsys):
    err = _fails(["run", "--arch", "k9e6"], capsys)
    assert "architecture" in err


def test_existing_run_folder_is_not_overwritten(capsys, tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "keep.txt").write_text("precious")
    err = _fails(["run", "--out", str(tmp_path / "r")], capsys)
    assert "--resume" in err
    assert (tmp_path / "r" / "keep.txt").read_text() == "precious"


def test_resume_of_a_folder_without_a_run(capsys, tmp_path):
    err = _fails(["run", "--resume", "--out", str(tmp_path)], capsys)
    assert "no run to resume" in err


def test_the_installed_command_exits_2_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "tightfit", "run", "--latency", "3xs"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "tightfit: error: --latency '3xs' is not a number with a unit (ms, us, s); for example --latency 3ms"]
