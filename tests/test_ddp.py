"""Two CPU processes under torchrun train the same replicas (DDP, gloo): identical final weights; a
student run where only one rank holds labelled photos (so only it has D2 items) does not hang."""

import os
import signal
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

    def digest(m):
        h = hashlib.sha256()
        for k, v in m.state_dict().items():
            h.update(k.encode()); h.update(v.detach().contiguous().numpy().tobytes())
        return h.hexdigest()

    rank = os.environ["RANK"]
    open(os.path.join(sys.argv[1], "hash%s" % rank), "w").write(digest(model))

    # Student with D2 (student map vs. ground truth, labelled items only): rank 0's photos all have masks,
    # rank 1's none, so rank 1 has no D2 items in any batch. Both ranks must still take D2's collective
    # step together or the run hangs.
    torch.manual_seed(0)
    teacher = build_model("tiny", width=8)
    student = build_model("tiny", width=8)
    scfg = tiny_config("student", steps=4, loss={"adv": 0.05, "consistency": 1.0, "adv_start": 0})
    data = BlurHalves(8, seed=1, unlabelled=rank == "1")
    sdir = os.path.join(sys.argv[1], "student")
    ev = list(run_training(TrainJob(scfg, run_dir=sdir, model=student, teacher=teacher, train_dataset=data)))
    assert ev[-1]["type"] == "done", ev[-1]
    steps = [e for e in ev if e["type"] == "step"]
    assert all(("d2" in e["losses"]) == (rank == "0") for e in steps), steps
    open(os.path.join(sys.argv[1], "student_hash%s" % rank), "w").write(digest(student))
''')


@pytest.mark.timeout(120)
def test_two_process_ddp_replicas_stay_identical_and_mixed_labels_do_not_hang(tmp_path):
    script = tmp_path / "ddp_job.py"
    script.write_text(SCRIPT)
    tests_dir = os.path.dirname(__file__)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [os.path.dirname(tests_dir), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           str(script), str(tmp_path), tests_dir]
    # Own session: on a hang the whole group (torchrun and both ranks) is killed, not just torchrun.
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        _, err = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        _, err = p.communicate()
        pytest.fail("DDP run hung (ranks out of step in a collective):\n" + err[-2000:])
    assert p.returncode == 0, err[-3000:]
    h0, h1 = (tmp_path / "hash0").read_text(), (tmp_path / "hash1").read_text()
    assert h0 == h1
    assert (tmp_path / "student_hash0").read_text() == (tmp_path / "student_hash1").read_text()
    # rank 0 alone wrote the run's files
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "checkpoint.pt").is_file()
