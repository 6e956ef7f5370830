#!/usr/bin/env python3
"""PyTorch reference for mtrec's MMoE training-throughput benchmark.

    bench/.venv/bin/python bench/reference/mmoe.py --data DIR --variant peer \
        --threads 2 --steps 200 --warmup 20 [--batch 1024] [--lr 1e-3]

prints one JSON line on stdout

    {"workload": "mmoe-synthetic", "engine": "pytorch-peer", "threads": 2,
     "value": 147000.0, "unit": "examples/s"}

and a short human summary on stderr. The mtrec benchmark runs this script and
mtrec alternately on the same DIR with the same thread count and reports the
ratio (see docs/benchmarks.md).

Data contract (DIR is written by mtrec)
---------------------------------------
DIR/meta.json:
    {"workload": str,           name printed in the output line
     "n_rows": int,
     "n_sparse": int,           categorical fields (0 for mmoe-synthetic)
     "n_dense": int,
     "n_tasks": int,
     "vocab_sizes": [int],      one per sparse field
     "emb_dim": int,
     "emb_init_std": float,     embeddings are initialised N(0, std^2)
     "task_kinds": ["binary" | "regression"],   one per task
     "n_experts": int,
     "expert_hidden": [int],    Linear+ReLU layers of every expert
     "tower_hidden": [int],     Linear+ReLU layers of every tower, then Linear -> 1
     "batch": int}              default for --batch
DIR/data.bin: little-endian raw arrays, one after another, no header:
    sparse ids  int32   [n_rows, n_sparse]  row-major
    dense       float32 [n_rows, n_dense]   row-major
    labels      float32 [n_rows, n_tasks]   row-major
so its size is 4 * n_rows * (n_sparse + n_dense + n_tasks) bytes.

The model
---------
x = concat(emb_0[id_0], ..., emb_{S-1}[id_{S-1}], dense)     width S*emb_dim + n_dense
expert_e(x) = MLP(x; expert_hidden)                          Linear+ReLU per layer
g_t(x) = softmax(W_t x + b_t)                                one gate per task, over experts
y_t = Linear(MLP(sum_e g_t(x)_e expert_e(x); tower_hidden) -> 1)
loss = sum_t mean_batch(BCEWithLogits(y_t, label_t) | MSE(y_t, label_t)); Adam(lr) on all
parameters. Linear layers keep PyTorch's default init (U(+-1/sqrt(fan_in)) for
weights and biases); embeddings use emb_init_std.

Three ways of writing the same model:
- peer:    as torch-rechub and MTReclib write MMoE: a ModuleList of expert MLPs,
           a list of gates and a list of towers, torch.stack of the expert
           outputs, one weighted sum and one loss term per task, default Adam.
- sparse:  batched with a sparse-gradient embedding table stepped by SparseAdam
           (the other parameters by fused Adam): the fastest for large vocabularies
           (`mmoe-large`); lazy updates, as mtrec's `train.lazy_embeddings`.
- batched: the fastest eager PyTorch we know for it: one embedding table for all
           fields (ids offset per field), all experts' first layers as one
           Linear(in -> E*H), deeper expert layers and all towers as batched
           matmuls with weights [E, H_in, H_out] / [T, H_in, H_out], all gates as
           one Linear(in -> T*E), the mixture of all tasks as one bmm, the
           loss in one call per task kind, fused Adam.
`--selftest` checks that both compute the same function (copying the peer's
weights into the batched model), then runs the CLI on a tiny random DIR.

Timing: torch.set_num_threads(threads); sequential batches (no shuffling)
cycling over the floor(n_rows / batch) full batches; `warmup` untimed steps,
then `steps` timed steps of forward + backward + Adam step;
value = steps * batch / seconds.

Exit status: 0 on success, 3 when torch or numpy cannot be imported (the
benchmark then reports the reference as skipped), anything else is a failure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the benchmark reports the reference as skipped
    print(f"mmoe.py: {exc}; install the reference with `bash bench/setup_reference.sh` "
          "and run this script with bench/.venv/bin/python", file=sys.stderr)
    sys.exit(3)

META_KEYS = (
    "workload", "n_rows", "n_sparse", "n_dense", "n_tasks", "vocab_sizes", "emb_dim",
    "emb_init_std", "task_kinds", "n_experts", "expert_hidden", "tower_hidden", "batch",
)
TASK_KINDS = ("binary", "regression")


# --------------------------------------------------------------------------- data

def load_meta(data_dir: str) -> dict:
    with open(os.path.join(data_dir, "meta.json")) as f:
        meta = json.load(f)
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise SystemExit(f"{data_dir}/meta.json: missing keys {missing}")
    if len(meta["vocab_sizes"]) != meta["n_sparse"]:
        raise SystemExit(f"meta.json: {len(meta['vocab_sizes'])} vocab_sizes for "
                         f"n_sparse = {meta['n_sparse']}")
    if len(meta["task_kinds"]) != meta["n_tasks"]:
        raise SystemExit(f"meta.json: {len(meta['task_kinds'])} task_kinds for "
                         f"n_tasks = {meta['n_tasks']}")
    bad = [k for k in meta["task_kinds"] if k not in TASK_KINDS]
    if bad:
        raise SystemExit(f"meta.json: unknown task kinds {bad}, expected {TASK_KINDS}")
    if not meta["expert_hidden"]:
        raise SystemExit("meta.json: expert_hidden must name at least one layer")
    return meta


def load_data(data_dir: str, meta: dict):
    """Returns (sparse int64 [n, S], dense f32 [n, D], labels f32 [n, T]) tensors."""
    n, s, d, t = meta["n_rows"], meta["n_sparse"], meta["n_dense"], meta["n_tasks"]
    path = os.path.join(data_dir, "data.bin")
    want = 4 * n * (s + d + t)
    got = os.path.getsize(path)
    if got != want:
        raise SystemExit(f"{path}: {got} bytes, but meta.json implies 4*{n}*({s}+{d}+{t}) "
                         f"= {want}")
    sparse = np.fromfile(path, dtype="<i4", count=n * s, offset=0).reshape(n, s)
    dense = np.fromfile(path, dtype="<f4", count=n * d, offset=4 * n * s).reshape(n, d)
    labels = np.fromfile(path, dtype="<f4", count=n * t, offset=4 * n * (s + d)).reshape(n, t)
    for field, vocab in enumerate(meta["vocab_sizes"]):
        col = sparse[:, field]
        if n and (col.min() < 0 or col.max() >= vocab):
            raise SystemExit(f"{path}: sparse field {field} has ids in "
                             f"[{col.min()}, {col.max()}], vocab size {vocab}")
    return (torch.from_numpy(sparse.astype(np.int64)),
            torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32)))


def write_random_dir(data_dir: str, meta: dict, seed: int = 0) -> None:
    """Writes a DIR following the contract above, with random ids, dense values
    and labels (0/1 for binary tasks, N(0, 1) for regression tasks)."""
    rng = np.random.default_rng(seed)
    n = meta["n_rows"]
    os.makedirs(data_dir, exist_ok=True)
    sparse = np.stack([rng.integers(0, v, size=n) for v in meta["vocab_sizes"]], axis=1) \
        if meta["n_sparse"] else np.zeros((n, 0))
    dense = rng.standard_normal((n, meta["n_dense"]))
    labels = np.stack([(rng.random(n) < 0.3) if k == "binary" else rng.standard_normal(n)
                       for k in meta["task_kinds"]], axis=1)
    with open(os.path.join(data_dir, "data.bin"), "wb") as f:
        f.write(sparse.astype("<i4").tobytes())
        f.write(dense.astype("<f4").tobytes())
        f.write(labels.astype("<f4").tobytes())
    with open(os.path.join(data_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


def synthetic_meta(n_rows: int) -> dict:
    """The `mmoe-synthetic` workload of docs/benchmarks.md."""
    return {"workload": "mmoe-synthetic", "n_rows": n_rows, "n_sparse": 0, "n_dense": 100,
            "n_tasks": 2, "vocab_sizes": [], "emb_dim": 0, "emb_init_std": 0.01,
            "task_kinds": ["regression", "regression"], "n_experts": 8,
            "expert_hidden": [16], "tower_hidden": [8], "batch": 1024}


def input_width(meta: dict) -> int:
    return meta["n_sparse"] * meta["emb_dim"] + meta["n_dense"]


# --------------------------------------------------------------------------- peer

def mlp(in_dim: int, hidden: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        in_dim = h
    return nn.Sequential(*layers)


class PeerMMoE(nn.Module):
    """MMoE as the peer libraries write it: one module per expert, gate and tower."""

    def __init__(self, meta: dict):
        super().__init__()
        self.kinds = list(meta["task_kinds"])
        self.embeddings = nn.ModuleList(nn.Embedding(v, meta["emb_dim"])
                                        for v in meta["vocab_sizes"])
        for emb in self.embeddings:
            nn.init.normal_(emb.weight, std=meta["emb_init_std"])
        width = input_width(meta)
        expert_out = meta["expert_hidden"][-1]
        self.experts = nn.ModuleList(mlp(width, meta["expert_hidden"])
                                     for _ in range(meta["n_experts"]))
        self.gates = nn.ModuleList(nn.Sequential(nn.Linear(width, meta["n_experts"]),
                                                 nn.Softmax(dim=1))
                                   for _ in range(meta["n_tasks"]))
        tower_out = meta["tower_hidden"][-1] if meta["tower_hidden"] else expert_out
        self.towers = nn.ModuleList(nn.Sequential(mlp(expert_out, meta["tower_hidden"]),
                                                  nn.Linear(tower_out, 1))
                                    for _ in range(meta["n_tasks"]))

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        embs = [emb(sparse[:, i]) for i, emb in enumerate(self.embeddings)]
        x = torch.cat(embs + [dense], dim=1)
        experts = torch.stack([expert(x) for expert in self.experts], dim=1)  # [B, E, H]
        outs = []
        for gate, tower in zip(self.gates, self.towers):
            weights = gate(x).unsqueeze(-1)  # [B, E, 1]
            mixed = torch.sum(experts * weights, dim=1)  # [B, H]
            outs.append(tower(mixed).squeeze(-1))
        return torch.stack(outs, dim=1)  # [B, T]

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for t, kind in enumerate(self.kinds):
            if kind == "binary":
                total = total + F.binary_cross_entropy_with_logits(logits[:, t], labels[:, t])
            else:
                total = total + F.mse_loss(logits[:, t], labels[:, t])
        return total

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=lr)


# --------------------------------------------------------------------------- batched

class BatchedLinear(nn.Module):
    """G independent Linear layers applied to [G, B, in] -> [G, B, out], with
    PyTorch's default Linear init per group (U(+-1/sqrt(in)))."""

    def __init__(self, groups: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(groups, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, 1, out_dim).uniform_(-bound, bound))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, h, self.weight)


