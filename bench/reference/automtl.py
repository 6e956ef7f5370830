#!/usr/bin/env python3
"""PyTorch reference for mtrec's AutoMTL super-network training-step benchmark.

    bench/.venv/bin/python bench/reference/automtl.py --data DIR --variant peer \
        --threads 2 --steps 6 --warmup 1 [--batch 2048]

prints one JSON line on stdout

    {"workload": "automtl-supernet", "engine": "pytorch-peer", "threads": 2,
     "value": 1234.0, "unit": "examples/s"}

and a short human summary on stderr. The mtrec benchmark (`mtrec-bench --workload
automtl-supernet`) runs this script and mtrec's search step alternately on the same DIR
with the same thread count and reports the ratio (see docs/benchmarks.md).

What is timed is one step of the joint phase of the AutoMTL search (PD-DARTS, phase 2;
docs/spec.md section 4): forward through the DESAN super-network with Bernoulli-sampled
gates, the mean of the per-task losses, backward, then one Adam step on the weights and
one Adam step on the architecture parameters, both on the same batch.

Data contract (DIR is written by mtrec)
---------------------------------------
The data layout of bench/reference/mmoe.py (DIR/data.bin: int32 sparse ids [n_rows,
n_sparse], float32 dense [n_rows, n_dense], float32 labels [n_rows, n_tasks], little
endian, row-major, one after another). DIR/meta.json holds mmoe.py's shared keys

    workload, n_rows, n_sparse, n_dense, n_tasks, vocab_sizes, emb_dim, emb_init_std,
    task_kinds, batch

and the search space and search hyper-parameters:

    "n_layers": int,            MoE layers L
    "n_experts": int,           experts per layer N
    "n_blocks": int,            mixture-of-operation blocks per expert K
    "block_width": int,         output width of every block
    "candidates": [str],        "identity" | "mlp-<h>", in mtrec's candidate order
    "tower_hidden": [int],      (Linear, BatchNorm, ReLU, Dropout) per width, then Linear -> 1
    "dropout": float,           of the MLP candidates and the towers
    "sample_gates": bool,       true: Bernoulli(p) forward; false: forward 1 (both STE)
    "learning_rate": float,     Adam on the weights
    "weight_decay": float,
    "arch_learning_rate": float, Adam on the architecture parameters
    "arch_weight_decay": float,
    "adam_eps": float,          optional (default 1e-5, burn's Adam default, which mtrec uses)
    "n_params": int             optional: mtrec's `num_params` (parameters plus batch-norm
                                running means and variances); checked when present

The model (mtrec-arch's `AutoMtl::supernet`)
--------------------------------------------
F sparse fields embedded with E = emb_dim (N(0, emb_init_std^2)), D dense values.
- z = concat(emb_0, ..., emb_{F-1}, dense)                       [B, F*E + D]
- Feature selection, one per first-layer expert j: gate vectors a_single[F], a_inter[F]
  (initialised 0), m = STE(sigmoid(a)); input_j = concat(flatten(m_single * emb),
  FM(m_inter * emb), dense) with FM(e) = 0.5 * ((sum_f e_f)^2 - sum_f e_f^2)  [B, E*(F+1)+D]
- Layers l = 0..L-1 of N experts, each K mixed blocks; block k of an expert of layer 0 reads
  input_j (k = 0) or the previous block; every other block reads block_width values.
  Mixed block: sum_i softmax(alpha)_i * op_i(x), alpha ~ N(0, 1e-3^2); candidates:
  identity (a true skip when widths agree, else a bias-free Linear) and
  mlp-h = Dropout -> Linear(in, h) -> BatchNorm1d(h) -> ReLU -> Linear(h, out) -> ReLU.
- Consumers of layer l: the N experts of layer l+1, or the T towers after the last layer.
  Consumer c mixes the layer's expert outputs with softmax(W_c z) * STE(sigmoid(b_c))
  (W_c bias-free, b_c initialised 0; no renormalisation after masking).
- Towers: (Linear, BatchNorm1d, ReLU, Dropout) per tower_hidden width, then Linear -> 1.
- Loss: mean over tasks of the batch-mean BCE-with-logits (MSE for regression tasks).
- Architecture parameters: every a_single, a_inter, b_c and alpha; everything else is a
  weight. Two Adam optimizers (L2 weight decay as PyTorch's `weight_decay`), both stepping
  every batch. Linear layers keep PyTorch's default init, as mtrec does.
STE (straight-through): p = sigmoid(a); forward value `hard` (Bernoulli(p) sample in
training when sample_gates, else 1), gradient of p (m = p + (hard - p).detach()).

Two ways of writing the same network:
- peer:  as the authors' PasaLab/AutoMTL code is organised (written from the description
         in docs/spec.md, not copied): one nn.Embedding per field; every candidate op of a
         block its own module in a ModuleList, their outputs stacked and weighted by
         softmax(alpha); one gate Linear per consumer; separate gate parameter vectors;
         default (for-loop) Adam.
- fused: the network as mtrec evaluates it: one embedding table with per-field offsets;
         per block, the first Linear layers of all MLP candidates as one
         Linear(in, sum h) and one BatchNorm1d(sum h) (batch norm is per feature, so this
         equals one norm per candidate; the candidates share a dropout mask on their common
         input, as in mtrec), the second layers separate; all consumers' gate networks of a
         layer as one Linear(z, C*N) and their mixtures as one bmm; all gate logits as one
         parameter vector; fused Adam.
Both draw the gate noise as one uniform vector per forward, in the same order, so that
`--selftest` can check that they compute the same function (weights copied from peer to
fused, dropout 0): outputs, loss, gradients and three steps of both optimizers.

Timing: torch.set_num_threads(threads); sequential batches (no shuffling) cycling over the
floor(n_rows / batch) full batches; `warmup` untimed steps, then `steps` timed steps of
forward + backward + both Adam steps; value = steps * batch / seconds.

Exit status: 0 on success, 3 when torch or numpy cannot be imported (the benchmark then
reports the reference as skipped), anything else is a failure.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the benchmark reports the reference as skipped
    print(f"automtl.py: {exc}; install the reference with `bash bench/setup_reference.sh` "
          "and run this script with bench/.venv/bin/python", file=sys.stderr)
    sys.exit(3)

# Same directory: the data contract and its loaders are mmoe.py's.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmoe import (  # noqa: E402
    base_parser, check_args, check_cli, load_data, report, setup_run, timed, write_random_dir,
)

META_KEYS = (
    "workload", "n_rows", "n_sparse", "n_dense", "n_tasks", "vocab_sizes", "emb_dim",
    "emb_init_std", "task_kinds", "batch", "n_layers", "n_experts", "n_blocks",
    "block_width", "candidates", "tower_hidden", "dropout", "sample_gates", "learning_rate",
    "weight_decay", "arch_learning_rate", "arch_weight_decay",
)
TASK_KINDS = ("binary", "regression")
BURN_ADAM_EPS = 1e-5


# --------------------------------------------------------------------------- meta

def parse_candidate(name: str) -> int:
    """0 for identity, h for mlp-h."""
    name = name.lower()
    if name == "identity":
        return 0
    if name.startswith("mlp-") and name[4:].isdigit() and int(name[4:]) > 0:
        return int(name[4:])
    raise SystemExit(f"meta.json: unknown candidate {name!r}, expected identity or mlp-<h>")


def load_meta(data_dir: str) -> dict:
    with open(os.path.join(data_dir, "meta.json")) as f:
        meta = json.load(f)
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise SystemExit(f"{data_dir}/meta.json: missing keys {missing} (written by "
                         "`mtrec-bench --workload automtl-supernet`?)")
    if len(meta["vocab_sizes"]) != meta["n_sparse"]:
        raise SystemExit(f"meta.json: {len(meta['vocab_sizes'])} vocab_sizes for "
                         f"n_sparse = {meta['n_sparse']}")
    if len(meta["task_kinds"]) != meta["n_tasks"]:
        raise SystemExit(f"meta.json: {len(meta['task_kinds'])} task_kinds for "
                         f"n_tasks = {meta['n_tasks']}")
    bad = [k for k in meta["task_kinds"] if k not in TASK_KINDS]
    if bad:
        raise SystemExit(f"meta.json: unknown task kinds {bad}, expected {TASK_KINDS}")
    for k in ("n_layers", "n_experts", "n_blocks", "block_width"):
        if meta[k] < 1:
            raise SystemExit(f"meta.json: {k} must be >= 1")
    if not meta["candidates"]:
        raise SystemExit("meta.json: candidates must list at least one op")
    for c in meta["candidates"]:
        parse_candidate(c)
    return meta


# --------------------------------------------------------------------------- shared

def ste(logits: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """Straight-through gate: forward 1[noise < p] (or 1 without noise), gradient of p."""
    p = torch.sigmoid(logits)
    hard = torch.ones_like(p) if noise is None else (noise < p).to(p.dtype)
    return p + (hard - p).detach()


def fm(e: torch.Tensor) -> torch.Tensor:
    """Second-order FM interaction kept as a vector: [B, F, E] -> [B, E]."""
    s = e.sum(dim=1)
    return 0.5 * (s * s - (e * e).sum(dim=1))


def consumers(meta: dict, layer: int) -> int:
    return meta["n_experts"] if layer + 1 < meta["n_layers"] else meta["n_tasks"]


def gate_sizes(meta: dict) -> list[int]:
    """Element counts of every gate vector, in the order both variants use:
    per first-layer expert (single, interaction), then per layer its consumers."""
    f, n = meta["n_sparse"], meta["n_experts"]
    sizes = [f, f] * n if f else []
    for l in range(meta["n_layers"]):
        sizes += [n] * consumers(meta, l)
    return sizes


def widths(meta: dict) -> tuple[int, int, int]:
    """(z width, first-layer expert input width, block width)."""
    f, e, d = meta["n_sparse"], meta["emb_dim"], meta["n_dense"]
    return f * e + d, f * e + (e if f else 0) + d, meta["block_width"]


def tower(meta: dict) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = meta["block_width"]
    for h in meta["tower_hidden"]:
        layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(meta["dropout"])]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class SuperNet(nn.Module):
    """What both variants share: the gate noise, the towers, the loss, the optimizers."""

    def __init__(self, meta: dict):
        super().__init__()
        self.meta = meta
        self.kinds = list(meta["task_kinds"])
        self.sample = bool(meta["sample_gates"])
        self.sizes = gate_sizes(meta)
        self.towers = nn.ModuleList(tower(meta) for _ in range(meta["n_tasks"]))

    def gate_noise(self) -> list[torch.Tensor | None]:
        """One uniform draw for every gate element of this forward, split per gate vector."""
        if not (self.training and self.sample):
            return [None] * len(self.sizes)
        return list(torch.rand(sum(self.sizes)).split(self.sizes))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        terms = [F.binary_cross_entropy_with_logits(logits[:, t], labels[:, t]) if kind == "binary"
                 else F.mse_loss(logits[:, t], labels[:, t]) for t, kind in enumerate(self.kinds)]
        return torch.stack(terms).mean()

    def arch_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def optimizers(self, fused: bool) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        arch_ids = {id(p) for p in self.arch_parameters()}
        weights = [p for p in self.parameters() if id(p) not in arch_ids]
        eps = self.meta.get("adam_eps", BURN_ADAM_EPS)
        m = self.meta

        def adam(params, lr, wd):
            if fused:
                try:
                    return torch.optim.Adam(params, lr=lr, weight_decay=wd, eps=eps, fused=True)
                except (RuntimeError, TypeError):  # older torch without fused CPU Adam
                    return torch.optim.Adam(params, lr=lr, weight_decay=wd, eps=eps,
                                            foreach=True)
            return torch.optim.Adam(params, lr=lr, weight_decay=wd, eps=eps)

        return (adam(weights, m["learning_rate"], m["weight_decay"]),
                adam(self.arch_parameters(), m["arch_learning_rate"], m["arch_weight_decay"]))


# --------------------------------------------------------------------------- peer

class IdentityOp(nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.proj = nn.Linear(d_in, d_out, bias=False) if d_in != d_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class MlpOp(nn.Module):
    def __init__(self, d_in: int, h: int, d_out: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_in, h), nn.BatchNorm1d(h),
                                 nn.ReLU(), nn.Linear(h, d_out), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PeerMixedBlock(nn.Module):
    """Every candidate its own module; outputs stacked and weighted by softmax(alpha)."""

    def __init__(self, candidates: list[int], d_in: int, d_out: int, dropout: float):
        super().__init__()
        self.ops = nn.ModuleList(IdentityOp(d_in, d_out) if h == 0
                                 else MlpOp(d_in, h, d_out, dropout) for h in candidates)
        self.alpha = nn.Parameter(torch.randn(len(candidates)) * 1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.alpha, dim=0)
        outs = torch.stack([op(x) for op in self.ops], dim=0)  # [n_ops, B, out]
        return (outs * w.view(-1, 1, 1)).sum(dim=0)


class PeerLayer(nn.Module):
    def __init__(self, meta: dict, layer: int, candidates: list[int]):
        super().__init__()
        z, d0, w = widths(meta)
        n, c = meta["n_experts"], consumers(meta, layer)
        self.experts = nn.ModuleList(
            nn.Sequential(*(PeerMixedBlock(candidates, d0 if layer == 0 and k == 0 else w, w,
                                           meta["dropout"]) for k in range(meta["n_blocks"])))
            for _ in range(n))
        self.gates = nn.ModuleList(nn.Linear(z, n, bias=False) for _ in range(c))
        self.connections = nn.ParameterList(nn.Parameter(torch.zeros(n)) for _ in range(c))


class PeerAutoMtl(SuperNet):
    """The super-network with one module per field, candidate, gate and tower."""

    def __init__(self, meta: dict):
        super().__init__(meta)
        candidates = [parse_candidate(c) for c in meta["candidates"]]
        self.embeddings = nn.ModuleList(nn.Embedding(v, meta["emb_dim"])
                                        for v in meta["vocab_sizes"])
        for emb in self.embeddings:
            nn.init.normal_(emb.weight, std=meta["emb_init_std"])
        f = meta["n_sparse"]
        self.single = nn.ParameterList(nn.Parameter(torch.zeros(f))
                                       for _ in range(meta["n_experts"] if f else 0))
        self.inter = nn.ParameterList(nn.Parameter(torch.zeros(f))
                                      for _ in range(meta["n_experts"] if f else 0))
        self.layers = nn.ModuleList(PeerLayer(meta, l, candidates)
                                    for l in range(meta["n_layers"]))

    def arch_parameters(self) -> list[nn.Parameter]:
        """Gate vectors in gate_sizes order, then the alphas in module order."""
        params: list[nn.Parameter] = []
        for single, inter in zip(self.single, self.inter):
            params += [single, inter]
        for layer in self.layers:
            params += list(layer.connections)
        return params + [m.alpha for m in self.modules() if isinstance(m, PeerMixedBlock)]

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        noise = iter(self.gate_noise())
        b = dense.shape[0]
        if self.embeddings:
            emb = torch.stack([e(sparse[:, i]) for i, e in enumerate(self.embeddings)], dim=1)
            z = torch.cat([emb.flatten(1), dense], dim=1)
        else:
            emb, z = None, dense
        inputs = []
        for j in range(self.meta["n_experts"]):
            if emb is None:
                inputs.append(dense)
                continue
            ms = ste(self.single[j], next(noise)).view(1, -1, 1)
            mi = ste(self.inter[j], next(noise)).view(1, -1, 1)
            inputs.append(torch.cat([(emb * ms).reshape(b, -1), fm(emb * mi), dense], dim=1))
        for layer in self.layers:
            outs = torch.stack([expert(x) for expert, x in zip(layer.experts, inputs)], dim=1)
            inputs = []
            for gate, conn in zip(layer.gates, layer.connections):
                g = torch.softmax(gate(z), dim=1) * ste(conn, next(noise))  # [B, N]
                inputs.append(torch.sum(outs * g.unsqueeze(-1), dim=1))  # [B, W]
        return torch.cat([t(x) for t, x in zip(self.towers, inputs)], dim=1)  # [B, T]


# --------------------------------------------------------------------------- fused

class FusedMixedBlock(nn.Module):
    """All MLP candidates' first layers as one Linear + one BatchNorm1d, as mtrec."""

    def __init__(self, candidates: list[int], d_in: int, d_out: int, dropout: float):
        super().__init__()
        self.candidates = candidates
        self.hs = [h for h in candidates if h > 0]
        total = sum(self.hs)
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(d_in, total) if total else None
        self.norm = nn.BatchNorm1d(total) if total else None
        self.outs = nn.ModuleList(nn.Linear(h, d_out) for h in self.hs)
        self.proj = nn.Linear(d_in, d_out, bias=False) if 0 in candidates and d_in != d_out \
            else None
        self.alpha = nn.Parameter(torch.randn(len(candidates)) * 1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = iter(())
        if self.hidden is not None:
            h = F.relu(self.norm(self.hidden(self.dropout(x))))
            parts = iter(h.split(self.hs, dim=1))
        outs, mlp = [], iter(self.outs)
        for c in self.candidates:
            if c == 0:
                outs.append(x if self.proj is None else self.proj(x))
            else:
                outs.append(F.relu(next(mlp)(next(parts))))
        w = torch.softmax(self.alpha, dim=0)
        return (torch.stack(outs, dim=0) * w.view(-1, 1, 1)).sum(dim=0)


class FusedLayer(nn.Module):
    def __init__(self, meta: dict, layer: int, candidates: list[int]):
        super().__init__()
        z, d0, w = widths(meta)
        self.n, self.c = meta["n_experts"], consumers(meta, layer)
        self.experts = nn.ModuleList(
            nn.Sequential(*(FusedMixedBlock(candidates, d0 if layer == 0 and k == 0 else w, w,
                                            meta["dropout"]) for k in range(meta["n_blocks"])))
            for _ in range(self.n))
        self.gates = nn.Linear(z, self.c * self.n, bias=False)


class FusedAutoMtl(SuperNet):
    """The same super-network as PeerAutoMtl, evaluated as mtrec evaluates it."""

    def __init__(self, meta: dict):
        super().__init__(meta)
        candidates = [parse_candidate(c) for c in meta["candidates"]]
        vocab = meta["vocab_sizes"]
        self.embedding = None
        if meta["n_sparse"]:
            self.embedding = nn.Embedding(sum(vocab), meta["emb_dim"])
            nn.init.normal_(self.embedding.weight, std=meta["emb_init_std"])
        self.register_buffer("offsets", torch.tensor([0] + list(np.cumsum(vocab)[:-1]),
                                                     dtype=torch.int64)[: len(vocab)])
        self.gate_logits = nn.Parameter(torch.zeros(sum(self.sizes)))
        self.layers = nn.ModuleList(FusedLayer(meta, l, candidates)
                                    for l in range(meta["n_layers"]))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.gate_logits] + [m.alpha for m in self.modules()
                                     if isinstance(m, FusedMixedBlock)]

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        noise = self.gate_noise()
        if noise[0] is None:
            masks = ste(self.gate_logits, None).split(self.sizes)
        else:
            masks = ste(self.gate_logits, torch.cat(noise)).split(self.sizes)
        masks = iter(masks)
        b = dense.shape[0]
        n, f = self.meta["n_experts"], self.meta["n_sparse"]
        if self.embedding is not None:
            emb = self.embedding(sparse + self.offsets)  # [B, F, E]
            z = torch.cat([emb.reshape(b, -1), dense], dim=1)
            inputs = []
            for _ in range(n):
                ms = next(masks).view(1, f, 1)
                mi = next(masks).view(1, f, 1)
                inputs.append(torch.cat([(emb * ms).reshape(b, -1), fm(emb * mi), dense], dim=1))
        else:
            z, inputs = dense, [dense] * n
        for layer in self.layers:
            outs = torch.stack([expert(x) for expert, x in zip(layer.experts, inputs)], dim=1)
            conn = torch.stack([next(masks) for _ in range(layer.c)])  # [C, N]
            g = torch.softmax(layer.gates(z).view(b, layer.c, layer.n), dim=-1) * conn
            inputs = torch.bmm(g, outs).unbind(dim=1)  # C x [B, W]
        return torch.cat([t(x) for t, x in zip(self.towers, inputs)], dim=1)

    @torch.no_grad()
    def copy_from(self, peer: PeerAutoMtl) -> None:
        """Loads the weights of an equivalent PeerAutoMtl (used by --selftest)."""
        if self.embedding is not None:
            self.embedding.weight.copy_(torch.cat([e.weight for e in peer.embeddings]))
        logits = []
        for s, i in zip(peer.single, peer.inter):
            logits += [s, i]
        for layer in peer.layers:
            logits += list(layer.connections)
        self.gate_logits.copy_(torch.cat(logits))
        for mine, theirs in zip(self.layers, peer.layers):
            mine.gates.weight.copy_(torch.cat([g.weight for g in theirs.gates]))
            for e_mine, e_theirs in zip(mine.experts, theirs.experts):
                for blk, pblk in zip(e_mine, e_theirs):
                    blk.alpha.copy_(pblk.alpha)
                    mlps = [op.net for op in pblk.ops if isinstance(op, MlpOp)]
                    if blk.hidden is not None:
                        blk.hidden.weight.copy_(torch.cat([m[1].weight for m in mlps]))
                        blk.hidden.bias.copy_(torch.cat([m[1].bias for m in mlps]))
                        for name in ("weight", "bias", "running_mean", "running_var"):
                            getattr(blk.norm, name).copy_(
                                torch.cat([getattr(m[2], name) for m in mlps]))
                    for out, m in zip(blk.outs, mlps):
                        out.load_state_dict(m[4].state_dict())
                    if blk.proj is not None:
                        ident = [op for op in pblk.ops if isinstance(op, IdentityOp)][0]
                        blk.proj.weight.copy_(ident.proj.weight)
        self.towers.load_state_dict(peer.towers.state_dict())


