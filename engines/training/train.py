"""Train the emotion network on FER2013 pixels with FER+ vote distributions as soft targets.

With --teacher (a run's best.pt, a shipped .onnx file, or several of them: an ensemble), the network is a
student: its loss adds the teachers' softened predictions on the same augmented batch (knowledge
distillation, Hinton et al. 2015), weighted --distill-weight, at temperature --temperature.

Reproducible from --seed; validates on PublicTest each epoch (FER+ majority rule) and never
reads PrivateTest. Checkpoints every epoch into --run-dir and resumes from there when re-run
with the same arguments; the log is run-dir/train.log (one JSON object per epoch).

On a GPU machine (`--device`, `--workers`): faces from a training pack (`--data`, engines/training/pack.py), the
run ended within `--budget-minutes`; engines/training/device_train.sh is the one call that uses them.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from engines.ferplus import load_splits, majority_labels, soft_targets
from engines.training.augment import AUGMENTATIONS
from engines.training.batches import EpochBatches, epoch_loader
from engines.training.model import BLOCK_KINDS, EmotionNet
from engines.training.pack import read_pack
from engines.training.teachers import load_teachers


def to_input(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, H, W) in [-1, 1] (the model's `pm1` input scale)."""
    return torch.from_numpy(pixels).float().div_(127.5).sub_(1.0).unsqueeze(1)


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    model.eval()
    outs = []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch].contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            outs.append(model(xb).float())
    return torch.cat(outs)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def logit_adjustment(targets: np.ndarray, tau: float) -> torch.Tensor:
    """tau * log(class prior) from the training targets (Menon et al., 2021, "Long-tail learning via
    logit adjustment"). Added to the logits in the training loss only: the network then learns
    balanced scores, and rare classes (disgust, fear, contempt) are not argued away by the prior."""
    prior = targets.mean(0).astype(np.float64) + 1e-6
    return torch.from_numpy(tau * np.log(prior / prior.sum())).float()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T): the gradient scale stays that of the hard loss at any temperature."""
    teacher = F.softmax(teacher_logits.float() / temperature, dim=1)
    student = F.log_softmax(student_logits.float() / temperature, dim=1)
    return F.kl_div(student, teacher, reduction="batchmean") * temperature**2


def plain_args(args: argparse.Namespace) -> dict:
    """The arguments as JSON-ready values (paths, and lists of them, as strings)."""
    def plain(value):
        if isinstance(value, Path):
            return str(value)
        return [plain(v) for v in value] if isinstance(value, list) else value
    return {key: plain(value) for key, value in vars(args).items()}


def build_model(args: argparse.Namespace) -> EmotionNet:
    return EmotionNet(widths=tuple(args.widths), blocks=tuple(args.blocks), dropout=args.dropout, stem=args.stem,
                      block=args.block)


def pick_device(name: str) -> torch.device:
    """`auto`: the GPU where torch sees one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no GPU here")
    return torch.device(name)


def cosine_finish(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    """A cosine decay of the learning rate from where it stands to 0 over `steps` steps."""
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)


def one_cycle(opt: torch.optim.Optimizer, max_lr: float, total_steps: int,
              done_steps: int = 0) -> torch.optim.lr_scheduler.OneCycleLR:
    """The one-cycle schedule (15 % warm-up to `max_lr`, then cosine annealing) over `total_steps`, standing at
    step `done_steps`: a shorter plan for a run already under way continues from the same step."""
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total_steps, pct_start=0.15,
                                               last_epoch=done_steps - 1)