class BatchedMMoE(nn.Module):
    """The same model as PeerMMoE, with every per-expert, per-gate and per-tower
    loop turned into one batched product."""

    def __init__(self, meta: dict):
        super().__init__()
        self.kinds = list(meta["task_kinds"])
        self.n_experts, self.n_tasks = meta["n_experts"], meta["n_tasks"]
        vocab = meta["vocab_sizes"]
        self.embedding = None
        if meta["n_sparse"]:
            self.embedding = nn.Embedding(sum(vocab), meta["emb_dim"])
            nn.init.normal_(self.embedding.weight, std=meta["emb_init_std"])
        self.register_buffer("offsets", torch.tensor([0] + list(np.cumsum(vocab)[:-1]),
                                                     dtype=torch.int64)[: len(vocab)])
        width = input_width(meta)
        hidden = meta["expert_hidden"]
        self.expert_in = nn.Linear(width, self.n_experts * hidden[0])
        self.expert_deep = nn.ModuleList(BatchedLinear(self.n_experts, a, b)
                                         for a, b in zip(hidden[:-1], hidden[1:]))
        self.gates = nn.Linear(width, self.n_tasks * self.n_experts)
        tower = [hidden[-1]] + list(meta["tower_hidden"]) + [1]
        self.towers = nn.ModuleList(BatchedLinear(self.n_tasks, a, b)
                                    for a, b in zip(tower[:-1], tower[1:]))
        bin_idx = [t for t, k in enumerate(self.kinds) if k == "binary"]
        reg_idx = [t for t, k in enumerate(self.kinds) if k == "regression"]
        self.register_buffer("bin_idx", torch.tensor(bin_idx, dtype=torch.int64))
        self.register_buffer("reg_idx", torch.tensor(reg_idx, dtype=torch.int64))

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        b = dense.shape[0]
        if self.embedding is not None:
            emb = self.embedding(sparse + self.offsets)  # [B, S, d]
            x = torch.cat([emb.reshape(b, -1), dense], dim=1)
        else:
            x = dense
        h = F.relu(self.expert_in(x)).view(b, self.n_experts, -1).transpose(0, 1)  # [E, B, H]
        for layer in self.expert_deep:
            h = F.relu(layer(h))
        gates = torch.softmax(self.gates(x).view(b, self.n_tasks, self.n_experts), dim=-1)
        # [B, T, E] x [B, E, H] -> [B, T, H], every task's mixture in one bmm.
        mixed = torch.bmm(gates, h.transpose(0, 1))
        z = mixed.transpose(0, 1)  # [T, B, H]
        for i, layer in enumerate(self.towers):
            z = layer(z)
            if i + 1 < len(self.towers):
                z = F.relu(z)
        return z.squeeze(-1).transpose(0, 1)  # [B, T]

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # sum_t mean_b l(b, t) = sum_{b, t} l(b, t) / B over each kind's tasks.
        b = logits.shape[0]
        n_bin, n_reg = len(self.bin_idx), len(self.reg_idx)
        if n_reg == 0:
            return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / b
        if n_bin == 0:
            return F.mse_loss(logits, labels, reduction="sum") / b
        return (F.binary_cross_entropy_with_logits(logits[:, self.bin_idx],
                                                   labels[:, self.bin_idx], reduction="sum")
                + F.mse_loss(logits[:, self.reg_idx], labels[:, self.reg_idx],
                             reduction="sum")) / b

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        try:
            return torch.optim.Adam(self.parameters(), lr=lr, fused=True)
        except (RuntimeError, TypeError):  # older torch without fused CPU Adam
            return torch.optim.Adam(self.parameters(), lr=lr, foreach=True)

    @torch.no_grad()
    def copy_from(self, peer: PeerMMoE) -> None:
        """Loads the weights of an equivalent PeerMMoE (used by --selftest)."""
        if self.embedding is not None:
            self.embedding.weight.copy_(torch.cat([e.weight for e in peer.embeddings]))
        firsts = [expert[0] for expert in peer.experts]
        self.expert_in.weight.copy_(torch.cat([l.weight for l in firsts]))
        self.expert_in.bias.copy_(torch.cat([l.bias for l in firsts]))
        for i, layer in enumerate(self.expert_deep):
            linears = [expert[2 * (i + 1)] for expert in peer.experts]
            layer.weight.copy_(torch.stack([l.weight.t() for l in linears]))
            layer.bias.copy_(torch.stack([l.bias.unsqueeze(0) for l in linears]))
        self.gates.weight.copy_(torch.cat([g[0].weight for g in peer.gates]))
        self.gates.bias.copy_(torch.cat([g[0].bias for g in peer.gates]))
        for i, layer in enumerate(self.towers):
            linears = [[m for m in tower.modules() if isinstance(m, nn.Linear)][i]
                       for tower in peer.towers]
            layer.weight.copy_(torch.stack([l.weight.t() for l in linears]))
            layer.bias.copy_(torch.stack([l.bias.unsqueeze(0) for l in linears]))


