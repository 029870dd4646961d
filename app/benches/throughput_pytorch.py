#!/usr/bin/env python3
"""PyTorch (CPU) counterpart of app/benches/throughput.rs.

Training throughput (images/s) of LeNet-5, ResNet-20/56, the CIFAR
ResNet-18/34/50, MobileNetV2, EfficientNet-B0 and the small ViT on random
data (torchvision's and timm's modules for the new families):
forward, backward and an SGD step per batch, as in a training loop; with
--eval, the evaluation-mode forward pass without autograd instead. The
networks, initialisation and optimiser mirror the Candle ones in
app/src/model/{arch,network}.rs and app/src/train/optim.rs:

* He-uniform weights (bound sqrt(6 / fan_in)), zero biases,
  BatchNorm gamma 1 / beta 0, momentum 0.1, eps 1e-5;
* SGD lr 0.01, momentum 0.9, Nesterov, weight decay 5e-4 added to the
  gradient of every parameter (BatchNorm and biases included, as in Candle).

    python app/benches/throughput_pytorch.py [--batch 128] [--iters 20] \
        [--models lenet5,resnet20] [--threads N] [--eval]

prints one JSON line per model.
"""

import argparse
import json
import os
import sys
import time
import warnings

# torch warns at start-up when numpy is absent; numpy is not needed here.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - message for humans
    sys.exit(
        "error: PyTorch is not installed for this python ({}).\n"
        "install it with: python3 -m venv /tmp/torchvenv && "
        "/tmp/torchvenv/bin/pip install torch".format(sys.executable)
    )


class LeNet5(nn.Module):
    """28x28x1 input, conv1 padded by 2 as in arch::lenet5."""

    def __init__(self, in_ch=1, size=28, classes=10):
        super().__init__()
        pad = (32 - size + 1) // 2 if size < 32 else 0
        after = ((size + 2 * pad - 4) // 2 - 4) // 2
        self.conv1 = nn.Conv2d(in_ch, 6, 5, padding=pad, bias=True)
        self.conv2 = nn.Conv2d(6, 16, 5, bias=True)
        self.fc1 = nn.Linear(16 * after * after, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """32x32x3 input, as in arch::resnet20."""

    def __init__(self, in_ch=3, width=16, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=1e-5, momentum=0.1)
        blocks = []
        c = width
        for stage in range(3):
            out = width << stage
            for block in range(3):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(BasicBlock(c, out, stride))
                c = out
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        x = x.mean((2, 3))
        return self.fc(x)


def family(m):
    """The network called `m`, as Shears's built-in of that name builds it
    (app/src/model/arch/: the same layers, widths and names)."""
    if m == "lenet5":
        return LeNet5()
    if m == "resnet20":
        return ResNet20(width=16)
    if m == "resnet56":
        net = ResNet20(width=16)
        blocks, c = [], 16
        for stage in range(3):
            out = 16 << stage
            for block in range(9):
                blocks.append(BasicBlock(c, out, 2 if stage > 0 and block == 0 else 1))
                c = out
        net.layers = nn.Sequential(*blocks)
        return net
    import torchvision.models as tvm

    if m in ("resnet18", "resnet34", "resnet50"):
        net = getattr(tvm, m)(num_classes=10)
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
        return net
    if m == "mobilenetv2":
        return tvm.mobilenet_v2(num_classes=10)
    if m == "efficientnet-b0":
        return tvm.efficientnet_b0(num_classes=10)
    if m == "vit":
        import timm

        return timm.models.vision_transformer.VisionTransformer(
            img_size=32, patch_size=4, embed_dim=192, depth=6, num_heads=3, num_classes=10
        )
    sys.exit(f"error: unknown model `{m}`")


def init_like_candle(net):
    """He-uniform (bound sqrt(6/fan_in)) weights, zero biases, BN 1/0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            bound = (6.0 / fan_in) ** 0.5
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return net


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--models", default="lenet5,resnet20")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--eval",
        action="store_true",
        help="evaluation throughput instead: eval mode, no autograd",
    )
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    batch, iters = args.batch, args.iters

    for m in args.models.split(","):
        net, shape = family(m), (3, 32, 32)
        if m == "lenet5":
            shape = (1, 28, 28)
        net = init_like_candle(net).train()
        opt = torch.optim.SGD(
            net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4
        )
        x = torch.randn(batch, *shape)
        y = torch.arange(batch, dtype=torch.long) % 10

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()

        if args.eval:
            net.eval()

            def step():  # noqa: F811 (the evaluation step replaces training's)
                with torch.inference_mode():
                    net(x)

        for _ in range(3):
            step()
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        secs = time.perf_counter() - t0
        print(
            json.dumps(
                {
                    "impl": "pytorch",
                    "mode": "eval" if args.eval else "train",
                    "model": m,
                    "device": "cpu",
                    "batch": batch,
                    "iters": iters,
                    "images_per_s": round(batch * iters / secs, 1),
                    "torch_version": torch.__version__,
                    "threads": torch.get_num_threads(),
                },
                separators=(",", ":"),
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
