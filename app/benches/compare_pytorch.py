#!/usr/bin/env python3
"""PyTorch peer of `shears compare`: runs a comparison config the way Shears
does, to compare the cost of the whole comparison (wall time, peak memory).

    /usr/bin/time -v python3 app/benches/compare_pytorch.py app/benches/mnist10k-54-runs.toml

What it mirrors (app/src/experiment): the data split (a stratified validation
part of `val_fraction`, per-channel normalisation fitted on the training
part), LeNet-5 with He-uniform initialisation, SGD (momentum 0.9, Nesterov,
weight decay 5e-4) with a cosine learning rate per phase, the random shift
augmentation of single-channel images (up to 2 pixels, edges replicated), one
base model per seed, then for every strategy x sparsity x seed: global
unstructured pruning by magnitude (|w|) or Taylor (|w * grad| over
`calibration_batches` batches) of every conv and linear weight, the
schedule's steps (`one-shot`, `iterative-geometric` with `rate` and
`finetune_epochs`) each followed by its fine-tuning with the masks held,
and the test accuracy after the last prune and at the end; validation every
epoch. It does not reproduce Shears's random streams, so accuracies agree in
level, not digit for digit. Supports what the benchmark configs use: IDX
data, `lenet5`, no dense controls and no latency timing.
"""

import gzip
import math
import struct
import sys
import time
import tomllib
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from throughput_pytorch import LeNet5, init_like_candle  # noqa: E402

torch.set_num_threads(torch.get_num_threads())


def read_idx(path):
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    magic = struct.unpack(">I", raw[:4])[0]
    dims = [struct.unpack(">I", raw[4 + 4 * i : 8 + 4 * i])[0] for i in range(magic & 0xFF)]
    data = torch.frombuffer(bytearray(raw[4 + 4 * len(dims) :]), dtype=torch.uint8)
    return data.reshape(dims)


def load_idx(folder):
    folder = Path(folder)

    def find(stem):
        for name in (stem, stem + ".gz"):
            if (folder / name).exists():
                return folder / name
        raise SystemExit(f"{folder}: no {stem}")

    xtr = read_idx(find("train-images-idx3-ubyte")).unsqueeze(1)
    ytr = read_idx(find("train-labels-idx1-ubyte")).long()
    xte = read_idx(find("t10k-images-idx3-ubyte")).unsqueeze(1)
    yte = read_idx(find("t10k-labels-idx1-ubyte")).long()
    return xtr, ytr, xte, yte


def stratified(labels, fraction, gen):
    kept, held = [], []
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        k = max(1, round(len(idx) * fraction)) if fraction > 0 else 0
        held.append(idx[:k])
        kept.append(idx[k:])
    return torch.cat(kept).sort().values, torch.cat(held).sort().values


