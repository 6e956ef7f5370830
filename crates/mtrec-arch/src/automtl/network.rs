//! The DESAN super-network (spec §4) and, with every choice fixed, a searched architecture.
//!
//! Data flow for `L` layers of `N` experts and `T` tasks:
//! - first-layer expert `j` reads `[m_single * emb (F*E), FM(m_inter * emb) (E), dense (D)]`;
//! - every layer's experts run their blocks; every consumer of the layer (an expert of the next
//!   layer, or a task tower after the last) mixes the layer's outputs with
//!   `softmax(W z) * c`, where `z` is the flat model input and `c` its connection mask, not
//!   renormalised after masking;
//! - towers `[64] -> 1` per task.
//!
//! `z` is the flattened raw embeddings as in the authors' code, plus the dense values: the
//! authors zero-pad the dense part of the gate input, which leaves a dense-only data set (the
//! MMoE synthetic data) with input-independent gates.

use burn::module::{Module, ParamId};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};
use mtrec_data::FeatureMeta;
use mtrec_nn::{FeatureEmbedding, FeatureEmbeddingConfig, ModelInput, torch_linear_init};

use super::block::{Block, MixedBlock, Op};
use super::gate::{BinaryGate, GateMode};
use super::genotype::{ExpertGene, FeatureGene, Genotype, LayerGene, OpKind, TowerGene};
use super::space::SpaceConfig;
use crate::{ModelOutput, MultiTaskModel};

/// The feature-selection module of one first-layer expert.
#[derive(Module, Debug)]
pub struct FeatureSelector {
    pub single: BinaryGate,
    pub interaction: BinaryGate,
}

#[derive(Module, Debug)]
pub struct Expert {
    pub blocks: Vec<Block>,
}

#[derive(Module, Debug)]
pub struct ExpertLayer {
    pub experts: Vec<Expert>,
    /// Every consumer's bias-free gate network as one product over `z`: `[z, C*N]`.
    pub gates: Linear,
    /// Per consumer, the experts of this layer it may mix.
    pub connections: Vec<BinaryGate>,
}

#[derive(Module, Debug)]
pub struct TowerLayer {
    pub linear: Linear,
    pub norm: BatchNorm,
}

/// `(Linear, BatchNorm, ReLU, Dropout)` per hidden width, then `Linear(., 1)`.
#[derive(Module, Debug)]
pub struct Tower {
    pub layers: Vec<TowerLayer>,
    pub dropout: Dropout,
    pub out: Linear,
}

/// Names the genotype export needs.
#[derive(Debug, Clone, Default)]
struct Layout {
    sparse: Vec<String>,
    tasks: Vec<String>,
    block_width: usize,
    tower: Vec<usize>,
    dropout: f64,
    n_dense: usize,
}

#[derive(Module, Debug)]
pub struct AutoMtl {
    pub embedding: FeatureEmbedding,
    /// One per first-layer expert.
    pub features: Vec<FeatureSelector>,
    pub layers: Vec<ExpertLayer>,
    pub towers: Vec<Tower>,
    #[module(skip)]
    mode: GateMode,
    #[module(skip)]
    layout: Layout,
}

fn linear(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out)
        .with_bias(bias)
        .with_initializer(torch_linear_init(d_in))
        .init(device)
}

fn tower(d_in: usize, hidden: &[usize], dropout: f64, device: &Device) -> Tower {
    let mut width = d_in;
    let layers = hidden
        .iter()
        .map(|&h| {
            let layer = TowerLayer {
                linear: linear(width, h, true, device),
                norm: BatchNormConfig::new(h).init(device),
            };
            width = h;
            layer
        })
        .collect();
    Tower {
        layers,
        dropout: DropoutConfig::new(dropout).init(),
        out: linear(width, 1, true, device),
    }
}

impl Tower {
    fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        for layer in &self.layers {
            x = self
                .dropout
                .forward(relu(layer.norm.forward(layer.linear.forward(x))));
        }
        self.out.forward(x)
    }
}

/// Input width of a first-layer expert: single embeddings, the FM vector (only when there are
/// sparse fields) and the dense values.
fn first_width(n_fields: usize, d_emb: usize, n_dense: usize) -> usize {
    let fm = if n_fields > 0 { d_emb } else { 0 };
    n_fields * d_emb + fm + n_dense
}

fn embedding(meta: &FeatureMeta, d_emb: usize, init_std: f64, device: &Device) -> FeatureEmbedding {
    FeatureEmbeddingConfig {
        vocab_sizes: meta.vocab_sizes.clone(),
        bags: crate::model::embedding_bags(meta),
        n_dense: meta.dense_names.len(),
        d_emb,
        init_std,
    }
    .init(device)
}

/// Where a block sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockAt {
    pub layer: usize,
    pub expert: usize,
    pub block: usize,
}