VARIANTS = {"peer": PeerAutoMtl, "fused": FusedAutoMtl}


def mtrec_count(model: nn.Module) -> int:
    """What burn's `num_params` counts: parameters plus batch-norm running means and
    variances."""
    stats = sum(m.running_mean.numel() + m.running_var.numel() for m in model.modules()
                if isinstance(m, nn.BatchNorm1d))
    return sum(p.numel() for p in model.parameters()) + stats


# --------------------------------------------------------------------------- timing

def run(args) -> dict:
    meta = load_meta(args.data)
    batch, n_batches, (sparse, dense, labels) = setup_run(args, meta)

    model = VARIANTS[args.variant](meta)
    n_params = sum(p.numel() for p in model.parameters())
    if "n_params" in meta and meta["n_params"] != mtrec_count(model):
        raise SystemExit(f"{args.variant}: {mtrec_count(model)} parameters and batch-norm "
                         f"statistics, mtrec's super-network has {meta['n_params']}: the two "
                         "models differ")
    model.train()
    weight_opt, arch_opt = model.optimizers(fused=args.variant == "fused")

    def step(i: int) -> torch.Tensor:
        lo = (i % n_batches) * batch
        hi = lo + batch
        loss = model.loss(model(sparse[lo:hi], dense[lo:hi]), labels[lo:hi])
        weight_opt.zero_grad(set_to_none=True)
        arch_opt.zero_grad(set_to_none=True)
        loss.backward()
        weight_opt.step()
        arch_opt.step()
        return loss

    seconds, loss = timed(step, args.warmup, args.steps)
    return report(meta, args, batch, seconds, loss, f"{n_params:,} parameters, ")


