"""Hardware targets: the cost interface on every target, the lookup table's keys, cache and resume."""

import json
import random
from dataclasses import replace

import pytest
import torch

from tightfit.cli.main import main
from tightfit.errors import TightfitError
from tightfit.hardware import CostModel, LookupTable, OpKey, get_target, plan_ops, space_ops, target_names
from tightfit.hardware import fingerprint as fingerprint_mod
from tightfit.hardware import latency as latency_mod
from tightfit.hardware import profile as profile_mod
from tightfit.hardware.profile import ensure_entries
from tightfit.hardware.validate import ValidationRow, random_pruned, summarize
from tightfit.models import MobileNet
from tightfit.space import SearchSpace

SPACE = SearchSpace(8, 1, 10, width_mult=0.35)  # tiny: the tests time real operators on this CPU


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TIGHTFIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TIGHTFIT_TIMING", "1:0")


def _plan(seed: int = 0):
    return SPACE.plan(SPACE.random_arch(random.Random(seed)))


@pytest.mark.parametrize("name", target_names())
def test_cost_interface_on_every_target(name):
    if name == "cuda" and not torch.cuda.is_available():
        with pytest.raises(TightfitError, match="needs an NVIDIA GPU"):
            get_target(name)
        pytest.skip("no GPU here")
    cost = CostModel(get_target(name), progress=False)
    cost.profile_space(SPACE)
    plan = _plan()
    c = cost.of_plan(plan)
    bits = 8 if name == "bitfusion" else 32  # unquantized networks run at the accelerator's widest bits
    assert c.latency_ms > 0 and c.energy_mj > 0 and c.size_bytes > 0
    assert c.flops > 0 and c.bitops == c.flops // 2 * bits * bits and c.params > 0 and c.peak_memory_bytes > 0
    assert c.latency_source == ("analytic roofline model" if name == "bitfusion" else "lookup table")
    bigger = SPACE.plan(SPACE.uniform_arch(7, 6))
    assert cost.of_plan(bigger).flops > c.flops


def test_bitfusion_prices_lower_precision_as_cheaper():
    cost = CostModel(get_target("bitfusion"))
    plan = _plan(1)
    c8, c4 = cost.of_plan(plan, 8), cost.of_plan(plan, 4)
    assert c4.latency_ms < c8.latency_ms and c4.energy_mj < c8.energy_mj and c4.size_bytes < c8.size_bytes


def test_any_model_is_priced_on_a_measured_target_by_running_it():
    model = MobileNet(_plan(2))
    c = CostModel(get_target("cpu-torch")).of_model(model, (1, 8, 8))
    assert c.latency_ms > 0 and c.latency_source == "measured end to end"


def test_space_ops_covers_every_operator_of_every_architecture():
    table_keys = set(space_ops(SPACE))
    for seed in range(50):
        assert set(plan_ops(_plan(seed))) <= table_keys


def test_space_ops_has_int8_entries_when_asked():
    keys = space_ops(SPACE, (32, 8))
    assert {k.w_bits for k in keys} == {32, 8} and len(keys) == 2 * len(space_ops(SPACE))


def test_op_keys_are_typed_and_round_trip():
    for key in plan_ops(_plan()):
        assert OpKey.from_json(json.loads(json.dumps(key.to_json()))) == key


def test_table_is_cached_per_fingerprint_and_reopened(tmp_path):
    target = get_target("cpu-torch")
    table = LookupTable.open(target.fingerprint())
    keys = plan_ops(_plan())
    assert ensure_entries(target, table, keys, progress=False) == len(set(keys))
    again = LookupTable.open(target.fingerprint())
    assert again.entries == table.entries and again.overhead_ms == table.overhead_ms
    assert ensure_entries(target, again, keys, progress=False) == 0  # nothing left to measure
    other = LookupTable.open({**target.fingerprint(), "threads": 7})
    assert len(other) == 0 and other.path != table.path


def test_a_cpu_with_other_vector_extensions_gets_its_own_table(monkeypatch, tmp_path):
    # one model name, two instruction sets: int8 kernels differ, so a table must not carry over
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2 fma\n")
    monkeypatch.setattr(fingerprint_mod, "Path", lambda _path: cpuinfo)
    avx2 = get_target("cpu-ort").fingerprint()
    cpuinfo.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2 fma avx512f avx512_vnni\n")
    vnni = get_target("cpu-ort").fingerprint()
    assert avx2["device"] == vnni["device"] == "AMD EPYC"
    assert (avx2["isa"], vnni["isa"]) == ("avx avx2 fma", "avx avx2 fma avx512f avx512_vnni")
    assert LookupTable.open(avx2).path != LookupTable.open(vnni).path


