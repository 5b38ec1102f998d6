"""Networks: the MobileNet family built from plans, MobileNetV2 and ResNet/Plain-20 references."""

from tightfit.models.mobilenet import MobileNet, mobilenetv2_plan
from tightfit.models.registry import ModelSpec, build_model, model_families, register_model
from tightfit.models.resnet_cifar import ResNetCifar

__all__ = ["MobileNet", "ModelSpec", "ResNetCifar", "build_model", "mobilenetv2_plan", "model_families",
           "register_model"]
