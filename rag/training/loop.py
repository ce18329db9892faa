"""The reader's training loop: bf16 autocast where the CPU has it (or a GPU when there is one), and a checkpoint
every few minutes that a later run of the same command resumes from.

A checkpoint is two files in `<output>/checkpoint/`: `state.safetensors` (the trainable weights, the AdamW
moments and torch's random state) and `state.json` (the step, the data order's seed, the run's fingerprint).
No pickle. A checkpoint written for other settings or other data is refused, not silently resumed."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

Log = Callable[[str], None]


def bucketed(n_items: int, lengths: Sequence[int], batch: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar length (little padding), in random order."""
    order = sorted(range(n_items), key=lambda i: (lengths[i], rng.random()))
    batches = [order[i:i + batch] for i in range(0, n_items, batch)]
    rng.shuffle(batches)
    return batches


def device_and_precision(requested: str = "auto"):  # type: ignore[no-untyped-def]
    """(torch device, autocast dtype or None, a line describing both): CUDA when there is a GPU, else the CPU,
    in bf16 when the CPU has AMX or AVX-512 bf16 (about 1.5x faster training here), else fp32."""
    import torch

    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16, f"cuda ({torch.cuda.get_device_name(0)}), bf16"
    bf16 = requested != "fp32" and (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    return torch.device("cpu"), (torch.bfloat16 if bf16 else None), \
        f"cpu ({torch.get_num_threads()} threads), {'bf16' if bf16 else 'fp32'}"


class Checkpoints:
    """Save and restore the training state under `folder` (see the module docstring)."""

    def __init__(self, folder: Path, fingerprint: str, minutes: float, log: Log) -> None:
        self.folder = folder
        self.fingerprint = fingerprint
        self.every = minutes * 60
        self.log = log
        self.last = time.time()

    def due(self) -> bool:
        return time.time() - self.last >= self.every

    def save(self, net, optimiser, step: int) -> None:  # type: ignore[no-untyped-def]
        import torch
        from safetensors.torch import save_file

        tensors = {f"net.{n}": p.detach().cpu().contiguous() for n, p in net.named_parameters() if p.requires_grad}
        moments = []
        for gi, group in enumerate(optimiser.param_groups):
            for pi, p in enumerate(group["params"]):
                state = optimiser.state.get(p)
                if state:
                    tensors[f"adam.{gi}.{pi}.exp_avg"] = state["exp_avg"].cpu().contiguous()
                    tensors[f"adam.{gi}.{pi}.exp_avg_sq"] = state["exp_avg_sq"].cpu().contiguous()
                    moments.append([gi, pi, float(state["step"])])
        tensors["rng.torch"] = torch.get_rng_state()
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / "state.safetensors.partial"
        save_file(tensors, str(partial))
        partial.replace(self.folder / "state.safetensors")
        meta = {"fingerprint": self.fingerprint, "step": step, "moments": moments, "saved": time.time()}
        (self.folder / "state.json.partial").write_text(json.dumps(meta), encoding="utf-8")
        (self.folder / "state.json.partial").replace(self.folder / "state.json")
        self.last = time.time()
        self.log(f"checkpoint at step {step} in {self.folder}")

    def restore(self, net, optimiser) -> int:  # type: ignore[no-untyped-def]
        """The step to go on from (0 when there is no checkpoint); a checkpoint of another run is an error."""
        import torch
        from safetensors.torch import load_file

        meta_file = self.folder / "state.json"
        if not meta_file.is_file() or not (self.folder / "state.safetensors").is_file():
            return 0
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("fingerprint") != self.fingerprint:
            raise ValueError(f"the checkpoint in {self.folder} was written for other settings or data; delete "
                             "that folder to start afresh, or run with the settings it was written for")
        tensors = load_file(str(self.folder / "state.safetensors"))
        params = dict(net.named_parameters())
        with torch.no_grad():
            for name, value in tensors.items():
                if name.startswith("net."):
                    params[name[4:]].copy_(value)
        for gi, pi, step in meta["moments"]:
            p = optimiser.param_groups[gi]["params"][pi]
            optimiser.state[p] = {"step": torch.tensor(step), "exp_avg": tensors[f"adam.{gi}.{pi}.exp_avg"],
                                  "exp_avg_sq": tensors[f"adam.{gi}.{pi}.exp_avg_sq"]}
        torch.set_rng_state(tensors["rng.torch"])
        self.log(f"resuming from the checkpoint at step {meta['step']} ({self.folder})")
        return int(meta["step"])

    def clear(self) -> None:
        for name in ("state.safetensors", "state.json"):
            (self.folder / name).unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def run_training(net, encoded, targets: np.ndarray, pair_encoder, config, checkpoints: Checkpoints,  # type: ignore[no-untyped-def]
                 log: Log) -> str:
    """Fine-tune `net` on the encoded pairs: span cross-entropy plus answer BCE, AdamW with linear warm-up and
    decay, gradient clipping; epoch e's batch order is drawn from seed + e, so a resumed run sees the same
    batches in the same order. Returns the line describing the device and precision it ran in."""
    import torch

    from ..answer.reader_features import PairEncoder

    device, dtype, described = device_and_precision(config.precision)
    log(f"training on {described}")
    net.to(device)
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        [{"params": [p for _, p in params if p.ndim > 1], "weight_decay": config.weight_decay},
         {"params": [p for _, p in params if p.ndim <= 1], "weight_decay": 0.0}], lr=config.learning_rate)
    per_epoch = int(math.ceil(len(encoded) / config.batch_size))
    total = max(1, int(per_epoch * config.epochs))
    warm = max(1, int(total * config.warmup))

    def rate(s: int) -> float:
        return min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))

    step = checkpoints.restore(net, optimiser)
    ce = torch.nn.CrossEntropyLoss(ignore_index=-100)
    bce = torch.nn.BCEWithLogitsLoss()
    lengths = [len(e.ids) for e in encoded]
    losses: list[float] = []
    began = time.time()
    net.train()
    while step < total:
        epoch, skip = divmod(step, per_epoch)
        batches = bucketed(len(encoded), lengths, config.batch_size, random.Random(config.seed + epoch))
        for batch in batches[skip:]:
            if step >= total:
                break
            items = [encoded[i] for i in batch]
            inputs = {k: torch.from_numpy(v).to(device) for k, v in pair_encoder.batch(items).items()}
            tgt = torch.from_numpy(targets[batch]).to(device)
            for group in optimiser.param_groups:
                group["lr"] = config.learning_rate * rate(step)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                start, end, logit = net(**inputs)
            start, end, logit = start.float(), end.float(), logit.float()
            invalid = ~torch.from_numpy(PairEncoder.span_mask(items, inputs["input_ids"].shape[1])).to(device)
            start = start.masked_fill(invalid, -1e4)
            end = end.masked_fill(invalid, -1e4)
            loss = (ce(start, tgt[:, 1]) + ce(end, tgt[:, 2])) / 2 + bce(logit, tgt[:, 0].float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimiser.step()
            optimiser.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            if step % 100 == 0 or step == total:
                log(f"step {step}/{total} loss {np.mean(losses[-100:]):.4f} ({time.time() - began:.0f}s)")
            if checkpoints.due() and step < total:
                checkpoints.save(net, optimiser, step)
    net.to("cpu")
    net.train(False)
    return described
