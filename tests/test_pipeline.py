"""End to end: `tightfit run` on digits writes a complete, honest run folder, and resumes."""

import json

import pytest

from tightfit.cli.main import main
from tightfit.pipeline import constraints_from_text, parse_quantity
from tightfit.pipeline.stage_train import TrainStage

FAST = ["--epochs", "5", "--search-warmup", "1", "--search-epochs", "2", "--no-progress"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["run", "--out", str(out), "--latency", "1000ms", "--size", "1kB", *FAST]) == 0
    return out


def test_run_folder_holds_every_artifact(finished_run):
    for name in ("config.json", "state.json", "model.onnx", "weights.safetensors", "model.json", "card.json",
                 "report.html"):
        assert (finished_run / name).is_file(), name
    assert not list(finished_run.rglob("*.tmp")), "no half-written files"


def test_card_reports_measured_figures_and_constraints(finished_run):
    card = json.loads((finished_run / "card.json").read_text())
    assert card["parity_max_abs_diff"] < 1e-4
    assert card["accuracy"]["test_top1_onnx"] > 0.5  # 5 epochs: far above the 10% of chance
    assert card["latency_ms"]["p50"] > 0 and card["latency_ms"]["p90"] >= card["latency_ms"]["p50"]
    assert card["size_bytes"]["onnx"] == (finished_run / "model.onnx").stat().st_size
    assert card["flops"] > 0 and card["params"] > 0 and card["peak_activation_bytes"] > 0
    assert card["constraints"]["latency_ms"]["met"] is True
    assert card["constraints"]["size_bytes"]["met"] is False  # 1 kB cannot hold the network
    assert card["all_constraints_met"] is False
    assert card["energy"]["mj"] > 0 and card["energy"]["source"].startswith(("measured", "modelled"))
    assert card["latency_ms"]["source"].startswith("measured end to end")


def test_report_shows_curves_and_layers(finished_run):
    page = (finished_run / "report.html").read_text()
    assert "<svg" in page and "Learning curves" in page and "depthwise" in page
    assert "Step 1: searched architecture" in page and "Evolution of p" in page


def test_the_default_run_searches_the_architecture_it_deploys(finished_run):
    card = json.loads((finished_run / "card.json").read_text())
    spec = json.loads((finished_run / "model.json").read_text())
    assert spec["family"] == "arch" and spec["arch"] == card["search"]["arch"]
    assert card["search"]["target"] == 1000.0 and card["search"]["predicted"] <= 1000.0
    state = json.loads((finished_run / "state.json").read_text())
    assert [r["stage"] for r in state["completed"]] == ["search", "train", "export"]
    history = state["completed"][0]["results"]["history"]
    assert [h["phase"] for h in history] == ["warmup", "search", "search"]
    assert all(abs(sum(p) - 1) < 1e-5 for h in history for p in h["probs"])


def test_resume_reuses_finished_stages(finished_run, monkeypatch, capsys):
    state = json.loads((finished_run / "state.json").read_text())
    state["completed"] = state["completed"][:2]  # as if the run died during export
    state["finished"] = False
    (finished_run / "state.json").write_text(json.dumps(state))
    (finished_run / "model.onnx").unlink()

    def must_not_train(*_args, **_kwargs):
        raise AssertionError("training was redone on resume")

    monkeypatch.setattr(TrainStage, "run", must_not_train)
    assert main(["run", "--out", str(finished_run), "--resume", "--no-progress"]) == 0
    assert (finished_run / "model.onnx").is_file()
    assert json.loads((finished_run / "state.json").read_text())["finished"] is True
    assert "resuming after stage 2 (train)" in capsys.readouterr().out


def test_a_given_arch_and_resnet_run_end_to_end(tmp_path):
    arch = "k3e3-k5e3-skip-skip_k3e3-skip-skip-skip_k3e3-skip-skip-skip_k3e3-skip-skip-skip_k3e3-skip-skip-skip_k3e3"
    assert main(["run", "--arch", arch, "--out", str(tmp_path / "a"), "--epochs", "1", "--no-progress"]) == 0
    spec = json.loads((tmp_path / "a" / "model.json").read_text())
    assert spec["family"] == "arch" and spec["arch"] == arch
    assert main(["run", "--model", "resnet20", "--out", str(tmp_path / "r"), "--epochs", "1", "--no-progress"]) == 0


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("3", "ms", 3.0), ("3ms", "ms", 3.0), ("250us", "ms", 0.25), ("1.5MB", "bytes", 1.5e6), ("2KiB", "bytes", 2048),
    ("300M", "count", 3e8), ("1e3", "count", 1e3),
])
def test_quantities_parse_with_units(text, kind, value):
    assert parse_quantity(text, kind, "--x") == pytest.approx(value)


def test_constraints_round_trip_and_unset_ones_are_not_checked():
    c = constraints_from_text(latency="2ms", flops="10M")
    assert c.check({"latency_ms": 1.0, "flops": 2e7}) == {
        "latency_ms": {"bound": 2.0, "value": 1.0, "met": True},
        "flops": {"bound": 1e7, "value": 2e7, "met": False},
    }
