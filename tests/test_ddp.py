"""Two CPU processes under torchrun train the same replicas (DDP, gloo): identical final weights."""

import hashlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent('''
    import hashlib, os, sys, torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[2])
    from train_fixtures import BlurHalves, tiny_config
    from dbd_core.nets import build_model
    from dbd_core.train.loop import TrainJob, run_training
    torch.manual_seed(int(os.environ["RANK"]))  # different starts: DDP must broadcast rank 0's weights
    model = build_model("tiny", width=8)
    cfg = tiny_config(steps=6, loss={"adv": 0.05})
    events = list(run_training(TrainJob(cfg, run_dir=sys.argv[1], model=model, train_dataset=BlurHalves(16))))
    assert events[-1]["type"] == "done", events[-1]
    assert events[0]["world_size"] == 2
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode()); h.update(v.detach().contiguous().numpy().tobytes())
    open(os.path.join(sys.argv[1], "hash%s" % os.environ["RANK"]), "w").write(h.hexdigest())
''')


@pytest.mark.timeout(120)
def test_two_process_ddp_replicas_stay_identical(tmp_path):
    script = tmp_path / "ddp_job.py"
    script.write_text(SCRIPT)
    tests_dir = os.path.dirname(__file__)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [os.path.dirname(tests_dir), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           str(script), str(tmp_path), tests_dir]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=110)
    assert r.returncode == 0, r.stderr[-3000:]
    h0, h1 = (tmp_path / "hash0").read_text(), (tmp_path / "hash1").read_text()
    assert h0 == h1
    # rank 0 alone wrote the run's files
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "checkpoint.pt").is_file()
