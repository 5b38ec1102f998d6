"""Training: one trainer for every stage, distributed plumbing, BatchNorm recalibration, KD loss."""

from tightfit.train.batchnorm import recalibrate_bn
from tightfit.train.config import SCHEDULES, TrainConfig
from tightfit.train.distributed import DistContext, barrier, init_distributed, shutdown
from tightfit.train.losses import DistillationLoss
from tightfit.train.trainer import EpochRecord, History, Trainer, evaluate

__all__ = ["SCHEDULES", "DistContext", "DistillationLoss", "EpochRecord", "History", "TrainConfig", "Trainer",
           "barrier", "evaluate", "init_distributed", "recalibrate_bn", "shutdown"]