class SparseBatchedMMoE(BatchedMMoE):
    """BatchedMMoE whose one embedding table has sparse gradients, stepped by
    SparseAdam (lazy: only the batch's rows and their moments move), the rest by
    fused Adam: the fastest PyTorch for large vocabularies, and the rule mtrec's
    `train.lazy_embeddings` implements."""

    def __init__(self, meta: dict):
        super().__init__(meta)
        if self.embedding is not None:
            dense_table = self.embedding
            self.embedding = nn.Embedding(dense_table.num_embeddings, dense_table.embedding_dim,
                                          sparse=True)
            with torch.no_grad():
                self.embedding.weight.copy_(dense_table.weight)

    def optimizer(self, lr: float):
        rest = [p for n, p in self.named_parameters() if not n.startswith("embedding.")]
        try:
            dense = torch.optim.Adam(rest, lr=lr, fused=True)
        except (RuntimeError, TypeError):
            dense = torch.optim.Adam(rest, lr=lr, foreach=True)
        if self.embedding is None:
            return dense
        return _Both(torch.optim.SparseAdam(list(self.embedding.parameters()), lr=lr), dense)


class _Both:
    """Two optimizers stepped as one."""

    def __init__(self, *optims):
        self.optims = optims

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optims:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for o in self.optims:
            o.step()