# --------------------------------------------------------------------------- selftest

def tiny_meta(dropout: float, sample_gates: bool = True) -> dict:
    return {"workload": "selftest", "n_rows": 300, "n_sparse": 3, "n_dense": 5, "n_tasks": 2,
            "vocab_sizes": [7, 11, 4], "emb_dim": 4, "emb_init_std": 0.05,
            "task_kinds": ["binary", "regression"], "batch": 32, "n_layers": 2,
            "n_experts": 3, "n_blocks": 2, "block_width": 6,
            "candidates": ["identity", "mlp-4", "mlp-8"], "tower_hidden": [5],
            "dropout": dropout, "sample_gates": sample_gates, "learning_rate": 1e-2,
            "weight_decay": 1e-5, "arch_learning_rate": 1e-2, "arch_weight_decay": 1e-6}


@torch.no_grad()
def grads_in_fused_layout(peer: PeerAutoMtl, meta: dict) -> FusedAutoMtl:
    """A FusedAutoMtl whose parameters hold the peer's gradients (zero where none)."""
    out = FusedAutoMtl(meta)
    params = list(peer.parameters())
    values = [p.data for p in params]
    for p in params:
        p.data = p.grad if p.grad is not None else torch.zeros_like(p)
    out.copy_from(peer)
    for p, v in zip(params, values):
        p.data = v
    return out


