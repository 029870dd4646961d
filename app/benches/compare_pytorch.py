#!/usr/bin/env python3
"""PyTorch peer of `shears compare`: runs a comparison config the way Shears
does, to compare the cost of the whole comparison (wall time, peak memory).

    /usr/bin/time -v python3 app/benches/compare_pytorch.py app/benches/mnist10k-54-runs.toml
    shears export-data --out /tmp/glyphs        # the embedded glyphs, as .npy
    /usr/bin/time -v python3 app/benches/compare_pytorch.py assets/demo.toml --data /tmp/glyphs

What it mirrors (app/src/experiment): the data split (a stratified validation
part of `val_fraction`, per-channel normalisation fitted on the training
part), LeNet-5 with He-uniform initialisation, SGD (momentum 0.9, Nesterov,
weight decay 5e-4) with a cosine learning rate per phase, set per epoch, the random shift
augmentation of single-channel images (up to 2 pixels, edges replicated), one
base model per seed, then for every strategy x sparsity x seed: global
unstructured pruning by magnitude (|w|) or Taylor (|w * grad| over
`calibration_batches` batches) of every conv and linear weight, the
schedule's steps (`one-shot`, `iterative-geometric` with `steps` or `rate`,
`hybrid`) each followed by its fine-tuning with the masks held (a fixed
number of epochs, or `finetune = { patience, max_epochs }`: stop when the
validation accuracy has not improved for `patience` epochs and keep the best
weights), validation and test metrics after every prune and fine-tuning;
validation every epoch; then the dense controls (the base fine-tuned as long
as the longest run at each target) and the latency of every final model
(median of timed evaluation passes at batch 1 and 64), where the config asks
for them. It does not reproduce Shears's random streams, so accuracies agree
in level, not digit for digit. Data: IDX folders, or a folder of `.npy`
files as `shears export-data` writes them (`--data DIR`; the way to give it
the embedded glyphs). Model: `lenet5`.
"""

import ast
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


def read_npy(path):
    raw = path.read_bytes()
    if raw[:6] != b"\x93NUMPY":
        raise SystemExit(f"{path}: not a .npy file")
    hlen = struct.unpack("<H", raw[8:10])[0]
    header = ast.literal_eval(raw[10 : 10 + hlen].decode("latin1"))
    dtype = {"|u1": torch.uint8, "<f4": torch.float32, "<i8": torch.int64}[header["descr"]]
    return torch.frombuffer(bytearray(raw[10 + hlen :]), dtype=dtype).reshape(header["shape"])


def load_npy(folder):
    """x_train, y_train, x_test, y_test of a folder `shears export-data` wrote."""
    folder = Path(folder)
    return [read_npy(folder / f"{n}.npy") for n in ("x_train", "y_train", "x_test", "y_test")]


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


def train(net, data, val, cfg, epochs, seed, masks=None, patience=None):
    """Trains for `epochs` (a cosine rate over all of them); the validation
    accuracy after each. With `patience = (p, start)`, stops when the
    validation accuracy has not beaten the best (from `start`, the model
    before the phase) for p epochs, and puts the best weights back."""
    x, y = data
    accs = []
    opt = torch.optim.SGD(net.parameters(), lr=cfg["lr"], momentum=0.9, nesterov=True, weight_decay=5e-4)
    # Shears's cosine rate is per epoch (app/src/train/lr.rs): constant within
    # epoch e, base * (1 + cos(pi * e / epochs)) / 2.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 * (1 + math.cos(math.pi * e / max(epochs, 1))))
    gen = torch.Generator().manual_seed(seed)
    if patience:
        wait, best = patience[0], patience[1]
        best_state, since = {k: v.clone() for k, v in net.state_dict().items()}, 0
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
            if masks:
                with torch.no_grad():
                    for w, m in zip(prunable(net), masks):
                        w.mul_(m)
        sched.step()
        accs.append(evaluate(net, *val))
        if patience:
            if accs[-1] > best:
                best, since = accs[-1], 0
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
            else:
                since += 1
                if since >= wait:
                    break
    if patience:
        net.load_state_dict(best_state)
    return accs


@torch.no_grad()
def evaluate(net, x, y):
    net.eval()
    correct = 0
    for i in range(0, len(x), 256):
        correct += (net(x[i : i + 256]).argmax(1) == y[i : i + 256]).sum().item()
    return correct / max(len(x), 1)


