"""Does ONNX Runtime's int8 model keep the accuracy of the network it came from? Weight scales per tensor
against per output channel, on the CIFAR-10 MobileNetV2 reference that amc_cifar.py and haq_cifar.py share.

The exporter folds batch norm into each conv, scaling every output channel differently; one int8 scale per
tensor then has to cover them all. tightfit deploys per channel; this is the measurement behind that.

    python bench/int8_accuracy.py
"""

from __future__ import annotations

import argparse

import onnxruntime as ort
from _cifar import add_reference_options, load_cifar, reference_recipe, trained_reference
from _common import write_result

from tightfit.hardware.runtime_ort import export_bytes, quantize_int8
from tightfit.models import ModelSpec

SHAPE = (3, 32, 32)
BATCH = 500  # the exported batch size; the test set is 20 of them


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_reference_options(p)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    data = load_cifar(args.train_images, args.val_images, args.seed)
    spec = ModelSpec("mobilenetv2", 32, 3, 10, 0.5)
    model, trained = trained_reference(spec, data, reference_recipe(args.train_epochs, args.seed))
    calibration = [next(iter(data.loader("train", BATCH, shuffle=True, seed=1)))[0].numpy()]
    fp32 = export_bytes(model.eval(), SHAPE, BATCH)
    models = {"fp32": fp32,
              "int8_per_tensor": quantize_int8(fp32, SHAPE, BATCH, calibration, per_channel=False),
              "int8_per_channel": quantize_int8(fp32, SHAPE, BATCH, calibration, per_channel=True)}
    summary = {name: _accuracy(blob, data) for name, blob in models.items()}
    summary["pytorch_test_acc"] = trained["test_acc"]
    print(summary)
    protocol = {**vars(args), "model": spec.to_json(), "test": "all 10,000 CIFAR-10 test images, ONNX Runtime",
                "int8": "static QDQ, uint8 activations (min/max on 500 training images), int8 weights"}
    print(write_result(__file__, protocol, summary, []))


def _accuracy(blob: bytes, data) -> float:  # noqa: ANN001
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    correct = total = 0
    for x, y in data.loader("test", BATCH):
        logits = session.run(None, {"input": x.contiguous().numpy()})[0]
        correct += int((logits.argmax(1) == y.numpy()).sum())
        total += len(y)
    return correct / total


if __name__ == "__main__":
    main()
