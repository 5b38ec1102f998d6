"""The trainer: it learns, resumes exactly, and its helpers do what they are for."""

import pytest
import torch
from torch import nn

from tightfit.data import BatchLoader, Normalize, TensorSet
from tightfit.errors import TightfitError
from tightfit.train import DistillationLoss, TrainConfig, Trainer, evaluate, recalibrate_bn


def _toy_data(n: int = 256, seed: int = 0) -> TensorSet:
    """Two classes told apart by brightness: learnable in a few epochs."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=gen)
    x = (torch.rand(n, 1, 4, 4, generator=gen) * 100 + y[:, None, None, None] * 120).to(torch.uint8)
    return TensorSet(x, y)


def _toy_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 2))


def _loaders(data: TensorSet, batch: int = 32) -> tuple[BatchLoader, BatchLoader]:
    norm = Normalize((0.4,), (0.3,))
    return BatchLoader(data, batch, norm, shuffle=True, seed=1), BatchLoader(data, 128, norm)


def test_trainer_learns_a_separable_problem():
    train, val = _loaders(_toy_data())
    model = _toy_model()
    _, acc_before = evaluate(model, val)
    history = Trainer(model, TrainConfig(epochs=4, batch_size=32, lr=0.1, warmup_epochs=0), train, val,
                      progress=False).fit()
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss
    assert history.epochs[-1].eval_acc > 0.9 > acc_before


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "constant"])
def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, schedule):
    data = _toy_data()
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, schedule=schedule, channels_last=False)

    whole = _toy_model()
    Trainer(whole, cfg, *_loaders(data), progress=False).fit()

    class Interrupt(Exception):
        pass

    ckpt = tmp_path / "checkpoint.pt"
    first = _toy_model()
    trainer = Trainer(first, cfg, *_loaders(data), checkpoint=ckpt, progress=False)
    original = trainer.train_epoch

    def crash_in_epoch_two(epoch: int):
        if epoch == 1:
            raise Interrupt
        return original(epoch)

    trainer.train_epoch = crash_in_epoch_two
    with pytest.raises(Interrupt):
        trainer.fit()

    resumed_model = _toy_model()
    resumed = Trainer(resumed_model, cfg, *_loaders(data), checkpoint=ckpt, progress=False)
    assert resumed.start_epoch == 1
    history = resumed.fit()
    assert [e.epoch for e in history.epochs] == [1, 2, 3]
    for a, b in zip(whole.state_dict().values(), resumed_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_a_constant_schedule_holds_the_rate_after_its_warm_up_and_a_cosine_one_decays():
    train, _ = _loaders(_toy_data())  # 8 batches an epoch
    rates = {}
    for schedule in ("constant", "cosine"):
        trainer = Trainer(_toy_model(), TrainConfig(epochs=2, batch_size=32, lr=0.05, schedule=schedule,
                                                    warmup_epochs=0.5, channels_last=False), train, progress=False)
        trainer.fit()
        rates[schedule] = trainer.optimizer.param_groups[0]["lr"]
    assert rates["constant"] == pytest.approx(0.05) and rates["cosine"] < 1e-3


def test_resume_with_other_settings_is_refused(tmp_path):
    data = _toy_data()
    ckpt = tmp_path / "checkpoint.pt"
    Trainer(_toy_model(), TrainConfig(epochs=1, batch_size=32), *_loaders(data), checkpoint=ckpt,
            progress=False).fit()
    with pytest.raises(TightfitError, match="other training settings"):
        Trainer(_toy_model(), TrainConfig(epochs=2, batch_size=32), *_loaders(data), checkpoint=ckpt,
                progress=False)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(TightfitError, match="delete it"):
        Trainer(_toy_model(), TrainConfig(epochs=1), *_loaders(_toy_data()), checkpoint=ckpt, progress=False)


def test_label_smoothing_and_schedule_are_validated():
    with pytest.raises(ValueError):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)


def test_batchnorm_recalibration_restores_the_true_statistics():
    torch.manual_seed(0)
    bn_model = nn.Sequential(nn.Conv2d(1, 4, 1, bias=False), nn.BatchNorm2d(4))
    batches = [(torch.randn(64, 1, 4, 4) * 3 + 5, torch.zeros(64)) for _ in range(4)]
    bn_model.eval()  # recalibration must hand the model back in the mode it got it
    bn = bn_model[1]
    bn.running_mean.fill_(100.0)
    recalibrate_bn(bn_model, batches, num_batches=4)
    with torch.no_grad():
        feats = torch.cat([bn_model[0](x) for x, _ in batches])
    torch.testing.assert_close(bn.running_mean, feats.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-4)
    assert bn.momentum == 0.1 and not bn_model.training


def test_distillation_loss_is_zero_for_an_identical_student_and_positive_otherwise():
    teacher = _toy_model().eval()
    x = torch.randn(8, 1, 4, 4)
    kd = DistillationLoss(teacher, temperature=2.0)
    assert kd(x, teacher(x)).item() == pytest.approx(0.0, abs=1e-6)
    assert kd(x, torch.randn(8, 2) * 5).item() > 0.01