@torch.inference_mode()
def median_forward_ms(net, batch, shape):
    """Median wall ms of an evaluation pass on `batch` random inputs, after
    one warm-up: at least 5 passes, at most 25, none started after 300 ms."""
    net.eval()
    x = torch.randn(batch, *shape)
    net(x).sum().item()
    samples, start = [], time.perf_counter()
    while len(samples) < 5 or (len(samples) < 25 and time.perf_counter() - start < 0.3):
        t0 = time.perf_counter()
        net(x).sum().item()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    n = len(samples)
    return samples[n // 2] if n % 2 else (samples[n // 2 - 1] + samples[n // 2]) / 2


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


def geometric(start, target, k):
    keep = 1 - (target - start)
    return [target if i == k else start + 1 - keep ** (i / k) for i in range(1, k + 1)]


def steps_of(strategy, target, default_epochs):
    """The schedule's sparsities for `target`, each with its fine-tuning
    epochs (plugins/schedules)."""
    schedule = strategy.get("schedule", "one-shot")
    params = strategy.get("schedule_params", {})
    epochs = params.get("finetune_epochs", default_epochs)
    if schedule == "one-shot":
        sparsities = [target]
    elif schedule == "iterative-geometric" and params.get("steps", 0) > 0:
        sparsities = geometric(0.0, target, params["steps"])
    elif schedule == "iterative-geometric":
        rate, sparsities = params.get("rate", 0.5), []
        for i in range(1, params.get("max_steps", 1000)):
            if 1 - (1 - rate) ** i >= target - 1e-6:
                break
            sparsities.append(1 - (1 - rate) ** i)
        sparsities.append(target)
    elif schedule == "hybrid":
        initial = params.get("initial", 0.5)
        if params.get("then", "geometric") != "geometric":
            raise SystemExit("hybrid: only then = geometric is mirrored here")
        sparsities = [target] if initial >= target else [initial] + geometric(initial, target, params.get("steps", 3))
    else:
        raise SystemExit(f"schedule {schedule} is not mirrored here")
    return [(s, epochs) for s in sparsities]


def run_strategy(state, strategy, target, seed, cfg, data):
    """One run from the base `state`; its epochs, the test accuracy after
    the last prune and at the end."""
    train_data, val, test = data
    net = LeNet5()
    net.load_state_dict(state)
    policy, spent = strategy.get("finetune", {}), 0
    for s, epochs in steps_of(strategy, target, cfg["finetune"]["epochs"]):
        sc = scores(net, strategy.get("criterion", "magnitude"), train_data, cfg["finetune"],
                    cfg.get("calibration_batches", 4))
        masks = prune_to(net, s, sc)
        after, after_val = evaluate(net, *test), evaluate(net, *val)
        if "patience" in policy:
            ran = train(net, train_data, val, cfg["finetune"], policy.get("max_epochs", 20), seed, masks,
                        (policy["patience"], after_val))
        else:
            ran = train(net, train_data, val, cfg["finetune"], policy.get("epochs", epochs), seed, masks)
        spent += len(ran)
        evaluate(net, *val)  # the step's record: validation and test
        final = evaluate(net, *test)
    return net, spent, after, final


def main():
    args = sys.argv[1:]
    data_dir = None
    if "--data" in args:
        i = args.index("--data")
        data_dir = args[i + 1]
        del args[i : i + 2]
    cfg = tomllib.loads(Path(args[0]).read_text())
    if cfg["model"]["arch"] != "lenet5":
        raise SystemExit("only lenet5 is mirrored")
    kind = cfg["data"]["kind"]
    start = time.time()
    if data_dir:
        xtr, ytr, xte, yte = load_npy(data_dir)
    elif kind == "idx":
        xtr, ytr, xte, yte = load_idx(cfg["data"]["path"])
    else:
        raise SystemExit(f"data kind {kind}: write it with `shears export-data --out DIR` and pass --data DIR")
    seeds = cfg.get("seeds", [0])
    gen = torch.Generator().manual_seed(seeds[0])
    kept, held = stratified(ytr, cfg.get("val_fraction", 0.1), gen)
    as_values = lambda t: t.float() / 255 if t.dtype == torch.uint8 else t.float()  # noqa: E731
    xtr, xte = as_values(xtr), as_values(xte)
    mean, std = xtr[kept].mean().item(), xtr[kept].std(unbiased=False).item()
    norm = lambda t: (t - mean) / std  # noqa: E731
    data = ((norm(xtr[kept]), ytr[kept]), (norm(xtr[held]), ytr[held]), (norm(xte), yte))
    shape = tuple(xtr.shape[1:])
    runs = 0
    for seed in seeds:
        torch.manual_seed(seed)
        base = LeNet5()
        init_like_candle(base)
        train(base, data[0], data[1], cfg["train"], cfg["train"]["epochs"], seed)
        print(f"seed {seed}: base test {evaluate(base, *data[2]):.4f}", flush=True)
        state = {k: v.clone() for k, v in base.state_dict().items()}
        longest = {}
        for strategy in cfg["strategy"]:
            for target in cfg["sparsities"]:
                net, spent, after, final = run_strategy(state, strategy, target, seed, cfg, data)
                longest[target] = max(longest.get(target, 0), spent)
                line = f"  {strategy['name']} {target}: after prune {after:.4f}, final {final:.4f}"
                if cfg.get("latency", True):
                    line += f", {median_forward_ms(net, 1, shape):.2f} / {median_forward_ms(net, 64, shape):.2f} ms"
                runs += 1
                print(line, flush=True)
        if cfg.get("dense_control", True):
            for epochs in sorted(set(longest.values())):
                net = LeNet5()
                net.load_state_dict(state)
                train(net, data[0], data[1], cfg["finetune"], epochs, seed)
                evaluate(net, *data[1])
                print(f"  dense control, {epochs} epochs: test {evaluate(net, *data[2]):.4f}", flush=True)
    print(f"{runs} runs in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
