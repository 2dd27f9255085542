"""Distributed training: the shape of pytorch/examples' ddp-tutorial-series multinode.py
(a small ``main()``, a ``Trainer`` with ``_run_epoch``, ``_save_snapshot``,
``_load_snapshot``), with its known faults fixed: it resumes at the *next* epoch, saves
optimizer, scheduler and history, only global rank 0 writes, and checkpoints are written
atomically. A SIGTERM (Azure preempting a low-priority node) finishes the current step,
checkpoints and exits; the requeued job resumes from there.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from . import data as data_mod
from .artifacts import CHECKPOINT_FILE, atomic_torch_save, load_checkpoint, save_model_dir
from .files import atomic_write_text, remove_stale_temps
from .meta import META_FILE, MODEL_FILE, ModelCard
from .devices import init_distributed, leave, resolve_precision, setup_device
from .errors import TrainError
from .launcher import DistEnv, detect
from .models import build_model, is_convolutional
from .options import parse_args, str2bool
from .pace import Pace, RankPace, straggler_line, stragglers
from .sampling import EpochSampler, Seeded, seed_everything
from .tracking import BackgroundTracker

__all__ = ["Parts", "Trainer", "build_for_task", "main", "leave", "parse_args", "str2bool"]

PACE_EVERY_S = 10.0  # each rank prints its own pace at most this often (and after the last epoch)
EXIT_PREEMPTED = 143  # 128 + SIGTERM, what a process killed by SIGTERM would report


# ------------------------------------------------------------------ the trainer

@dataclass
class Parts:
    """What a Trainer trains with, built for its task by ``build_for_task`` (or by a caller with
    other choices: tests, a notebook): the model on its device, its optimizer and scheduler, the
    loss, and the loaders with their samplers."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a torch LR scheduler, or None
    loss_fn: nn.Module
    train_loader: DataLoader
    val_loader: DataLoader
    train_sampler: EpochSampler
    val_sampler: EpochSampler
    normalize: tuple[torch.Tensor, torch.Tensor] | None = None  # uint8 batches: (mean, std) x 255 on the device
    channels_last: bool = False


def build_for_task(args: argparse.Namespace, env: DistEnv, task: data_mod.TaskData, device: torch.device) -> Parts:
    """The per-task choices: a ResNet (channels-last) with SGD and StepLR for images, the MLP with
    Adam at the learning rate times the world size for penguins (as the lab's Horovod version);
    DataLoader workers from the CPUs; augmentation seeded per sample for images."""
    seed_everything(args.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    conv = is_convolutional(args.arch)
    model = build_model(args.arch, len(task.classes), args.pretrained, args.freeze_backbone,
                        inputs=task.input_shape[0]).to(device)
    if conv:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    scheduler = None
    if args.task == "penguins":
        # Fused: one kernel per step for all parameters, where the default loops over them in Python
        # (0.33 s against 0.58 s for 900 steps of a small MLP here).
        optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=args.learning_rate * env.world_size,
                                                            fused=device.type in ("cpu", "cuda"))
        if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
            # The MLP's operations are far below the size PyTorch splits across threads, and its
            # OpenMP threads spin-wait between them: beside another busy process (the tracking
            # process, another rank) that cost 2-8x in samples/s on 2 cores here. One thread.
            torch.set_num_threads(1)
    else:
        optimizer = torch.optim.SGD(params, lr=args.learning_rate, momentum=args.momentum)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.step_size, gamma=args.gamma)
    normalize = None
    if getattr(task.train, "normalized", True) is False:  # cached uint8 images: normalise on the device
        mean = torch.tensor(task.preprocessing["mean"], device=device).view(1, 3, 1, 1) * 255
        std = torch.tensor(task.preprocessing["std"], device=device).view(1, 3, 1, 1) * 255
        normalize = (mean, std)
    workers = args.num_workers
    if workers is None:
        cached = type(task.train).__name__ == "CachedImages"
        workers = data_mod.default_workers(env.local_world_size, cached) if args.task == "images" else 0
    train_sampler = EpochSampler(len(task.train), env.rank, env.world_size, args.seed, shuffle=True, pad=True)
    val_sampler = EpochSampler(len(task.val), env.rank, env.world_size, args.seed, shuffle=False, pad=False)
    loader_args = dict(batch_size=args.batch_size, num_workers=workers, pin_memory=device.type == "cuda",
                       persistent_workers=workers > 0)
    train_loader = DataLoader(Seeded(task.train, args.seed, args.task == "images"), sampler=train_sampler,
                              **loader_args)
    val_loader = DataLoader(Seeded(task.val, args.seed, False), sampler=val_sampler, **loader_args)
    return Parts(model, optimizer, scheduler, nn.CrossEntropyLoss(), train_loader, val_loader, train_sampler,
                 val_sampler, normalize, channels_last=conv)


