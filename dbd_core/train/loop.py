"""THE training loop. The CLI (progress bar + JSONL log) and the GUI worker both iterate it.

``run_training(job, cancel)`` is a generator of events, plain JSON-serialisable dicts with a "type":
  start       kind, run_dir, device, world_size, start_step, total_steps, n_train, n_val
  step        step, epoch, losses {term: value}, lr, samples_per_s, eta_s, elapsed_s
  val         step, metrics {mae, f_beta, ..., val_loss}, best (bool); the weight average ([swa]) is
              validated after the last step with phase "mean of N snapshots ..." and swa = N
  checkpoint  step, path
  cancelled   step, checkpoint
  error       step, message            (non-finite loss, bad input: the run stops, files stay good)
  done        step, summary {final metrics, best, wall_s, output, checkpoint, stopped_early, swa}
The cancel flag (a threading.Event or any callable returning bool) is checked between steps. On cancel
a checkpoint is written in the run folder, the output weights file is not touched.
"""

from __future__ import annotations

import copy
import math
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from dbd_core.errors import DBDError
from dbd_core.train import checkpoint as ckpt
from dbd_core.train import ddp
from dbd_core.train.config import config_name, naming, resolve_path, to_plain
from dbd_core.train.data import set_epoch
from dbd_core.train.objectives import NonFiniteLoss, SupervisedObjective
from dbd_core.train.swa import WeightAverage, recompute_bn
from dbd_core.train.validate import _collate, evaluate

Event = dict


@dataclass
class TrainJob:
    config: dict
    run_dir: str | Path | None = None          # default: <run.out_dir>/<run.name>
    output: str | Path | None = None           # final weights file; default <run_dir>/model.pt; "" = none
    resume: bool = False
    device: str | None = None                  # overrides run.device
    threads: int | None = None                 # overrides run.threads
    model: nn.Module | None = None             # start from this network instead of building one
    teacher: nn.Module | None = None           # student runs: the frozen teacher
    train_dataset: Dataset | None = None       # overrides [data] (tests, fine-tuning)
    val_dataset: Dataset | None = None
    card: dict = field(default_factory=dict)   # extra fields for the output weights' card


def _cancel_fn(cancel) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_lambda(cfg: dict) -> Callable[[int], float]:
    """Linear warmup, then cosine or poly decay to ``min_lr_ratio`` of the base rate at ``run.steps``."""
    o, total = cfg["optim"], cfg["run"]["steps"]
    warm, floor = o["warmup_steps"], o["min_lr_ratio"]

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if o["schedule"] == "constant":
            return 1.0
        t = min(1.0, (step - warm) / max(1, total - warm))
        decay = 0.5 * (1 + math.cos(math.pi * t)) if o["schedule"] == "cosine" else (1 - t) ** o["poly_power"]
        return floor + (1 - floor) * decay

    return f


def apply_lr(optimizers: dict, base_lrs: dict, factor: float) -> None:
    """Set every optimizer's rate to base x factor. The schedule is a pure function of the global step,
    set before each step, instead of torch LR schedulers: a discriminator's optimizer does not step
    before ``loss.adv_start`` (nor D2 on steps without a labelled photo), and a scheduler stepped past an
    idle optimizer warns and drifts from the step count."""
    for k, o in optimizers.items():
        for g, base in zip(o.param_groups, base_lrs[k]):
            g["lr"] = base * factor


def _build_model(cfg: dict, job: TrainJob) -> nn.Module:
    from dbd_core.nets import build_model

    if job.model is not None:
        return job.model
    m = cfg["model"]
    if m["init"]:
        from dbd_core.weights import grow_from, load_pinned

        init = resolve_path(m["init"], cfg)
        with naming(cfg, "model.init"):
            if m["kwargs"]:  # start from the file's weights, with the layers these settings add
                return grow_from(init, m["init_sha256"], "model.init_sha256", m["kwargs"])
            model, _ = load_pinned(init, m["init_sha256"], "model.init_sha256")
            return model
    try:
        return build_model(m["name"], **m["kwargs"])
    except KeyError as e:
        raise DBDError(f"{config_name(cfg)}model.name: {e.args[0]}") from None
    except TypeError as e:
        raise DBDError(f"{config_name(cfg)}model.kwargs do not fit network {m['name']!r}: {e}") from None


