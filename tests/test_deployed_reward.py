"""HAQ's cpu-ort reward is the accuracy of the model that is deployed, and calibrating once changes nothing."""

import onnxruntime as ort
import pytest
import torch

from tightfit.export.onnx import onnx_accuracy
from tightfit.hardware import CostModel, get_target
from tightfit.hardware.runtime_ort import Int8Quantizer, quantize_int8
from tightfit.methods.quantize.costs import OrtCost
from tightfit.methods.quantize.deploy import float_onnx, mixed_int8_onnx
from tightfit.methods.quantize.deployed_reward import deployed_accuracy
from tightfit.methods.quantize.policy import LayerBits, QuantPolicy, quantizable_layers
from tightfit.models import ModelSpec, build_model

SHAPE = (3, 16, 16)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = build_model(ModelSpec("mobilenetv2", 16, 3, 10, 0.35)).eval()
    x = torch.randn(96, *SHAPE)
    optimizer = torch.optim.Adam(model.parameters(), 0.01)
    for _ in range(20):  # fit random labels a little: a network whose classes depend on the input
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model.train()(x), torch.arange(96) % 10).backward()
        optimizer.step()
    with torch.no_grad():  # running statistics of these inputs exactly, as the trained network saw them
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        model(x)
    model.eval()
    cost = OrtCost(model, CostModel(get_target("cpu-ort"), progress=False),
                   anchor_ms={"fp32": 2.0, "int8": 1.0, "alternate-even": 1.6, "alternate-odd": 1.6})
    g = torch.Generator().manual_seed(1)
    calibration = [torch.randn(16, *SHAPE, generator=g).numpy() for _ in range(2)]
    with torch.no_grad():
        y = model(x).argmax(1)  # the float model is right on every image: int8 can only lose
    return model, cost, calibration, [(x[i:i + 32], y[i:i + 32]) for i in range(0, 96, 32)]


def deployed_model_accuracy(blob: bytes, batches) -> float:  # noqa: ANN001
    return onnx_accuracy(ort.InferenceSession(blob, providers=["CPUExecutionProvider"]), batches)


def policy_of(model, int8_layers) -> QuantPolicy:  # noqa: ANN001
    return QuantPolicy({n: LayerBits(8, 8) if n in int8_layers else LayerBits() for n in quantizable_layers(model)})


def test_the_calibration_cache_gives_the_same_int8_models_as_calibrating_each_time(setup):
    model, _, calibration, _ = setup
    fp32 = float_onnx(model, SHAPE)
    quantizer = Int8Quantizer(fp32, SHAPE, calibration=calibration)
    choices = [None, lambda node: "blocks.1" in node, lambda node: "Conv" in node and "blocks" not in node]
    for keep in choices * 2:  # every call after the first reads the cached ranges
        assert quantizer(keep) == quantize_int8(fp32, SHAPE, calibration=calibration, keep_fp32=keep)


def test_the_reward_is_the_accuracy_of_the_int8_onnx_model_that_is_deployed(setup):
    model, cost, calibration, batches = setup
    reward = deployed_accuracy(model, SHAPE, calibration, batches, cost.precisions)
    assert reward(policy_of(model, set())) == 1.0  # all fp32: the network itself
    half = {n for names in cost.operators[::2] for n in names}
    for int8_layers in (half, set(quantizable_layers(model))):
        policy = policy_of(model, int8_layers)
        deployed = mixed_int8_onnx(model, cost.precisions(policy.bits), SHAPE, calibration)
        assert reward(policy) == deployed_model_accuracy(deployed, batches)
    assert reward(policy_of(model, set(quantizable_layers(model)))) < 1.0  # int8 really ran: ORT's rounding