impl std::fmt::Display for BlockAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "layer {} expert {} block {}",
            self.layer, self.expert, self.block
        )
    }
}

/// Which gate vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateAt {
    Single {
        expert: usize,
    },
    Interaction {
        expert: usize,
    },
    /// The mask of consumer `consumer` over the experts of layer `layer`.
    Connection {
        layer: usize,
        consumer: usize,
    },
}

impl AutoMtl {
    /// A fresh super-network: every block mixed, every gate free.
    pub fn supernet(
        space: &SpaceConfig,
        d_emb: usize,
        init_std: f64,
        meta: &FeatureMeta,
        device: &Device,
    ) -> Self {
        let f = meta.vocab_sizes.len();
        let n = space.n_experts;
        let w = space.block_width;
        let z = f * d_emb + meta.dense_names.len();
        let d0 = first_width(f, d_emb, meta.dense_names.len());
        let layers = (0..space.n_layers)
            .map(|l| {
                let consumers = if l + 1 < space.n_layers {
                    n
                } else {
                    meta.task_names.len()
                };
                ExpertLayer {
                    experts: (0..n)
                        .map(|_| Expert {
                            blocks: (0..space.n_blocks)
                                .map(|k| {
                                    let d_in = if l == 0 && k == 0 { d0 } else { w };
                                    Block::Mixed(MixedBlock::new(
                                        &space.candidates,
                                        d_in,
                                        w,
                                        space.dropout,
                                        device,
                                    ))
                                })
                                .collect(),
                        })
                        .collect(),
                    gates: linear(z, consumers * n, false, device),
                    connections: (0..consumers)
                        .map(|_| BinaryGate::searchable(n, device))
                        .collect(),
                }
            })
            .collect();
        let features = (0..n)
            .map(|_| FeatureSelector {
                single: BinaryGate::searchable(f, device),
                interaction: BinaryGate::searchable(f, device),
            })
            .collect();
        let layout = Layout {
            sparse: meta.sparse_names.clone(),
            tasks: meta.task_names.clone(),
            block_width: w,
            tower: space.tower.clone(),
            dropout: space.dropout,
            n_dense: meta.dense_names.len(),
        };
        Self::assemble(features, layers, layout, d_emb, init_std, meta, device)
    }

    /// The parts every network shares (embedding, towers) around its features and layers.
    fn assemble(
        features: Vec<FeatureSelector>,
        layers: Vec<ExpertLayer>,
        layout: Layout,
        d_emb: usize,
        init_std: f64,
        meta: &FeatureMeta,
        device: &Device,
    ) -> Self {
        Self {
            embedding: embedding(meta, d_emb, init_std, device),
            features,
            layers,
            towers: (0..meta.task_names.len())
                .map(|_| tower(layout.block_width, &layout.tower, layout.dropout, device))
                .collect(),
            mode: GateMode::AllOn,
            layout,
        }
    }