def _score(metrics: dict, key: str, first: dict | None = None) -> float:
    """Validation metrics -> one number, lower is better (val.score; val_loss falls back to -F-beta
    when the objective gives no loss). "release" is the release rule (dbd_core.release) applied against
    the run's first validation: the MAE, but only where F-beta and log-loss stay within the rule's
    bounds of where the run started; elsewhere +inf, so such weights are never kept."""
    if key == "val_loss":
        return metrics.get("val_loss", -metrics.get("f_beta", 0.0))
    if key == "release":
        from dbd_core.release import within_bounds

        if first is not None and not within_bounds(metrics, first).ship:
            return float("inf")
        return float(metrics["mae"])
    value = float(metrics[key])
    return value if key in ("mae", "nll") else -value


def _freeze_bn_statistics(model: nn.Module) -> None:
    """Keep every BatchNorm in eval mode, whatever ``model.train()`` says: normalise with the running
    statistics and never update them. Fine-tuning on a handful of photos in batches of 4 would
    otherwise replace statistics learnt on thousands of images by those of a few crops (their
    scale and shift stay trainable). The model keeps this after the run: a network passed in by
    the caller (``TrainJob.model``) stays so; runs that load their own (CLI, studio) are unaffected."""
    import types

    def stay_eval(self, mode: bool = True):
        return nn.Module.train(self, False)

    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train = types.MethodType(stay_eval, m)
            m.eval()


def _freeze(model: nn.Module, prefixes: list[str], levels: int = 0) -> int:
    """Freeze parameters by name prefix and (``levels`` > 0) the encoder's stem and first levels, whose
    batch-norm statistics then also stay fixed (the backbone keeps frozen levels in eval mode)."""
    enc = getattr(model, "encoder", None)
    if levels:
        if not hasattr(enc, "freeze_levels"):
            raise DBDError(f"model.freeze_levels: network {getattr(model, 'arch_name', '?')!r} has no "
                           "EfficientNet encoder to freeze")
        if levels > enc.levels:
            raise DBDError(f"model.freeze_levels: {levels} is more than the encoder's {enc.levels} levels")
        if levels > enc.freeze_levels:
            enc.freeze_levels = levels
            enc._apply_freeze()
    n = 0
    for name, p in model.named_parameters():
        if any(name.startswith(pre) for pre in prefixes):
            p.requires_grad_(False)
        n += 0 if p.requires_grad else p.numel()
    return n


def _datasets(cfg: dict, job: TrainJob):
    from dbd_core.train.data import build_dataset, train_and_validation

    train = job.train_dataset if job.train_dataset is not None else build_dataset(cfg)
    if job.val_dataset is not None:
        return train, job.val_dataset
    problems = getattr(train, "problems", [])
    train, val = train_and_validation(cfg, train)
    for part in (train, val):  # the split parts carry the whole dataset's unreadable samples, to be named
        if part is not None and not getattr(part, "problems", None):
            try:
                part.problems = problems
            except AttributeError:
                pass
    return train, val


def _held_out_photos(val_set) -> list[str]:
    """The source photos of a synthetic validation set of its own (val.holdout = "photos"), for the run's
    record; [] when validation is a subset of the training items."""
    src = getattr(val_set, "source", None)
    return [src.relative_name(i) for i in range(len(src))] if src is not None else []