VARIANTS = {"peer": PeerMMoE, "batched": BatchedMMoE, "sparse": SparseBatchedMMoE}


# --------------------------------------------------------------------------- timing

def run(args) -> dict:
    meta = load_meta(args.data)
    batch, n_batches, (sparse, dense, labels) = setup_run(args, meta)

    model = VARIANTS[args.variant](meta)
    model.train()
    opt = model.optimizer(args.lr)

    def step(i: int) -> torch.Tensor:
        lo = (i % n_batches) * batch
        hi = lo + batch
        logits = model(sparse[lo:hi], dense[lo:hi])
        loss = model.loss(logits, labels[lo:hi])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    seconds, loss = timed(step, args.warmup, args.steps)
    return report(meta, args, batch, seconds, loss, "")


def setup_run(args, meta: dict):
    """Threads and seed from `args`; the batch size, batches per pass and the loaded data."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    batch = args.batch or meta["batch"]
    n_batches = meta["n_rows"] // batch
    if n_batches == 0:
        raise SystemExit(f"{args.data}: {meta['n_rows']} rows, fewer than one batch of {batch}")
    return batch, n_batches, load_data(args.data, meta)


def timed(step, warmup: int, steps: int):
    """`warmup` untimed calls of `step(i)`, then `steps` timed ones: (seconds, last loss)."""
    for i in range(warmup):
        step(i)
    start = time.perf_counter()
    for i in range(warmup, warmup + steps):
        loss = step(i)
    return time.perf_counter() - start, loss


def report(meta: dict, args, batch: int, seconds: float, loss, detail: str) -> dict:
    """Logs the timing on stderr and returns the JSON record the benchmark reads."""
    value = args.steps * batch / seconds
    print(f"{meta['workload']} pytorch-{args.variant}: torch {torch.__version__}, "
          f"{args.threads} threads, batch {batch}, {detail}{args.steps} steps in "
          f"{seconds:.3f} s, {value:,.0f} examples/s, last loss {loss.item():.4f}",
          file=sys.stderr)
    return {"workload": meta["workload"], "engine": f"pytorch-{args.variant}",
            "threads": args.threads, "value": value, "unit": "examples/s"}


# --------------------------------------------------------------------------- selftest

def selftest() -> None:
    tiny = {"workload": "selftest", "n_rows": 300, "n_sparse": 3, "n_dense": 5, "n_tasks": 3,
            "vocab_sizes": [7, 11, 4], "emb_dim": 4, "emb_init_std": 0.01,
            "task_kinds": ["binary", "regression", "binary"], "n_experts": 3,
            "expert_hidden": [8, 6], "tower_hidden": [5, 3], "batch": 32}
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="mtrec-mmoe-selftest-") as d:
        write_random_dir(d, tiny, seed=1)
        sparse, dense, labels = load_data(d, load_meta(d))
        assert sparse.shape == (300, 3) and dense.shape == (300, 5) and labels.shape == (300, 3)

        # Same function: copy the peer's weights into the batched model, compare the
        # outputs, the loss, and the outputs again after three Adam steps on each.
        peer, batched = PeerMMoE(tiny), BatchedMMoE(tiny)
        assert sum(p.numel() for p in peer.parameters()) == \
            sum(p.numel() for p in batched.parameters()), "parameter counts differ"
        batched.copy_from(peer)
        opts = (peer.optimizer(1e-2), batched.optimizer(1e-2))
        for i in range(4):
            s, x, y = sparse[32 * i:32 * i + 32], dense[32 * i:32 * i + 32], labels[32 * i:32 * i + 32]
            outs = [m(s, x) for m in (peer, batched)]
            torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
            losses = [m.loss(o, y) for m, o in zip((peer, batched), outs)]
            torch.testing.assert_close(losses[0], losses[1], rtol=1e-4, atol=1e-5)
            for opt, loss in zip(opts, losses):
                opt.zero_grad()
                loss.backward()
                opt.step()
        print("selftest: peer and batched agree (outputs, loss, 3 Adam steps)", file=sys.stderr)

        # The sparse variant: the same function, and a step moves only the batch's rows.
        fresh, sp = PeerMMoE(tiny), SparseBatchedMMoE(tiny)
        sp.copy_from(fresh)
        s, x, y = sparse[:8], dense[:8], labels[:8]
        torch.testing.assert_close(fresh(s, x), sp(s, x), rtol=1e-4, atol=1e-5)
        before = sp.embedding.weight.detach().clone()
        opt = sp.optimizer(1e-2)
        opt.zero_grad()
        sp.loss(sp(s, x), y).backward()
        opt.step()
        used = torch.zeros(before.shape[0], dtype=torch.bool)
        used[(s + sp.offsets).flatten()] = True
        moved = (sp.embedding.weight.detach() != before).any(dim=1)
        assert torch.equal(moved, used), "SparseAdam moved rows outside the batch"
        print("selftest: sparse agrees and updates only the batch's rows", file=sys.stderr)

        # The CLI end to end: one valid JSON line per variant.
        check_cli(os.path.abspath(__file__), d, VARIANTS, ["--steps", "5", "--warmup", "2"])
    print("selftest: ok", file=sys.stderr)


def check_cli(script: str, data_dir: str, variants, extra: list[str]) -> None:
    """Runs `script` on `data_dir` once per variant and checks its one JSON line on stdout."""
    for variant in variants:
        cmd = [sys.executable, script, "--data", data_dir, "--variant", variant,
               "--threads", "1", *extra]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        lines = out.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stdout, got {out!r}"
        rec = json.loads(lines[0])
        assert set(rec) == {"workload", "engine", "threads", "value", "unit"}, rec
        assert rec["engine"] == f"pytorch-{variant}" and rec["threads"] == 1, rec
        assert rec["workload"] == "selftest" and rec["unit"] == "examples/s", rec
        assert math.isfinite(rec["value"]) and rec["value"] > 0, rec
        print(f"selftest: {lines[0]}", file=sys.stderr)


# --------------------------------------------------------------------------- main

def base_parser(doc: str, variants, steps: int, warmup: int) -> argparse.ArgumentParser:
    """The options every reference script takes (its own come after)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="DIR with meta.json and data.bin")
    p.add_argument("--variant", choices=sorted(variants), default="peer")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=steps, help="timed training steps")
    p.add_argument("--warmup", type=int, default=warmup, help="untimed steps before timing")
    p.add_argument("--batch", type=int, default=0, help="batch size (default: meta.json's)")
    return p


def check_args(p: argparse.ArgumentParser, args) -> None:
    if args.threads < 1 or args.steps < 1 or args.warmup < 0 or args.batch < 0:
        p.error("--threads and --steps must be >= 1, --warmup and --batch >= 0")


def main() -> None:
    p = base_parser(__doc__, VARIANTS, steps=100, warmup=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--selftest", action="store_true",
                   help="check both variants on a tiny random DIR and exit")
    p.add_argument("--make-synthetic", metavar="DIR",
                   help="write a random mmoe-synthetic DIR (--rows rows) and exit")
    p.add_argument("--rows", type=int, default=100_000)
    args = p.parse_args()
    if args.selftest:
        selftest()
        return
    if args.make_synthetic:
        write_random_dir(args.make_synthetic, synthetic_meta(args.rows))
        print(f"wrote {args.make_synthetic} ({args.rows} rows)", file=sys.stderr)
        return
    if not args.data:
        p.error("--data is required (or --selftest / --make-synthetic)")
    check_args(p, args)
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