def epochs_that_fit(budget_s: float, spent_s: float, epoch_seconds: list[float]) -> int:
    """Whole epochs that still fit in the time budget, at the mean epoch time so far."""
    mean = sum(epoch_seconds) / len(epoch_seconds)
    return max(int((budget_s - spent_s) // mean), 0)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, default=Path("runs/emotionnet"))
    data = p.add_mutually_exclusive_group()
    data.add_argument("--cache-dir", type=Path, default=Path(".cache"), help="the aligned-face cache (built if missing)")
    data.add_argument("--data", type=Path, default=None, metavar="PACK",
                      help="read the faces from a training pack instead (engines.training.pack; for a GPU machine)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--workers", type=int, default=0,
                   help="processes that augment batches ahead (0: the training process does; keep 0 on 2 cores)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--widths", type=int, nargs=3, default=[32, 64, 128])
    p.add_argument("--blocks", type=int, nargs=3, default=[1, 2, 2])
    p.add_argument("--stem", type=int, default=16, help="channels of the first (48x48) convolution")
    p.add_argument("--block", choices=BLOCK_KINDS, default="basic",
                   help="residual blocks of full 3x3 convolutions (basic) or depthwise-separable ones")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--augment", choices=sorted(AUGMENTATIONS), default="basic",
                   help="basic: the 1.x recipe; domain: plus pose, light, blur, noise, JPEG, occlusion")
    p.add_argument("--logit-adjust", type=float, default=0.0, metavar="TAU",
                   help="train on logits + TAU * log(prior) (0: plain soft cross-entropy)")
    p.add_argument("--teacher", type=Path, nargs="+", default=None,
                   help="distil from these: training checkpoints (a run's best.pt) and/or .onnx model files; "
                        "several form an ensemble (mean log-probabilities)")
    p.add_argument("--distill-weight", type=float, default=0.7, help="share of the distillation term in the loss")
    p.add_argument("--temperature", type=float, default=4.0, help="softening of both predictions for distillation")
    p.add_argument("--seed", type=int, default=20261125)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--finish", type=int, default=0, metavar="N",
                   help="Resume the run in --run-dir and end it in N more epochs: cosine decay of the "
                        "learning rate from where it stands to 0 (cuts a long one-cycle schedule short).")
    p.add_argument("--budget-minutes", type=float, default=0.0, metavar="M",
                   help="End the run within M minutes of training (this process): once the remaining epochs no "
                        "longer fit at the mean epoch time, the one-cycle schedule is re-planned over those that do")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    (args.run_dir / "args.json").write_text(json.dumps(plain_args(args), indent=1))

    splits = read_pack(args.data) if args.data else load_splits(args.cache_dir)
    targets, usable = soft_targets(splits["Training"].votes)
    adjust = logit_adjustment(targets[usable], args.logit_adjust).to(device)
    augment = AUGMENTATIONS[args.augment]
    x_train = to_input(splits["Training"].pixels[usable])
    y_train = torch.from_numpy(targets[usable])
    val_labels = majority_labels(splits["PublicTest"].votes)
    val_keep = val_labels >= 0
    x_val = to_input(splits["PublicTest"].pixels[val_keep]).to(device)
    y_val = torch.from_numpy(val_labels[val_keep]).to(device)

    teacher = load_teachers(args.teacher, args.threads, device) if args.teacher else None
    model = build_model(args).to(device=device, memory_format=torch.channels_last)
    ema = copy.deepcopy(model)
    for param in ema.parameters():
        param.requires_grad_(False)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay)
    steps_per_epoch = len(x_train) // args.batch
    sched = one_cycle(opt, args.lr, args.epochs * steps_per_epoch)
    start_epoch, best, finish = 0, 0.0, None

    ckpt_path = args.run_dir / "last.pt"
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        sched.load_state_dict(ckpt["sched"])
        start_epoch, best = ckpt["epoch"] + 1, ckpt["best"]
        args.epochs = ckpt.get("epochs", args.epochs)  # a time budget may have re-planned the run shorter
        print(f"resumed from {ckpt_path} at epoch {start_epoch}, best val {best:.4f}")
        if args.finish and ckpt.get("finish") is None:
            sched = cosine_finish(opt, args.finish * steps_per_epoch)
            ckpt["finish"] = {"from_epoch": start_epoch, "epochs": args.finish}
        elif ckpt.get("finish") is not None:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=ckpt["finish"]["epochs"] * steps_per_epoch)
            sched.load_state_dict(ckpt["sched"])
        finish = ckpt.get("finish")
        if finish is not None:
            args.epochs = finish["from_epoch"] + finish["epochs"]
            print(f"finishing: cosine decay to 0 by epoch {args.epochs}")

    log = open(args.run_dir / "train.log", "a")
    began, epoch_seconds = time.monotonic(), []
    epoch = start_epoch
    while epoch < args.epochs:
        model.train()
        t0 = time.time()
        batches = EpochBatches(x_train, y_train, args.batch, augment, args.seed, epoch)
        total = 0.0
        bar = tqdm(epoch_loader(batches, args.workers, pin_memory=device.type == "cuda"),
                   total=steps_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=5)
        for step, (xb, yb) in enumerate(bar):
            xb = xb.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            yb = yb.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits = model(xb)
                loss = soft_cross_entropy(logits + adjust, yb)
                if teacher is not None:
                    teacher_logits = teacher(xb)
                    loss = (1 - args.distill_weight) * loss + args.distill_weight * distillation_loss(logits, teacher_logits, args.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                decay = min(args.ema, (1 + epoch * steps_per_epoch + step) / (10 + epoch * steps_per_epoch + step))
                for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
                    if e.dtype.is_floating_point:
                        e.mul_(decay).add_(m.detach(), alpha=1 - decay)
                    else:
                        e.copy_(m)
            total += loss.item()
            if step % 50 == 0:
                bar.set_postfix(loss=f"{total / (step + 1):.3f}")
        val_acc = (predict(ema, x_val).argmax(1) == y_val).float().mean().item()
        record = {"epoch": epoch + 1, "loss": total / steps_per_epoch, "val_majority_acc": val_acc, "lr": sched.get_last_lr()[0], "seconds": round(time.time() - t0, 1)}
        print(json.dumps(record), flush=True)
        log.write(json.dumps(record) + "\n")
        log.flush()
        if val_acc > best:
            best = val_acc
            torch.save({"ema": ema.state_dict(), "args": plain_args(args), "epoch": epoch + 1, "val_majority_acc": val_acc}, args.run_dir / "best.pt")
        epoch_seconds.append(time.time() - t0)
        if args.budget_minutes and finish is None and epoch + 1 < args.epochs:
            fit = epochs_that_fit(args.budget_minutes * 60, time.monotonic() - began, epoch_seconds)
            if fit < args.epochs - (epoch + 1):
                args.epochs = epoch + 1 + fit
                if fit:
                    sched = one_cycle(opt, args.lr, args.epochs * steps_per_epoch, (epoch + 1) * steps_per_epoch)
                print(f"time budget: {fit} more epochs fit in {args.budget_minutes:g} minutes; the one-cycle "
                      f"schedule now ends at epoch {args.epochs}", flush=True)
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "epoch": epoch, "epochs": args.epochs, "best": best, "finish": finish}, ckpt_path)
        epoch += 1
    print(f"done: best PublicTest majority accuracy {best:.4f}")


if __name__ == "__main__":
    main()