def assert_same_function(sparse, dense, labels, sample_gates: bool, steps: int) -> None:
    meta = tiny_meta(dropout=0.0, sample_gates=sample_gates)
    peer, fused = PeerAutoMtl(meta), FusedAutoMtl(meta)
    counts = [sum(p.numel() for p in m.parameters()) for m in (peer, fused)]
    assert counts[0] == counts[1], f"parameter counts differ: {counts}"
    arch = [sum(p.numel() for p in m.arch_parameters()) for m in (peer, fused)]
    # 3 experts x 2 x 3 fields + (3 + 2) consumers x 3 + 2 x 3 x 2 blocks x 3 candidates.
    assert arch[0] == arch[1] == 18 + 15 + 36, arch
    fused.copy_from(peer)
    before_norm = {n for n, _ in fused.named_parameters() if n.endswith("hidden.bias")}
    before_norm |= {f"towers.{t}.{4 * k}.bias" for t in range(meta["n_tasks"])
                    for k in range(len(meta["tower_hidden"]))}
    opts = (peer.optimizers(fused=False), fused.optimizers(fused=True))
    for i in range(steps + 1):
        s, x, y = (t[32 * i:32 * i + 32] for t in (sparse, dense, labels))
        outs = []
        for m in (peer, fused):
            torch.manual_seed(100 + i)  # the same gate noise for both
            outs.append(m(s, x))
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
        losses = [m.loss(o, y) for m, o in zip((peer, fused), outs)]
        torch.testing.assert_close(losses[0], losses[1], rtol=1e-4, atol=1e-5)
        for (w_opt, a_opt), loss in zip(opts, losses):
            w_opt.zero_grad()
            a_opt.zero_grad()
            loss.backward()
        expected = grads_in_fused_layout(peer, meta)
        for (name, p), q in zip(fused.named_parameters(), expected.parameters()):
            if name in before_norm:
                continue  # zero but for rounding: batch norm removes the bias
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            torch.testing.assert_close(g, q, rtol=1e-3, atol=1e-5, msg=lambda m: f"{name}: {m}")
        if i == steps:
            break
        for w_opt, a_opt in opts:
            w_opt.step()
            a_opt.step()


