"""Two CPU processes under torchrun (gloo): identical parameters at the end, and a falling loss."""

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_process_ddp_training_agrees_and_learns(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 for r in ranks)
    assert ranks[0]["batches"] == ranks[1]["batches"]
    losses = [e["train_loss"] for e in ranks[0]["history"]]
    assert losses[-1] < losses[0] * 0.7, losses
    # metrics are all-reduced, so both ranks log the same global figures
    assert ranks[0]["history"][-1]["eval_acc"] == ranks[1]["history"][-1]["eval_acc"]

    w0, w1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert w0.keys() == w1.keys()
    for name in w0:
        assert torch.equal(w0[name], w1[name]), f"{name} differs between ranks"


def test_two_process_search_keeps_supernet_and_alphas_identical(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           str(tmp_path), "search"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0, w1 = load_file(tmp_path / "search0.safetensors"), load_file(tmp_path / "search1.safetensors")
    for name in w0:
        assert torch.equal(w0[name], w1[name]), f"{name} differs between ranks"
    alphas = [w0[k] for k in w0 if k.endswith(".alpha")]
    assert any(not torch.equal(a, torch.zeros_like(a)) for a in alphas)  # the architecture did move
    r0, r1 = (json.loads((tmp_path / f"search{r}.json").read_text()) for r in (0, 1))
    assert r0["arch"] == r1["arch"]


def test_the_run_command_itself_runs_under_torchrun(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "tightfit",
           "run", "--epochs", "1", "--search-warmup", "1", "--search-epochs", "1", "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "state.json").read_text())
    assert state["finished"] and [r["results"]["processes"] for r in state["completed"][:2]] == [2, 2]
    card = json.loads((out / "card.json").read_text())
    assert card["parity_max_abs_diff"] < 1e-4