def test_corrupt_cache_is_rebuilt_not_crashed_on(capsys):
    target = get_target("cpu-torch")
    table = LookupTable.open(target.fingerprint())
    table.path.parent.mkdir(parents=True, exist_ok=True)
    table.path.write_text("{ not json")
    rebuilt = LookupTable.open(target.fingerprint())
    assert len(rebuilt) == 0 and "rebuilding" in capsys.readouterr().err
    ensure_entries(target, rebuilt, plan_ops(_plan())[:3], progress=False)
    assert len(LookupTable.open(target.fingerprint())) == 3


def test_an_interrupted_build_resumes_where_it_stopped(monkeypatch):
    monkeypatch.setattr(profile_mod, "CHUNK", 16)
    target = get_target("cpu-torch")
    keys = space_ops(SPACE)[:24]
    real = latency_mod.interleaved_latency
    calls = {"n": 0}

    def crash_on_second_chunk(fns, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # 1: first chunk (with the call overhead), 2: second chunk
            raise KeyboardInterrupt
        return real(fns, *args, **kwargs)

    monkeypatch.setattr(profile_mod, "interleaved_latency", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        ensure_entries(target, LookupTable.open(target.fingerprint()), keys, progress=False)
    saved = LookupTable.open(target.fingerprint())
    assert len(saved) == profile_mod.CHUNK
    monkeypatch.setattr(profile_mod, "interleaved_latency", real)
    assert ensure_entries(target, saved, keys, progress=False) == len(keys) - profile_mod.CHUNK


def test_interleaved_latency_is_the_median_of_per_pass_medians(monkeypatch):
    """Every function is timed once per pass; its result is the median of its per-pass medians."""
    medians = iter([5.0, 9.0, 4.0, 3.0, 6.0, 8.0])
    seen: dict = {}

    class Stats:
        def __init__(self, value: float):
            self.p50_ms = value

    def scripted(fn, _warmup, _repeats):
        value = next(medians)
        seen.setdefault(fn, []).append(value)
        return Stats(value)

    monkeypatch.setattr(latency_mod, "time_runs", scripted)
    fns = [lambda: None, lambda: None]
    out = latency_mod.interleaved_latency(fns, latency_mod.Timing(passes=3, min_span_s=0.0))
    assert [len(seen[f]) for f in fns] == [3, 3]
    assert out == [sorted(seen[fns[0]])[1], sorted(seen[fns[1]])[1]]


def test_pruned_plans_keep_residual_blocks_consistent():
    plan = SearchSpace(32).plan(SearchSpace(32).random_arch(random.Random(3)))
    pruned = random_pruned(plan, random.Random(0))
    model = MobileNet(pruned)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert all(b.out_channels % 8 == 0 and b.out_channels <= o.out_channels
               for b, o in zip(pruned.blocks, plan.blocks, strict=True))
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in MobileNet(plan).parameters())


def test_summary_statistics():
    rows = [ValidationRow("a", "random", 32, 1.05, 1.0, 1.1), ValidationRow("b", "random", 32, 1.9, 2.0, 2.2),
            ValidationRow("c", "random", 32, 3.6, 3.0, 3.3)]
    s = summarize(rows)
    assert s["mape_pct"] == pytest.approx((5 + 5 + 20) / 3)
    assert s["mape_pct_with_stored_scale"] == pytest.approx(10)
    assert s["within_10pct"] == pytest.approx(2 / 3) and s["max_abs_error_pct"] == pytest.approx(20)
    assert s["spearman"] == pytest.approx(1.0)


@pytest.mark.parametrize(("target", "message"), [
    ("tpu", "unknown target 'tpu'"), ("missing.yaml", "does not exist"), ("bitfusion", "analytic"),
])
def test_profile_errors(target, message, capsys):
    assert main(["profile", "--target", target]) == 2
    assert message in capsys.readouterr().err


def test_malformed_accelerator_file(tmp_path):
    bad = tmp_path / "accel.yaml"
    bad.write_text("name: x\nfrequency_hz: -5\n")
    with pytest.raises(TightfitError, match=str(bad)):
        get_target(str(bad))


def test_profile_command_builds_and_validates(capsys):
    threads_before = torch.get_num_threads()
    args = ["profile", "--target", "cpu-torch", "--resolution", "8", "--in-channels", "1", "--width", "0.35",
            "--validate", "3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    space = SearchSpace(8, 1, 10, width_mult=0.35)
    assert f'"entries": {len(space_ops(space))}' in out and '"mape_pct"' in out and '"spearman"' in out
    assert torch.get_num_threads() == threads_before  # timing at 1 thread does not leak into the process


def test_energy_uses_rapl_when_readable_and_a_stated_model_otherwise(tmp_path, monkeypatch):
    from tightfit.hardware import energy

    counter, top = tmp_path / "energy_uj", tmp_path / "max_energy_range_uj"
    counter.write_text("999000")
    top.write_text("999999")
    monkeypatch.setattr(energy, "RAPL", counter)
    monkeypatch.setattr(energy, "RAPL_RANGE", top)

    def run_once():  # each call "uses" 3000 uJ, wrapping the counter on the first
        counter.write_text(str((int(counter.read_text()) + 3000) % 1_000_000))

    measured = energy.cpu_energy(run_once, latency_ms=1.0, threads=1)
    assert measured.mj == pytest.approx(3.0) and measured.source.startswith("measured: RAPL")
    monkeypatch.setattr(energy, "RAPL", tmp_path / "absent")
    modelled = energy.cpu_energy(run_once, latency_ms=2.0, threads=2)
    assert modelled.mj == pytest.approx(2.0 * energy.WATTS_PER_ACTIVE_CORE * 2)
    assert modelled.source.startswith("modelled")


def test_mixed_precision_prediction_on_cpu_ort_lies_between_uniform_ones():
    cost = CostModel(get_target("cpu-ort"), progress=False)
    plan = _plan(4)
    n = len(plan_ops(plan))
    fp32, int8 = cost.predict_latency(plan, 32), cost.predict_latency(plan, 8)
    assert cost.predict_latency(plan, [32] * n) == pytest.approx(fp32)
    assert cost.predict_latency(plan, [8] * n) == pytest.approx(int8)
    mixed = [8] * (n // 2) + [32] * (n - n // 2)
    table = cost.table
    keys = [replace(k, w_bits=b, a_bits=b) for k, b in zip(plan_ops(plan), mixed, strict=True)]
    expected = table.overhead_ms + sum(table.entries[k] for k in keys)
    assert cost.predict_latency(plan, mixed) == pytest.approx(expected)
    c = cost.of_plan(plan, mixed)
    assert cost.of_plan(plan, 8).bitops < c.bitops < cost.of_plan(plan, 32).bitops
    with pytest.raises(TightfitError, match="precisions given"):
        cost.predict_latency(plan, [8, 32])


def test_per_layer_policy_on_an_analytic_target():
    model = MobileNet(_plan(5))
    cost = CostModel(get_target("bitfusion"))
    uniform = cost.of_policy(model, (1, 8, 8), (8, 8))
    depthwise_4bit = cost.of_policy(model, (1, 8, 8), lambda name: (4, 4) if ".conv.1." in name else (8, 8))
    assert depthwise_4bit.latency_ms < uniform.latency_ms and depthwise_4bit.energy_mj < uniform.energy_mj
    with pytest.raises(TightfitError, match="bit-flexible"):
        CostModel(get_target("cpu-torch")).of_policy(model, (1, 8, 8), (8, 8))


def test_calibration_fits_the_scale_with_which_entries_add_up_to_networks(monkeypatch):
    """Networks measured 1.25x the sum of their entries (net of the call overhead) give a scale of 1.25,
    which then multiplies every entry of that precision in predictions."""
    target = get_target("cpu-ort")
    table = LookupTable.open(target.fingerprint())
    real = profile_mod.interleaved_latency

    def networks_run_slower(fns, timing=None):
        if len(fns) != profile_mod.CALIBRATION_NETWORKS:
            return real(fns, timing)
        rng = random.Random(profile_mod.CALIBRATION_SEED)
        plans = [SPACE.plan(SPACE.random_arch(rng)) for _ in fns]
        return [table.overhead_ms + 1.25 * sum(table.entries[k] for k in plan_ops(p)) for p in plans]

    monkeypatch.setattr(profile_mod, "interleaved_latency", networks_run_slower)
    assert profile_mod.calibrate(target, table, SPACE, 32, progress=False) == pytest.approx(1.25)
    keys = plan_ops(_plan(4))
    ensure_entries(target, table, keys, progress=False)
    assert table.predict(keys) == pytest.approx(table.overhead_ms + 1.25 * sum(table.entries[k] for k in keys))
    assert LookupTable.open(target.fingerprint()).scales == {32: pytest.approx(1.25)}  # saved with the table
    plans = profile_mod.calibration_plans(SPACE)
    sums = [sum(table.entries[k] for k in plan_ops(p)) for p in plans]
    session = [table.overhead_ms + 2.0 * x for x in sums]  # a slower moment, fitted for one run only
    assert profile_mod.fit_scale(table, plans, session, 32, save=False) == pytest.approx(2.0)
    assert LookupTable.open(target.fingerprint()).scales == {32: pytest.approx(1.25)}
    cost = CostModel(target, progress=False)
    profile_mod.fit_scale(cost.table, plans, session, 32, save=False)
    cost.profile_space(SPACE, (32,))  # extends the open table: the session's refit is what it prices with
    assert cost.table.scales[32] == pytest.approx(2.0)