    /// The network a genotype describes, freshly initialised; `genotype` must be valid for
    /// `meta` ([`Genotype::validate`]).
    pub fn from_genotype(
        g: &Genotype,
        d_emb: usize,
        init_std: f64,
        meta: &FeatureMeta,
        device: &Device,
    ) -> Self {
        let f = meta.vocab_sizes.len();
        let w = g.block_width;
        let z = f * d_emb + meta.dense_names.len();
        let d0 = first_width(f, d_emb, meta.dense_names.len());
        let mask = |names: &[String]| -> Vec<bool> {
            meta.sparse_names
                .iter()
                .map(|s| names.contains(s))
                .collect()
        };
        let features = g.layers[0]
            .experts
            .iter()
            .map(|e| {
                let fg = e
                    .features
                    .as_ref()
                    .expect("validated: first layer has features");
                FeatureSelector {
                    single: BinaryGate::fixed(mask(&fg.single)),
                    interaction: BinaryGate::fixed(mask(&fg.interaction)),
                }
            })
            .collect();
        let layers = g
            .layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let n = layer.experts.len();
                let consumers: Vec<&Vec<usize>> = match g.layers.get(l + 1) {
                    Some(next) => next
                        .experts
                        .iter()
                        .map(|e| e.inputs.as_ref().expect("validated: inputs above layer 0"))
                        .collect(),
                    None => g.towers.iter().map(|t| &t.inputs).collect(),
                };
                ExpertLayer {
                    experts: layer
                        .experts
                        .iter()
                        .map(|e| Expert {
                            blocks: e
                                .blocks
                                .iter()
                                .enumerate()
                                .map(|(k, op)| {
                                    let d_in = if l == 0 && k == 0 { d0 } else { w };
                                    Block::Fixed(Op::new(*op, d_in, w, g.dropout, device))
                                })
                                .collect(),
                        })
                        .collect(),
                    gates: linear(z, consumers.len() * n, false, device),
                    connections: consumers
                        .iter()
                        .map(|inputs| {
                            BinaryGate::fixed((0..n).map(|i| inputs.contains(&i)).collect())
                        })
                        .collect(),
                }
            })
            .collect();
        let layout = Layout {
            sparse: meta.sparse_names.clone(),
            tasks: meta.task_names.clone(),
            block_width: w,
            tower: g.tower.clone(),
            dropout: g.dropout,
            n_dense: meta.dense_names.len(),
        };
        Self::assemble(features, layers, layout, d_emb, init_std, meta, device)
    }

    pub fn set_gate_mode(&mut self, mode: GateMode) {
        self.mode = mode;
    }

    pub fn gate_mode(&self) -> GateMode {
        self.mode
    }

    pub fn n_dense(&self) -> usize {
        self.layout.n_dense
    }

    /// The input of first-layer expert `j`.
    fn expert_input(
        &self,
        j: usize,
        fields: Option<&Tensor<3>>,
        dense: Option<&Tensor<2>>,
        device: &Device,
    ) -> Tensor<2> {
        let mut parts = Vec::with_capacity(3);
        if let Some(e) = fields {
            let [b, f, d] = e.dims();
            let sel = &self.features[j];
            let ms = sel.single.mask(self.mode, device).reshape([1, f, 1]);
            parts.push((e.clone() * ms).reshape([b, f * d]));
            let mi = sel.interaction.mask(self.mode, device).reshape([1, f, 1]);
            let ei = e.clone() * mi;
            let sum = ei.clone().sum_dim(1);
            let sq = (ei.clone() * ei).sum_dim(1);
            parts.push(((sum.clone() * sum - sq) * 0.5).reshape([b, d]));
        }
        if let Some(d) = dense {
            parts.push(d.clone());
        }
        Tensor::cat(parts, 1)
    }

    /// Every free architecture parameter (gate logits and mixture weights), for the
    /// architecture optimizer; everything else is a weight.
    pub fn arch_param_ids(&self) -> Vec<ParamId> {
        let mut ids = Vec::new();
        let mut gate = |g: &BinaryGate| {
            if let Some(p) = &g.logits {
                ids.push(p.id);
            }
        };
        for s in &self.features {
            gate(&s.single);
            gate(&s.interaction);
        }
        for layer in &self.layers {
            layer.connections.iter().for_each(&mut gate);
        }
        for layer in &self.layers {
            for expert in &layer.experts {
                for block in &expert.blocks {
                    if let Block::Mixed(m) = block {
                        ids.push(m.beta.id);
                    }
                }
            }
        }
        ids
    }

    /// Sets every open block's prune threshold ([`MixedBlock::set_prune_below`]).
    pub fn set_prune_below(&mut self, threshold: f32) {
        for layer in &mut self.layers {
            for expert in &mut layer.experts {
                for block in &mut expert.blocks {
                    if let Block::Mixed(m) = block {
                        m.set_prune_below(threshold);
                    }
                }
            }
        }
    }

    pub fn block(&self, at: BlockAt) -> &Block {
        &self.layers[at.layer].experts[at.expert].blocks[at.block]
    }

    pub fn block_mut(&mut self, at: BlockAt) -> &mut Block {
        &mut self.layers[at.layer].experts[at.expert].blocks[at.block]
    }

    /// Every block position, input side first.
    pub fn block_positions(&self) -> Vec<BlockAt> {
        let mut out = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            for (e, expert) in layer.experts.iter().enumerate() {
                for b in 0..expert.blocks.len() {
                    out.push(BlockAt {
                        layer: l,
                        expert: e,
                        block: b,
                    });
                }
            }
        }
        out
    }

    /// Every gate vector, features first.
    pub fn gate_positions(&self) -> Vec<GateAt> {
        let mut out = Vec::new();
        for expert in 0..self.features.len() {
            out.push(GateAt::Single { expert });
            out.push(GateAt::Interaction { expert });
        }
        for (layer, l) in self.layers.iter().enumerate() {
            for consumer in 0..l.connections.len() {
                out.push(GateAt::Connection { layer, consumer });
            }
        }
        out
    }

    pub fn gate(&self, at: GateAt) -> &BinaryGate {
        match at {
            GateAt::Single { expert } => &self.features[expert].single,
            GateAt::Interaction { expert } => &self.features[expert].interaction,
            GateAt::Connection { layer, consumer } => &self.layers[layer].connections[consumer],
        }
    }

    pub fn gate_mut(&mut self, at: GateAt) -> &mut BinaryGate {
        match at {
            GateAt::Single { expert } => &mut self.features[expert].single,
            GateAt::Interaction { expert } => &mut self.features[expert].interaction,
            GateAt::Connection { layer, consumer } => &mut self.layers[layer].connections[consumer],
        }
    }

    /// A readable name for element `i` of a gate, for logs and reports.
    pub fn gate_element_name(&self, at: GateAt, i: usize) -> String {
        match at {
            GateAt::Single { expert } => {
                format!(
                    "layer 0 expert {expert} single field `{}`",
                    self.layout.sparse[i]
                )
            }
            GateAt::Interaction { expert } => format!(
                "layer 0 expert {expert} interaction field `{}`",
                self.layout.sparse[i]
            ),
            GateAt::Connection { layer, consumer } => {
                if layer + 1 < self.layers.len() {
                    format!(
                        "layer {} expert {consumer} <- layer {layer} expert {i}",
                        layer + 1
                    )
                } else {
                    format!(
                        "tower `{}` <- layer {layer} expert {i}",
                        self.layout.tasks[consumer]
                    )
                }
            }
        }
    }

    /// True when no block is mixed and no gate free: the network is a genotype.
    pub fn is_discrete(&self) -> bool {
        self.arch_param_ids().is_empty()
    }

    /// The architecture of a fully discretised network; `None` while a choice is open.
    pub fn genotype(&self) -> Option<Genotype> {
        if !self.is_discrete() {
            return None;
        }
        let kept = |g: &BinaryGate| -> Vec<usize> {
            g.state()
                .iter()
                .enumerate()
                .filter(|(_, s)| **s == Some(true))
                .map(|(i, _)| i)
                .collect()
        };
        let names = |g: &BinaryGate| -> Vec<String> {
            kept(g)
                .into_iter()
                .map(|i| self.layout.sparse[i].clone())
                .collect()
        };
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(l, layer)| LayerGene {
                experts: layer
                    .experts
                    .iter()
                    .enumerate()
                    .map(|(e, expert)| ExpertGene {
                        features: (l == 0).then(|| FeatureGene {
                            single: names(&self.features[e].single),
                            interaction: names(&self.features[e].interaction),
                        }),
                        inputs: (l > 0).then(|| kept(&self.layers[l - 1].connections[e])),
                        blocks: expert
                            .blocks
                            .iter()
                            .map(|b| match b {
                                Block::Fixed(Op::Identity(_)) => OpKind::Identity,
                                Block::Fixed(Op::Mlp(m)) => OpKind::Mlp(m.hidden.weight.dims()[1]),
                                Block::Mixed(_) => unreachable!("discrete"),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        let last = self.layers.last().expect("at least one layer");
        Some(Genotype {
            block_width: self.layout.block_width,
            tower: self.layout.tower.clone(),
            dropout: self.layout.dropout,
            layers,
            towers: self
                .layout
                .tasks
                .iter()
                .zip(&last.connections)
                .map(|(task, c)| TowerGene {
                    task: task.clone(),
                    inputs: kept(c),
                })
                .collect(),
        })
    }
}

impl MultiTaskModel for AutoMtl {
    fn forward(&self, input: &ModelInput) -> ModelOutput {
        let b = input.batch_size;
        let device = self.towers[0].out.weight.device();
        let fields = self.embedding.fields(input);
        let z = self.embedding.forward(input);
        let mut inputs: Vec<Tensor<2>> = (0..self.features.len())
            .map(|j| self.expert_input(j, fields.as_ref(), input.dense.as_ref(), &device))
            .collect();
        for layer in &self.layers {
            let n = layer.experts.len();
            let c = layer.connections.len();
            let w = self.layout.block_width;
            let outs: Vec<Tensor<2>> = layer
                .experts
                .iter()
                .zip(inputs)
                .map(|(expert, mut x)| {
                    for block in &expert.blocks {
                        x = block.forward(x);
                    }
                    x
                })
                .collect();
            let stacked = Tensor::stack::<3>(outs, 1); // [B, N, W]
            let gates = softmax(layer.gates.forward(z.clone()).reshape([b, c, n]), 2);
            let masks: Vec<Tensor<1>> = layer
                .connections
                .iter()
                .map(|g| g.mask(self.mode, &device))
                .collect();
            let masks = Tensor::stack::<2>(masks, 0).reshape([1, c, n]);
            let mixed = (gates * masks).matmul(stacked); // [B, C, W]
            inputs = (0..c)
                .map(|k| mixed.clone().narrow(1, k, 1).reshape([b, w]))
                .collect();
        }
        let outputs = self
            .towers
            .iter()
            .zip(inputs)
            .map(|(t, x)| t.forward(x))
            .collect();
        ModelOutput {
            outputs: Tensor::cat(outputs, 1),
            aux_loss: None,
        }
    }

    fn n_tasks(&self) -> usize {
        self.towers.len()
    }
}
