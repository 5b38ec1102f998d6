"""Step 3 end to end on digits: `tightfit quantize` and `tightfit run --quantize` on bitfusion (latency), under
a size budget and on cpu-ort (int8 or fp32 per operator); the card, the packed file, the budget, and bad input."""

import json

import onnx
import pytest
import torch

from tightfit.cli import options
from tightfit.cli.main import build_parser, main
from tightfit.export.weights import load_weights
from tightfit.fileio import read_json
from tightfit.hardware import get_target
from tightfit.hardware.layers import extract_layers
from tightfit.methods.quantize.costs import AcceleratorCost, SizeCost
from tightfit.methods.quantize.packing import unpack
from tightfit.methods.quantize.policy import LayerBits, QuantPolicy
from tightfit.models.registry import ModelSpec
from tightfit.pipeline.rebuild import rebuild_model
from tightfit.pipeline.stage_quantize import QuantizeStage

ARCH = "k3e3-k5e3-skip-skip_k3e3-skip-skip-skip_k3e3-skip-skip-skip_k3e3-skip-skip-skip_k3e3-skip-skip-skip_k3e3"
TINY = ["--haq-episodes", "3", "--haq-warmup", "2", "--reward-steps", "1", "--quantize-epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A trained network of the search space, its weights and description."""
    out = tmp_path_factory.mktemp("runs") / "base"
    assert main(["run", "--arch", ARCH, "--out", str(out), "--epochs", "3", "--no-progress"]) == 0
    spec = ModelSpec.from_json(read_json(out / "model.json"))
    model = load_weights(rebuild_model(spec), out / "weights.safetensors").eval()
    return out, model, (spec.in_channels, spec.resolution, spec.resolution)


def _quantize(base, out, *args: str) -> dict:
    assert main(["quantize", "--model", "arch", "--arch", ARCH, "--weights", str(base[0] / "weights.safetensors"),
                 "--out", str(out), *TINY, *args]) == 0
    return json.loads((out / "card.json").read_text())


def _policy(card: dict) -> QuantPolicy:
    return QuantPolicy({n: LayerBits(w, a) for n, (w, a) in card["quantization"]["bits"].items()})


def _check_packed_file(card: dict, out) -> None:
    """The packed file is the reported model size and decodes to the deployed weights."""
    packed = out / "weights.packed.safetensors"
    assert card["size_bytes"]["model"] == card["size_bytes"]["packed"] == packed.stat().st_size
    assert card["quantization"]["packed_bytes"] == packed.stat().st_size
    state, policy = unpack(packed)
    assert policy.to_json()["bits"] == card["quantization"]["bits"]
    deployed = load_weights(rebuild_model(ModelSpec.from_json(read_json(out / "model.json"))),
                            out / "weights.safetensors").state_dict()
    for name, bits in policy.bits.items():
        if bits.w_bits < 32:
            assert torch.allclose(state[f"{name}.weight"], deployed[f"{name}.weight"], atol=1e-6), name


def test_bitfusion_latency_budget(base, tmp_path):
    _, model, shape = base
    cost = AcceleratorCost(model, shape, get_target("bitfusion"), "latency")
    budget = cost({op.name: LayerBits(6, 6) for op in extract_layers(model, shape)})
    out = tmp_path / "bf"
    card = _quantize(base, out, "--target", "bitfusion", "--latency", f"{budget}ms")
    q = card["quantization"]
    assert q["mode"] == "mixed" and q["metric"] == "latency" and q["budget"] == pytest.approx(budget)
    assert q["budget_met"] and q["cost"] <= budget
    assert cost(_policy(card).bits) == pytest.approx(q["cost"]) and q["cost"] <= budget
    assert all(2 <= w <= 8 and 2 <= a <= 8 for w, a in q["bits"].values())
    assert card["latency_ms"]["p50"] == pytest.approx(q["cost"])  # the accelerator prices the policy
    assert card["constraints"]["latency_ms"]["met"] is True
    assert q["episodes"] == 3 and card["accuracy"]["onnx_model"] == "fp32"
    names = list(q["bits"])
    assert q["bits"][names[0]] == q["bits"][names[-1]] == [8, 8]  # the ends kept at b_max by default
    _check_packed_file(card, out)
    page = (out / "report.html").read_text()
    assert "Step 3: mixed-precision quantization (HAQ)" in page and "activation bits" in page
    assert not list(out.rglob("*.tmp"))


def test_size_budget_in_bits_per_weight(base, tmp_path):
    _, model, shape = base
    out = tmp_path / "size"
    card = _quantize(base, out, "--size-bits", "3")
    q = card["quantization"]
    size = SizeCost(model, shape, "kmeans")
    assert q["mode"] == "weights" and q["quantizer"] == "kmeans" and q["unit"] == "bytes"
    assert q["budget"] == size({op.name: LayerBits(3, 32) for op in extract_layers(model, shape)})
    assert size(_policy(card).bits) == q["cost"] <= q["budget"]
    assert all(a == 32 for _, a in q["bits"].values())  # a size budget quantizes weights only
    _check_packed_file(card, out)
    assert card["size_bytes"]["packed"] < card["size_bytes"]["weights_safetensors"] / 5


def test_cpu_ort_int8_in_the_run_and_its_resume(base, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ort"
    assert main(["run", "--arch", ARCH, "--out", str(out), "--epochs", "2", "--quantize", "--budget-uniform", "w8a8",
                 *TINY]) == 0
    card = json.loads((out / "card.json").read_text())
    q = card["quantization"]
    state = read_json(out / "state.json")
    assert [r["stage"] for r in state["completed"]] == ["train", "quantize", "export"]
    assert q["mode"] == "int8" and q["cost"] <= q["budget"] and set(q["int8_operators"]) <= {8, 32}
    check = q["measured_check"]  # timed beside every operator int8, its budget under w8a8
    assert check and set(check[-1]["measured_ms"]) == {"policy", "int8"}
    assert check[-1]["int8_operators"] == q["int8_operators"].count(8)
    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert ("QuantizeLinear" in ops) == (8 in q["int8_operators"])
    assert card["accuracy"]["onnx_model"].startswith("int8") and card["accuracy"]["test_top1_onnx"] > 0.3
    assert card["latency_ms"]["source"].startswith("measured end to end")
    _check_packed_file(card, out)

    state["completed"], state["finished"] = state["completed"][:2], False  # as if export had died
    (out / "state.json").write_text(json.dumps(state))
    (out / "model.onnx").unlink()

    def must_not_run(*_args, **_kwargs):
        raise AssertionError("quantization was redone on resume")

    monkeypatch.setattr(QuantizeStage, "run", must_not_run)
    assert main(["run", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "resuming after stage 2 (quantize)" in capsys.readouterr().out
    assert (out / "model.onnx").read_bytes() == (out / "stages" / "2-quantize" / "model.int8.onnx").read_bytes()


def _fails(args: list[str], capsys) -> str:
    try:
        code = main(args)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    return err.strip()


@pytest.mark.parametrize(("args", "message"), [
    ([], "needs a budget"),
    (["--budget-uniform", "w9a4"], "not a uniform setting"),
    (["--size-bits", "12"], "1 to 8 bits per weight"),
    (["--size-bits", "3", "--budget-uniform", "w4a4"], "one quantization budget"),
    (["--target", "cpu-torch", "--latency", "1ms"], "no low-bit kernels"),
    (["--target", "cpu-ort", "--budget-uniform", "w4a4"], "w8a8"),
    (["--target", "cpu-ort", "--energy", "1mJ"], "give --latency"),
    (["--target", "bitfusion", "--latency", "1e-9ms"], "cannot be met"),
])
def test_bad_budgets_get_one_clear_line(base, tmp_path, capsys, args, message):
    out = tmp_path / "r"
    err = _fails(["quantize", "--model", "arch", "--arch", ARCH, "--weights", str(base[0] / "weights.safetensors"),
                  "--out", str(out), "--no-progress", *args], capsys)
    assert message in err and len(err.splitlines()) == 1, err
    if message != "cannot be met":  # only the network's own cost can tell that, inside the stage
        assert not out.exists()


def test_budget_flags_without_quantize_and_missing_weights(capsys, tmp_path):
    assert "add --quantize" in _fails(["run", "--size-bits", "3"], capsys)
    err = _fails(["quantize", "--model", "mobilenetv2", "--weights", str(tmp_path / "none.safetensors"),
                  "--latency", "1ms"], capsys)
    assert "none.safetensors does not exist" in err



def test_the_ends_are_left_to_the_agent_on_request():
    argv = ["quantize", "--model", "arch", "--arch", ARCH, "--weights", "w.safetensors", "--target", "bitfusion",
            "--latency", "1ms"]
    for extra, kept in (([], True), (["--no-keep-ends"], False)):
        args = build_parser().parse_args([*argv, *extra])
        assert options.config_from(args, "arch").quantize.keep_ends is kept