class Trainer:
    """Trains ``parts`` for ``args.epochs``: resumes from the checkpoint, wraps the model in DDP
    when distributed, stops cleanly on SIGTERM. It builds nothing itself (see build_for_task)."""

    def __init__(self, args: argparse.Namespace, env: DistEnv, task: data_mod.TaskData, device: torch.device,
                 parts: Parts):
        self.args, self.env, self.task, self.device = args, env, task, device
        self.autocast_dtype = resolve_precision(args.precision, device)
        self.conv = parts.channels_last
        self.stop_requested = False
        self.stop_every = 1  # steps between SIGTERM checks across ranks; tuned after each epoch
        self.stop_after_epoch = False  # a SIGTERM agreed on at the end of an epoch
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0
        self.skip_batches = 0
        self.mlflow_run_id: str | None = None
        self.checkpoint = args.checkpoint_dir / CHECKPOINT_FILE
        self.model = parts.model
        self.optimizer, self.scheduler, self.loss_fn = parts.optimizer, parts.scheduler, parts.loss_fn
        self.normalize = parts.normalize
        self.train_loader, self.val_loader = parts.train_loader, parts.val_loader
        self.train_sampler, self.val_sampler = parts.train_sampler, parts.val_sampler

        self._remove_stale_temps()
        snap = load_checkpoint(self.checkpoint, args.arch, args.task)
        if snap is not None:
            self._load_snapshot(snap)
        if env.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
            self._settle_buckets()
        self.pace = Pace(parts.model, device, hooks=not args.compile)
        self.pace_printed = float("-inf")
        if args.compile:
            self.model = torch.compile(self.model)

    def _settle_buckets(self) -> None:
        """One forward and backward pass of zeros, before the first step, so that every step uses
        the gradient buckets DDP rebuilds after its first backward (in the order the gradients
        became ready). Without it the first step of each start used the initial layout instead, and
        with more than two ranks gloo sums a parameter's gradient in another order when it sits
        elsewhere in the bucket: a job resumed from its checkpoint drifted from an uninterrupted run
        in the last bits. Eval mode (no BatchNorm statistics move), zero gradients, no step."""
        shape = [1, *self.task.input_shape]
        x = torch.zeros(shape, device=self.device)
        if self.conv:
            x = x.contiguous(memory_format=torch.channels_last)
        was_training = self.model.training
        self.model.eval()
        with self._autocast():
            out = self.model(x)
        (out.float().sum() * 0).backward()
        self.optimizer.zero_grad(set_to_none=True)
        self.model.train(was_training)

    @property
    def raw_model(self) -> nn.Module:
        model = self.model
        model = getattr(model, "_orig_mod", model)
        return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model

    # -------------------------------------------------------------- steps
    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.device, non_blocking=True)
        if self.normalize is not None and x.dtype == torch.uint8:
            mean, std = self.normalize
            x = (x.float() - mean) / std
        if self.conv:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=True)

    def _timed(self, loader):
        """The loader's batches, with the time this rank waited for each one."""
        batches = iter(loader)
        while True:
            start = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                return
            self.pace.waited_for_data(time.perf_counter() - start)
            yield batch

    def _run_batch(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            start = time.perf_counter()
            out = self.model(x)
            self.pace.forward_outside(time.perf_counter() - start)
            loss = self.loss_fn(out.float(), y)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def _tune_stop_checks(self, step_seconds: float) -> None:
        """Check for SIGTERM about every half second of steps: every step for slow steps, every
        few dozen for tiny ones (each check is a collective). Rank 0 decides so that all ranks
        check at the same steps."""
        if not self.env.distributed:
            return
        every = torch.tensor([max(1, min(64, int(0.5 / max(step_seconds, 1e-6))))], device=self.device)
        dist.broadcast(every, src=0)
        self.stop_every = int(every.item())

    def _stop_agreed(self) -> bool:
        """Every rank must stop after the same step, or the others would wait forever in the
        next all-reduce; one tiny all-reduce per step carries the flag."""
        if not self.env.distributed:
            return self.stop_requested
        flag = torch.tensor([1.0 if self.stop_requested else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _run_epoch(self, epoch: int) -> tuple[float, int, float, bool]:
        """One epoch; returns (mean train loss, samples seen by all ranks, seconds, stopped)."""
        self.model.train()
        self.train_sampler.epoch = epoch
        self.train_sampler.skip = self.skip_batches * self.args.batch_size
        done_before = self.skip_batches
        self.skip_batches = 0
        loss_sum = torch.zeros((), device=self.device)
        count = torch.zeros((), device=self.device)
        start = time.perf_counter()
        stopped = False
        self.pace.begin()
        for step, (x, y) in enumerate(self._timed(self.train_loader), start=done_before):
            x, y = self._to_device(x, y)
            loss = self._run_batch(x, y)
            loss_sum += loss * y.shape[0]  # stays on the device: no host sync per step
            count += y.shape[0]
            if (step + 1) % self.stop_every == 0 and self._stop_agreed():
                self._save_snapshot(epoch, next_batch=step + 1)
                stopped = True
                break
        if not stopped and self.env.distributed and self._stop_agreed():
            # The last step of the epoch is checked too: with fewer steps per epoch than
            # stop_every, a SIGTERM would otherwise never be agreed on. The epoch is finished
            # (evaluated, checkpointed as a whole epoch) and training stops after it.
            self.stop_after_epoch = True
        self.last_pace = self.pace.end(self.env.rank, int(count.item()))
        totals = torch.stack([loss_sum, count])
        if self.env.distributed:
            dist.all_reduce(totals)
        seconds = time.perf_counter() - start
        steps = max(1, step + 1 - done_before) if "step" in locals() else 1
        self._tune_stop_checks(seconds / steps)
        samples = int(totals[1].item())
        return (totals[0] / totals[1].clamp(min=1)).item(), samples, seconds, stopped

    @torch.no_grad()
    def _evaluate(self) -> tuple[float, float]:
        self.model.eval()
        totals = torch.zeros(3, device=self.device)  # loss sum, correct, count
        for x, y in self.val_loader:
            x, y = self._to_device(x, y)
            with self._autocast():
                logits = self.model(x).float()
            totals[0] += self.loss_fn(logits, y) * y.shape[0]
            totals[1] += (logits.argmax(1) == y).sum()
            totals[2] += y.shape[0]
        if self.env.distributed:
            dist.all_reduce(totals)
        n = totals[2].clamp(min=1)
        return (totals[0] / n).item(), (totals[1] / n).item()

    # -------------------------------------------------------------- snapshots
    def _rng_state(self) -> dict[str, Any]:
        state = {"torch": torch.get_rng_state(), "python": random.getstate()}
        try:
            import numpy as np

            state["numpy"] = np.random.get_state()
        except ImportError:  # pragma: no cover
            pass
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def _remove_stale_temps(self) -> None:
        """Global rank 0, before it writes anything: remove the temp files that writes of its own
        files left when a kill cut them short (a requeued job reuses its outputs, and each kill
        would leave one more beside the checkpoint). Nothing else in the folders is touched."""
        if not self.env.is_main:
            return
        model_dir = self.args.model_dir
        ours = [self.checkpoint, *(model_dir / name for name in (MODEL_FILE, META_FILE, "metrics.json",
                                                                   "loss_curve.png"))]  # what Tracker writes
        removed = remove_stale_temps(ours)
        if removed:
            print(f"[train] removed {len(removed)} temporary file(s) left by interrupted writes: "
                  f"{', '.join(str(p) for p in removed)}", flush=True)

    def _save_snapshot(self, epoch: int, next_batch: int = 0) -> None:
        """Only global rank 0 writes. ``epoch`` is the last finished epoch, or with
        ``next_batch`` the epoch in progress and where to pick it up."""
        if not self.env.is_main:
            return
        snap = {
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "epoch": epoch,
            "next_batch": next_batch,
            "history": self.history,
            "rng": self._rng_state(),
            "arch": self.args.arch,
            "task": self.args.task,
            "classes": self.task.classes,
            "world_size": self.env.world_size,
            "mlflow_run_id": self.mlflow_run_id,
        }
        atomic_torch_save(snap, self.checkpoint)

    def _load_snapshot(self, snap: dict[str, Any]) -> None:
        try:
            self.raw_model.load_state_dict(snap["model"])
        except RuntimeError as exc:
            raise TrainError(f"checkpoint {self.checkpoint} does not fit this model ({str(exc).splitlines()[0]})",
                             "use an empty --checkpoint-dir") from None
        self.optimizer.load_state_dict(snap["optimizer"])
        if self.scheduler is not None and snap.get("scheduler"):
            self.scheduler.load_state_dict(snap["scheduler"])
        self.history = list(snap.get("history") or [])
        self.mlflow_run_id = snap.get("mlflow_run_id")
        if snap.get("next_batch"):
            self.start_epoch, self.skip_batches = snap["epoch"], snap["next_batch"]
        else:
            self.start_epoch = snap["epoch"] + 1  # resume at the next epoch, not the one just done
        if snap.get("world_size") not in (None, self.env.world_size) and snap.get("next_batch"):
            self.skip_batches = 0  # shards differ with another world size: restart that epoch
        rng = snap.get("rng") or {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "python" in rng:
            random.setstate(rng["python"])

    def _peak_rss_mb(self) -> list[float]:
        """Peak resident memory of each rank's training process (MiB), gathered on rank 0."""
        import resource

        mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
        if not self.env.distributed:
            return [round(mine, 1)]
        gathered: list[Any] = [None] * self.env.world_size
        dist.all_gather_object(gathered, round(mine, 1))
        return [float(v) for v in gathered]

    def _report_pace(self, epoch: int) -> None:
        """Each rank prints its own pace (the runner's live view shows it per rank); rank 0
        gathers all of them and names a straggler, so that Azure's logs say it too."""
        if not self.env.distributed:
            return
        mine = self.last_pace
        now = time.monotonic()
        if now - self.pace_printed >= PACE_EVERY_S or epoch == self.args.epochs:  # tiny epochs: not 4 lines each
            self.pace_printed = now
            print(f"[train] rank {mine.rank}: epoch {epoch}/{self.args.epochs} own_samples/s={mine.own_rate:.1f} "
                  f"data_s={mine.data_s:.3f} forward_s={mine.forward_s:.3f}", flush=True)
        row = torch.tensor([mine.samples, mine.data_s, mine.forward_s], dtype=torch.float64, device=self.device)
        rows = [torch.zeros_like(row) for _ in range(self.env.world_size)]
        dist.all_gather(rows, row)
        if self.env.is_main:
            paces = [RankPace(r, int(v[0].item()), float(v[1].item()), float(v[2].item())) for r, v in enumerate(rows)]
            for slow in stragglers(paces):
                print(straggler_line(epoch, slow), flush=True)

    # -------------------------------------------------------------- the loop
    def train(self, tracking: BackgroundTracker | None = None) -> bool:
        """Runs the remaining epochs; False when stopped by SIGTERM (checkpoint written). Rank 0
        reports through ``tracking`` (started early by main(), else here)."""
        args, env = self.args, self.env
        tracker = Tracker(self, tracking or BackgroundTracker()) if env.is_main else None
        if env.is_main:
            where = f"resuming at epoch {self.start_epoch + 1}" if self.start_epoch or self.skip_batches else "starting"
            print(f"[train] {where}: {args.task}/{args.arch}, {env.world_size} process(es) ({env.launcher}), "
                  f"device {self.device.type}, precision {self.autocast_dtype or torch.float32}, "
                  f"{len(self.task.train)} train / {len(self.task.val)} val samples", flush=True)
        try:
            for epoch in range(self.start_epoch, args.epochs):
                seed_everything(args.seed + 7919 * env.rank + 104729 * epoch)  # per rank, per epoch
                train_loss, samples, seconds, stopped = self._run_epoch(epoch)
                if stopped:
                    if env.is_main:
                        print(f"[train] stopped by SIGTERM in epoch {epoch + 1}; checkpoint written to "
                              f"{self.checkpoint}", flush=True)
                    return False
                self._report_pace(epoch + 1)
                if self.scheduler is not None:
                    self.scheduler.step()
                val_loss, val_acc = self._evaluate()
                best = max([r["val_accuracy"] for r in self.history] + [val_acc])
                record = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                          "val_accuracy": val_acc, "best_val_accuracy": best,
                          "samples_per_s": samples / max(seconds, 1e-9)}
                self.history.append(record)
                if tracker is not None:
                    tracker.epoch(record)
                self._save_snapshot(epoch)
                if self.stop_after_epoch:
                    if env.is_main:
                        print(f"[train] stopped by SIGTERM after epoch {epoch + 1}; checkpoint written to "
                              f"{self.checkpoint}", flush=True)
                    return False
            peaks = self._peak_rss_mb()  # every rank takes part in the gather
            if tracker is not None:
                tracker.finish(peaks)
            return True
        finally:
            if tracker is not None:
                tracker.close()


class Tracker:
    """Rank 0's reporting: stdout, the model folder, and MLflow and the loss curve through the
    tracking process (tracking.py), which logs while the trainer trains."""

    def __init__(self, trainer: Trainer, background: BackgroundTracker):
        self.trainer = trainer
        self.args = trainer.args
        self.background = background
        self.last_plot = time.monotonic()
        args = trainer.args
        params = {"task": args.task, "arch": args.arch, "epochs": args.epochs, "batch_size": args.batch_size,
                  "learning_rate": args.learning_rate, "world_size": trainer.env.world_size,
                  "launcher": trainer.env.launcher, "pretrained": args.pretrained, "precision": args.precision,
                  "seed": args.seed}
        background.start(f"jobgen-{args.task}", trainer.mlflow_run_id, params, {})

    def _run_id(self) -> None:
        if self.background.run_id:
            self.trainer.mlflow_run_id = self.background.run_id  # the next checkpoint names the run

    def epoch(self, record: dict[str, float]) -> None:
        print(f"[train] epoch {record['epoch']}/{self.args.epochs} train_loss={record['train_loss']:.4f} "
              f"val_loss={record['val_loss']:.4f} val_accuracy={record['val_accuracy']:.4f} "
              f"samples/s={record['samples_per_s']:.1f}", flush=True)
        self.background.metrics({k: v for k, v in record.items() if k != "epoch"}, int(record["epoch"]))
        self._run_id()
        if time.monotonic() - self.last_plot > 30:  # a live curve for long epochs
            self.background.curve(self.trainer.history, self.args.model_dir / "loss_curve.png")
            self.last_plot = time.monotonic()

    def finish(self, peak_rss_mb: list[float] | None = None) -> None:
        t = self.trainer
        last = t.history[-1] if t.history else {}
        best = max((r["val_accuracy"] for r in t.history), default=None)
        t.mlflow_run_id = self.background.wait_for_run() or t.mlflow_run_id
        card = ModelCard(
            task=self.args.task, arch=self.args.arch, classes=t.task.classes, input_shape=t.task.input_shape,
            preprocessing=t.task.preprocessing,
            metrics={"val_accuracy": last.get("val_accuracy"), "best_val_accuracy": best,
                     "val_loss": last.get("val_loss"), "train_loss": last.get("train_loss"), "epochs": len(t.history)},
            training={"seed": self.args.seed, "world_size": t.env.world_size, "launcher": t.env.launcher,
                      "precision": str(t.autocast_dtype or torch.float32).replace("torch.", ""),
                      "batch_size_per_process": self.args.batch_size,
                      "peak_rss_mb_per_process": peak_rss_mb,
                      "cached_images": type(t.task.train).__name__ == "CachedImages",
                      "samples_per_s": (sum(r["samples_per_s"] for r in t.history[1:]) / max(1, len(t.history) - 1)
                                        if len(t.history) > 1 else (t.history[0]["samples_per_s"]
                                                                    if t.history else None))},
            mlflow_run_id=t.mlflow_run_id,
            versions={"torch": torch.__version__.split("+")[0], "python": sys.version.split()[0]})
        save_model_dir(self.args.model_dir, t.raw_model, card)
        atomic_write_text(self.args.model_dir / "metrics.json", json.dumps(t.history, indent=2) + "\n")
        curve = self.args.model_dir / "loss_curve.png"
        self.background.curve(t.history, curve)
        self.background.metrics({"final_val_accuracy": last.get("val_accuracy", 0.0)}, 0)
        self.background.artifact(curve)
        self.background.artifact(self.args.model_dir / "model.json")
        self.close()
        if peak_rss_mb:
            print(f"[train] peak memory per process: {', '.join(f'{m:.0f} MiB' for m in peak_rss_mb)}", flush=True)
        print(f"[train] done: val_accuracy={last.get('val_accuracy', float('nan')):.4f}; model in "
              f"{self.args.model_dir}; loss curve {curve}", flush=True)

    def close(self) -> None:
        """Ends the MLflow run; returns once everything sent is logged and the curve drawn."""
        self.background.close()


# ------------------------------------------------------------------ entry point

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        env = detect()
        # rank 0's MLflow process imports MLflow and opens the store while this one sets up
        tracking = BackgroundTracker() if env.is_main else None
        trainer, previous = None, signal.getsignal(signal.SIGTERM)
        try:
            device = setup_device(env)
            init_distributed(env, device)
            task = data_mod.load_task(args.task, args.data, args.seed, args.image_size, args.cache_images)
            trainer = Trainer(args, env, task, device, build_for_task(args, env, task, device))
            signal.signal(signal.SIGTERM, lambda *_: setattr(trainer, "stop_requested", True))
            finished = trainer.train(tracking)
        finally:
            # Let go of the trainer and its DDP model: the SIGTERM handler's closure would otherwise
            # keep them (and the handler) alive after main() returns, into a caller's code or the
            # interpreter's teardown. It does not stop gloo's threads (DDP keeps the process group
            # past destroy_process_group all the same); leave() deals with those.
            signal.signal(signal.SIGTERM, previous)
            if tracking is not None:
                tracking.abandon()  # a no-op when training ended it
            trainer = None
            gc.collect()
            if dist.is_initialized():
                dist.destroy_process_group()
    except TrainError as exc:
        sys.stderr.write(f"error: {exc.line()}\n")
        return 2
    return 0 if finished else EXIT_PREEMPTED