def epoch_batches(n_items: int, batch_size: int, seed: int, epoch: int, ctx: ddp.DistContext) -> list[list[int]]:
    """This rank's batches of one epoch: a pure function of (seed, epoch), so a resumed run sees the
    same order. DistributedSampler gives each rank its shard (one rank: a plain permutation)."""
    sampler = DistributedSampler(range(n_items), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    idx = list(sampler)
    return [idx[i:i + batch_size] for i in range(0, len(idx) - batch_size + 1, batch_size)]


def run_training(job: TrainJob, cancel=None) -> Iterator[Event]:
    """Run (or resume) a training job, yielding events; see the module docstring."""
    try:
        yield from _run(job, _cancel_fn(cancel))
    except DBDError as e:
        yield {"type": "error", "step": None, "message": str(e)}


def _run(job: TrainJob, cancelled: Callable[[], bool]) -> Iterator[Event]:
    cfg = job.config
    run = cfg["run"]
    t0 = time.perf_counter()
    ctx = ddp.init_from_env(job.device or run["device"])
    threads = job.threads if job.threads is not None else run["threads"]
    if threads:
        torch.set_num_threads(threads)
    seed_everything(run["seed"])
    run_dir = Path(job.run_dir or Path(resolve_path(run["out_dir"], cfg)) / run["name"])
    output = Path(job.output) if job.output else (None if job.output == "" else run_dir / "model.pt")
    ckpt_path = run_dir / ckpt.CHECKPOINT_NAME

    model = _build_model(cfg, job).to(ctx.device)
    frozen = _freeze(model, cfg["model"]["freeze"], cfg["model"].get("freeze_levels", 0))
    if cfg["model"].get("freeze_bn"):
        _freeze_bn_statistics(model)
    train_set, val_set = _datasets(cfg, job)
    bs = cfg["data"]["batch_size"]
    per_epoch = len(epoch_batches(len(train_set), bs, run["seed"], 0, ctx))
    if per_epoch == 0:
        raise DBDError(f"the training data has {len(train_set)} items: too few for batch size {bs} "
                       f"on {ctx.world_size} process(es)")
    objective = _objective(cfg, model, job, ctx)
    optimizers = objective.optimizers()
    base_lrs = {k: [g["lr"] for g in o.param_groups] for k, o in optimizers.items()}
    lr_at = lr_lambda(cfg)

    # Early stopping / best-weights state; checkpointed so a resumed run stops (and restores) exactly
    # where an uninterrupted one would.
    vcfg = cfg["val"]
    best = {"score": None, "step": None, "metrics": None, "state": None}
    es = {"bad_vals": 0, "stopped_early": False, "last_metrics": None, "last_val_step": None,
          "first_metrics": None}

    scfg = cfg["swa"]
    if scfg["start"] and (val_set is None or not scfg["every"] or not vcfg["restore_best"]):
        raise DBDError("swa.start needs validation (val.fraction or a validation set), val.restore_best = true "
                       "and swa.every > 0: the weight average is kept only if it validates better")
    average = WeightAverage()

    step = 0
    if job.resume and ckpt_path.is_file():
        payload = ckpt.load_checkpoint(ckpt_path, map_location=ctx.device)
        # Old checkpoints carry LambdaLR states: the rate is recomputed from the step, so they are ignored.
        step = ckpt.restore(payload, modules=objective.state_modules(), optimizers=optimizers,
                            schedulers={}, path=ckpt_path)
        saved = (payload.get("extra") or {}).get("early_stopping")  # absent in checkpoints before it existed
        if saved:
            best.update(score=saved["best_score"], step=saved["best_step"], metrics=saved["best_metrics"],
                        state=saved.get("best_state"))
            es.update(bad_vals=saved["bad_vals"], stopped_early=saved["stopped_early"],
                      last_metrics=saved["last_metrics"], last_val_step=saved.get("last_val_step"),
                      first_metrics=saved.get("first_metrics"))
        average.load_state_dict((payload.get("extra") or {}).get("swa"))
    elif job.resume:
        raise DBDError(f"{ckpt_path}: no checkpoint to resume from")
    total = run["steps"]
    if step > total:  # an earlier --steps went further than the recipe: resuming would not train, only re-save
        raise DBDError(f"{ckpt_path}: the checkpoint is at step {step}, past run.steps {total}; "
                       f"give --steps N (N > {step}) to train further")

    def save_ckpt() -> Path:
        ctx.sync_buffers(objective.state_modules().values())
        if ctx.is_main:
            early = {"best_score": best["score"], "best_step": best["step"], "best_metrics": best["metrics"],
                     "best_state": best["state"], **es}
            ckpt.save_checkpoint(ckpt_path, step=step, modules=objective.state_modules(),
                                 optimizers=optimizers, schedulers={}, config=to_plain(cfg),
                                 extra={"world_size": ctx.world_size, "early_stopping": early,
                                        "swa": average.state_dict()})
        ctx.barrier()
        return ckpt_path

    # Samples of a user dataset that could not be read: named (once; the two parts may share one list), left out.
    for message in dict.fromkeys([*getattr(train_set, "problems", ()), *getattr(val_set, "problems", ())]):
        yield {"type": "skipped", "step": None, "message": message}
    yield {"type": "start", "kind": run["kind"], "run_dir": str(run_dir), "device": str(ctx.device),
           "world_size": ctx.world_size, "rank": ctx.rank, "start_step": step, "total_steps": total,
           "n_train": len(train_set), "n_val": len(val_set) if val_set is not None else 0,
           "frozen_parameters": frozen, "steps_per_epoch": per_epoch, "val_photos": _held_out_photos(val_set)}

    def validate() -> Event:
        ctx.sync_buffers([model])
        metrics = evaluate(model, val_set, ctx.device, batch_size=bs, max_batches=vcfg["batches"],
                           loss_fn=objective.val_loss)
        if es["first_metrics"] is None:
            es["first_metrics"] = metrics
        score = _score(metrics, vcfg["score"], es["first_metrics"])  # lower is better
        improved = best["score"] is None or score < best["score"]
        if improved:
            best.update(score=score, step=step, metrics=metrics,
                        state=copy.deepcopy(model.state_dict()) if vcfg["restore_best"] else None)
            es["bad_vals"] = 0
        else:
            es["bad_vals"] += 1
        es["last_metrics"], es["last_val_step"] = metrics, step
        return {"type": "val", "step": step, "metrics": metrics, "best": improved}

    if val_set is not None and step == 0 and vcfg["every"]:
        yield validate()  # the starting point, so "before" is on record

    objective.train()
    batches, batches_epoch, last_terms = None, -1, None
    t_window, n_window = time.perf_counter(), 0
    while step < total and not es["stopped_early"]:
        if ctx.any(cancelled()):
            path = save_ckpt()
            yield {"type": "cancelled", "step": step, "checkpoint": str(path)}
            return
        epoch, pos = divmod(step, per_epoch)
        if epoch != batches_epoch:
            set_epoch(train_set, epoch)
            loader = _loader(train_set, epoch_batches(len(train_set), bs, run["seed"], epoch, ctx),
                             cfg, epoch, pos)
            batches, batches_epoch = iter(loader), epoch
        batch = {k: (v.to(ctx.device) if torch.is_tensor(v) else v) for k, v in next(batches).items()}
        apply_lr(optimizers, base_lrs, lr_at(step))
        lr_now = optimizers["model"].param_groups[0]["lr"]
        try:
            terms = objective.train_step(batch, step)
            last_terms = terms
        except NonFiniteLoss as e:
            last = f"; the last good checkpoint is {ckpt_path}" if ckpt_path.is_file() else \
                "; no checkpoint was written before it"
            yield {"type": "error", "step": step + 1,
                   "message": f"step {step + 1}: {e}: training diverged and was stopped (lower optim.lr?)"
                              f"{last}"}
            return
        step += 1
        if scfg["start"] and step >= scfg["start"] and (step - scfg["start"]) % scfg["every"] == 0:
            average.update(model)
        n_window += len(batch["image"]) * ctx.world_size
        if step % max(1, run["log_every"]) == 0 or step == total:
            now = time.perf_counter()
            rate = n_window / max(now - t_window, 1e-9)
            eta = (total - step) * bs * ctx.world_size / max(rate, 1e-9)
            yield {"type": "step", "step": step, "epoch": epoch, "total_steps": total, "losses": terms,
                   "lr": lr_now, "samples_per_s": rate,
                   "eta_s": eta, "elapsed_s": now - t0}
            t_window, n_window = now, 0
        if run["checkpoint_every"] and step % run["checkpoint_every"] == 0 and step < total:
            yield {"type": "checkpoint", "step": step, "path": str(save_ckpt())}
        if val_set is not None and vcfg["every"] and step % vcfg["every"] == 0 and step < total:
            yield validate()
            if vcfg["patience"] and es["bad_vals"] >= vcfg["patience"]:
                es["stopped_early"] = True

    ctx.sync_buffers(objective.state_modules().values())
    if val_set is not None and es.get("last_val_step") != step:  # an early stop has just validated
        yield validate()
    # The checkpoint keeps the last step's weights (and the best ones inside it): restoring the best first
    # would overwrite the only copy of where the run got to, and a run continued with more steps must go
    # on from there. Only the output file gets the best validated weights.
    path = save_ckpt()
    yield {"type": "checkpoint", "step": step, "path": str(path)}
    swa = None
    if average.n >= 2:
        last_val = es["last_metrics"], es["last_val_step"], es["bad_vals"]
        ev = _validate_average(average, model, train_set, cfg, ctx, validate)
        es["last_metrics"], es["last_val_step"], es["bad_vals"] = last_val  # "last" stays the last step's
        yield ev
        swa = {"snapshots": average.n, "metrics": ev["metrics"], "kept": ev["best"]}
    if best["state"] is not None and best["step"] != step:
        model.load_state_dict(best["state"])  # early stopping: keep the best validated weights
    if output is not None and ctx.is_main:
        from dbd_core.weights import save_model

        averaged = {"weights": f"mean of {swa['snapshots']} snapshots (swa)"} if swa and swa["kept"] else {}
        card = {"kind": run["kind"], "recipe": to_plain(cfg), "steps": step, "seed": run["seed"], **averaged,
                "world_size": ctx.world_size, "metrics": best["metrics"] if vcfg["restore_best"] else es["last_metrics"],
                **job.card}
        save_model(output, model, card, half=cfg["model"]["save_half"])
    ctx.barrier()
    yield {"type": "done", "step": step, "summary": {
        "kind": run["kind"], "steps": step, "wall_s": time.perf_counter() - t0, "output": str(output) if output else None,
        "checkpoint": str(path), "metrics": es["last_metrics"], "best_step": best["step"],
        "best_metrics": best["metrics"], "stopped_early": es["stopped_early"], "final_losses": last_terms,
        "swa": swa}}


def _validate_average(average: WeightAverage, model: nn.Module, train_set, cfg: dict, ctx, validate) -> Event:
    """Validate the run's weight average as one more candidate. The model holds the average while it is
    scored (so the objective's validation loss sees it); if it is the best so far it stays there and is
    what the output file gets, else the last step's weights go back. Returns the val event."""
    last = copy.deepcopy(model.state_dict())
    average.copy_to(model)
    scfg, bs = cfg["swa"], cfg["data"]["batch_size"]
    if scfg["bn_batches"]:
        order = epoch_batches(len(train_set), bs, cfg["run"]["seed"] + 7919, 0, ctx)[: scfg["bn_batches"]]
        images = (b["image"].to(ctx.device) for b in _loader(train_set, order, cfg, 0, 0))
        recompute_bn(model, images)
    ev = validate()  # updates the best state when the average wins
    first = scfg["start"]
    ev["phase"] = (f"mean of {average.n} snapshots, steps {first}-{first + (average.n - 1) * scfg['every']}")
    ev["swa"] = average.n
    if not ev["best"]:
        model.load_state_dict(last)
    return ev


def _loader(dataset, batches: list[list[int]], cfg: dict, epoch: int, pos: int) -> DataLoader:
    # A dedicated generator: creating the iterator must not draw from the global RNG, or a resumed
    # run (which creates it mid-epoch) would diverge from an uninterrupted one.
    g = torch.Generator().manual_seed(cfg["run"]["seed"] * 100003 + epoch)
    workers = cfg["data"]["workers"]
    # Spawned, not forked: a fork taken after OpenCV or OpenMP started their thread pools in this
    # process (validation renders and runs the net first) deadlocks the worker's first cv2 call.
    context = "spawn" if workers > 0 else None
    return DataLoader(dataset, batch_sampler=batches[pos:], num_workers=workers,
                      collate_fn=_collate, generator=g, persistent_workers=False,
                      multiprocessing_context=context)


def _objective(cfg: dict, model: nn.Module, job: TrainJob, ctx: ddp.DistContext):
    def build_d():
        from dbd_core.nets import build_model

        d = cfg["discriminator"]
        try:
            return build_model(d["name"], **d["kwargs"]).to(ctx.device)
        except KeyError as e:
            raise DBDError(f"discriminator.name: {e.args[0]}") from None

    kw = dict(build_d=build_d, wrap=ctx.wrap, any_rank=ctx.any if ctx.enabled else None)
    if cfg["run"]["kind"] == "student":
        if job.teacher is None:
            raise DBDError("a student run needs a teacher (dbd train student --teacher WEIGHTS)")
        from dbd_core.train.distill import StudentObjective

        return StudentObjective(cfg, model, job.teacher.to(ctx.device), **kw)
    return SupervisedObjective(cfg, model, **kw)