def shift(x, gen):
    """Each image shifted by up to 2 pixels, edges replicated."""
    b, _, h, w = x.shape
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    dy = torch.randint(0, 5, (b,), generator=gen)
    dx = torch.randint(0, 5, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(b, 1, h, w + 4)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(b, 1, h, w)
    return out.gather(3, cols)


def prunable(net):
    return [m.weight for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def train(net, data, val, cfg, epochs, seed, masks=None):
    """Trains for `epochs`; the validation accuracy after each."""
    x, y = data
    accs = []
    opt = torch.optim.SGD(net.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = epochs * math.ceil(len(x) / cfg["batch_size"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), cfg["batch_size"]):
            idx = order[i : i + cfg["batch_size"]]
            loss = F.cross_entropy(net(shift(x[idx], gen)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if masks:
                for w, m in zip(prunable(net), masks):
                    w.grad.mul_(m)
            opt.step()
            sched.step()
            if masks:
                with torch.no_grad():
                    for w, m in zip(prunable(net), masks):
                        w.mul_(m)
        accs.append(evaluate(net, *val))
    return accs


@torch.no_grad()
def evaluate(net, x, y):
    net.eval()
    correct = 0
    for i in range(0, len(x), 256):
        correct += (net(x[i : i + 256]).argmax(1) == y[i : i + 256]).sum().item()
    return correct / max(len(x), 1)


def scores(net, criterion, data, cfg, batches):
    ws = prunable(net)
    if criterion == "magnitude":
        return [w.detach().abs() for w in ws]
    if criterion != "taylor":
        raise SystemExit(f"criterion {criterion} is not mirrored here")
    acc = [torch.zeros_like(w) for w in ws]
    x, y = data
    net.train()
    for i in range(batches):
        idx = slice(i * cfg["batch_size"], (i + 1) * cfg["batch_size"])
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x[idx]), y[idx]).backward()
        for a, w in zip(acc, ws):
            a += (w.detach() * w.grad).abs()
    return acc


def prune_to(net, sparsity, s):
    flat = torch.cat([v.flatten() for v in s])
    k = int(round(sparsity * flat.numel()))
    if k == 0:
        return [torch.ones_like(v) for v in s]
    threshold = flat.kthvalue(k).values
    masks = [(v > threshold).float() for v in s]
    with torch.no_grad():
        for w, m in zip(prunable(net), masks):
            if m.sum() == 0:  # every layer keeps at least one weight
                m.view(-1)[w.detach().abs().flatten().argmax()] = 1.0
            w.mul_(m)
    return masks


def steps_of(strategy, target):
    schedule = strategy.get("schedule", "one-shot")
    params = strategy.get("schedule_params", {})
    if schedule == "one-shot":
        return [(target, None)]
    if schedule == "iterative-geometric":
        rate, epochs, out, s = params.get("rate", 0.5), params.get("finetune_epochs", 1), [], 0.0
        while s < target - 1e-9:
            s = min(target, 1 - (1 - s) * (1 - rate))
            out.append((s, epochs))
        return out
    raise SystemExit(f"schedule {schedule} is not mirrored here")


def main():
    cfg = tomllib.loads(Path(sys.argv[1]).read_text())
    if cfg.get("dense_control", True) or cfg.get("latency", True):
        raise SystemExit("set dense_control = false and latency = false (not mirrored)")
    if cfg["data"]["kind"] != "idx" or cfg["model"]["arch"] != "lenet5":
        raise SystemExit("only idx data and lenet5 are mirrored")
    start = time.time()
    xtr, ytr, xte, yte = load_idx(cfg["data"]["path"])
    seeds = cfg.get("seeds", [0])
    gen = torch.Generator().manual_seed(seeds[0])
    kept, held = stratified(ytr, cfg.get("val_fraction", 0.1), gen)
    xtr = xtr.float() / 255
    mean, std = xtr[kept].mean().item(), xtr[kept].std(unbiased=False).item()
    norm = lambda t: (t.float() / 255 - mean) / std if t.dtype == torch.uint8 else (t - mean) / std  # noqa: E731
    train_data = (norm(xtr[kept]), ytr[kept])
    val = (norm(xtr[held]), ytr[held])
    test = (norm(xte), yte)
    runs = 0
    for seed in seeds:
        torch.manual_seed(seed)
        base = LeNet5()
        init_like_candle(base)
        train(base, train_data, val, cfg["train"], cfg["train"]["epochs"], seed)
        print(f"seed {seed}: base test {evaluate(base, *test):.4f}", flush=True)
        state = {k: v.clone() for k, v in base.state_dict().items()}
        for strategy in cfg["strategy"]:
            for target in cfg["sparsities"]:
                net = LeNet5()
                net.load_state_dict(state)
                masks = None
                for s, epochs in steps_of(strategy, target):
                    sc = scores(net, strategy.get("criterion", "magnitude"), train_data, cfg["finetune"],
                                cfg.get("calibration_batches", 4))
                    masks = prune_to(net, s, sc)
                    after = evaluate(net, *test)
                    ft = cfg["finetune"]["epochs"] if epochs is None else epochs
                    train(net, train_data, val, cfg["finetune"], ft, seed, masks)
                runs += 1
                print(f"  {strategy['name']} {target}: after prune {after:.4f}, final {evaluate(net, *test):.4f}",
                      flush=True)
    print(f"{runs} runs in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
