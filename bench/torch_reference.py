"""The Fashion-MNIST recipes of examples/ in PyTorch, with Keras's defaults, for the accuracy a
recipe itself reaches independently of wgrad (its spread over seeds, against a bar).

Keras's defaults are matched: Glorot-uniform kernels and zero biases; Adam with epsilon 1e-7;
RMSprop with rho 0.9 and epsilon 1e-7; categorical cross-entropy on softmax outputs clipped to
[1e-7, 1 - 1e-7] where the Keras model ends in a softmax; a new shuffle every epoch. PyTorch puts
epsilon outside Adam's bias correction and outside RMSprop's square root; with epsilon 1e-7 that
changes nothing measurable. Not part of the test suite (it needs torch and numpy).

Run: python3 bench/torch_reference.py mlp|mlp5|mnist SEED[,SEED...]
  mlp    784-128-10, relu, Adam 1e-3, batch 32, 5 epochs (examples/fashion_mnist_mlp.ts)
  mlp5   784-256-128-64-64-10, the same, 10 epochs (--layers 256,128,64,64 --epochs 10)
  mnist  784-512-512-10, relu, dropout 0.2, softmax, RMSprop 1e-3, batch 128, 5 epochs
         (examples/mnist_mlp.ts on Fashion-MNIST)
"""
import gzip
import sys
import time

import numpy as np
import torch
import torch.nn as nn

DATA = "/usr/share/datasets/fashion-mnist/"


def idx(name: str, offset: int) -> np.ndarray:
    with gzip.open(DATA + name) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def main() -> None:
    recipe, seeds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
    torch.set_num_threads(2)
    xtr = torch.tensor(idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 784) / 255.0,
                       dtype=torch.float32)
    ytr = torch.tensor(idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64))
    xte = torch.tensor(idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784) / 255.0,
                       dtype=torch.float32)
    yte = torch.tensor(idx("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64))
    for seed in seeds:
        torch.manual_seed(seed)
        if recipe in ("mlp", "mlp5"):
            widths = [256, 128, 64, 64] if recipe == "mlp5" else [128]
            layers, prev = [], 784
            for w in widths:
                layers += [nn.Linear(prev, w), nn.ReLU()]
                prev = w
            model = nn.Sequential(*layers, nn.Linear(prev, 10))
            epochs, batch, softmax_out = (10 if recipe == "mlp5" else 5), 32, False
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        elif recipe == "mnist":
            model = nn.Sequential(
                nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2),
                nn.Linear(512, 512), nn.ReLU(), nn.Dropout(0.2),
                nn.Linear(512, 10),
            )
            epochs, batch, softmax_out = 5, 128, True
            opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        else:
            raise SystemExit(f"unknown recipe {recipe!r}: mlp, mlp5 or mnist")
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        accuracies = []
        t0 = time.time()
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(xtr))
            for i in range(0, len(xtr), batch):
                rows = order[i:i + batch]
                out = model(xtr[rows])
                if softmax_out:
                    p = torch.softmax(out, 1).clamp(1e-7, 1 - 1e-7)
                    loss = -torch.log(p).gather(1, ytr[rows][:, None]).mean()
                else:
                    loss = nn.functional.cross_entropy(out, ytr[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                accuracies.append((model(xte).argmax(1) == yte).float().mean().item())
        print(f"{recipe} seed {seed}: per epoch {' '.join(f'{a:.4f}' for a in accuracies)}; "
              f"test accuracy {accuracies[-1]:.4f} ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