def selftest() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="mtrec-automtl-selftest-") as d:
        write_random_dir(d, tiny_meta(dropout=0.0), seed=1)
        sparse, dense, labels = load_data(d, load_meta(d))
        # Sampled gates: one step. A sampled-out expert's weights have a gradient that is
        # zero up to rounding (batch norm's backward), which Adam turns into updates of
        # either sign, so several steps compare only with the gates' forward value at 1.
        assert_same_function(sparse, dense, labels, sample_gates=True, steps=0)
        assert_same_function(sparse, dense, labels, sample_gates=False, steps=3)
        print("selftest: peer and fused agree (outputs, loss and every gradient but those of "
              "biases before a batch norm; sampled gates, and 3 steps of both optimizers with "
              "straight-through gates)",
              file=sys.stderr)

        # The CLI end to end: one valid JSON line per variant, with dropout on.
        meta = tiny_meta(dropout=0.2)
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f)
        check_cli(os.path.abspath(__file__), d, VARIANTS, ["--steps", "3", "--warmup", "1"])
    print("selftest: ok", file=sys.stderr)


# --------------------------------------------------------------------------- main

def main() -> None:
    p = base_parser(__doc__, VARIANTS, steps=6, warmup=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--selftest", action="store_true",
                   help="check both variants on a tiny random DIR and exit")
    args = p.parse_args()
    if args.selftest:
        selftest()
        return
    if not args.data:
        p.error("--data is required (or --selftest)")
    check_args(p, args)
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
