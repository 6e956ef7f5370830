//! The model input of spec §1: per-field embeddings of the sparse ids, concatenated with the
//! standardised dense values.
//!
//! A multi-valued field (tags written `a|b|c`) arrives as a bag: `len` consecutive id slots,
//! 0 where there is no (known) value. Its embedding is the mean, or the sum, of the embeddings
//! of its non-zero ids, the zero vector when there are none. Bags are pooled here, so every
//! model still sees one `d_emb` vector per field.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer};
use burn::prelude::*;

/// A batch as tensors. Sparse ids are per-field vocabulary ids (0 = unknown).
#[derive(Debug, Clone)]
pub struct ModelInput {
    /// `[B, S]`, absent when the data has no sparse field: `S` id slots, one per field and
    /// `len` per [`Bag`], so `S = F` when no field is multi-valued.
    pub sparse: Option<Tensor<2, Int>>,
    /// `[B, D]`, absent when the data has no dense field.
    pub dense: Option<Tensor<2>>,
    pub batch_size: usize,
    /// `[B, S, d_emb]`: the id slots' embedding rows, already gathered. Training with lazy
    /// (row-wise) Adam keeps the tables on the host and gathers there, so the autodiff graph
    /// starts at these rows instead of scattering a gradient over the whole table; `None`
    /// means the embedding looks the ids up in its own table.
    pub slots: Option<Tensor<3>>,
}

impl ModelInput {
    /// Builds tensors from row-major host buffers (`sparse.len() == B * S` for `S = n_sparse`
    /// id slots, `dense.len() == B * D`).
    pub fn from_host(
        batch_size: usize,
        sparse: &[i64],
        n_sparse: usize,
        dense: &[f32],
        n_dense: usize,
        device: &Device,
    ) -> Self {
        let sparse = (n_sparse > 0).then(|| {
            Tensor::<2, Int>::from_data(
                TensorData::new(sparse.to_vec(), [batch_size, n_sparse]),
                device,
            )
        });
        let dense = (n_dense > 0).then(|| {
            Tensor::<2>::from_data(
                TensorData::new(dense.to_vec(), [batch_size, n_dense]),
                device,
            )
        });
        Self {
            sparse,
            dense,
            batch_size,
            slots: None,
        }
    }
}

/// How a bag's member embeddings become one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Sum over the non-zero ids divided by their number (the zero vector when none).
    Mean,
    /// Sum over the non-zero ids.
    Sum,
}

/// A multi-valued field: `len` consecutive id slots of the input pooled into one embedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bag {
    /// The field's index among `vocab_sizes`.
    pub field: usize,
    pub len: usize,
    pub pooling: Pooling,
}

#[derive(Debug, Clone)]
pub struct FeatureEmbeddingConfig {
    /// Vocabulary size of each sparse field, id 0 included.
    pub vocab_sizes: Vec<usize>,
    /// The multi-valued fields; every other field takes one id slot. A bag naming no field
    /// is ignored.
    pub bags: Vec<Bag>,
    pub n_dense: usize,
    pub d_emb: usize,
    /// Standard deviation of the normal initialisation of the embeddings.
    pub init_std: f64,
}

/// All fields' tables live in one `[sum(vocab), d_emb]` matrix and each field's ids are shifted
/// by the field's offset, so a batch is one gather instead of `F` small ones; the rows of two
/// fields never overlap, which makes it exactly "one table per field". A bag's slots all take
/// its field's offset, so its members are gathered in the same lookup.
#[derive(Module, Debug)]
pub struct FeatureEmbedding {
    pub table: Option<Embedding>,
    /// `[1, S]`: each slot's field offset.
    offsets: Option<Tensor<2, Int>>,
    n_fields: usize,
    n_dense: usize,
    d_emb: usize,
    /// The slots in runs; empty when no field is a bag, so the common path does no pooling.
    #[module(skip)]
    segments: Vec<Segment>,
}

/// A run of consecutive slots of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Segment {
    /// That many single-valued fields, one slot each: their embeddings pass as they are.
    Fields(usize),
    /// One bag of that many slots.
    Bag(usize, Pooling),
}

/// The slots of fields with `vocab_sizes.len()` fields and `bags`, in runs; empty without bags.
fn segments(n_fields: usize, bags: &[Bag]) -> Vec<Segment> {
    let bag_of = |f: usize| bags.iter().find(|b| b.field == f);
    if (0..n_fields).all(|f| bag_of(f).is_none()) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for f in 0..n_fields {
        match (bag_of(f), out.last_mut()) {
            (Some(b), _) => out.push(Segment::Bag(b.len.max(1), b.pooling)),
            (None, Some(Segment::Fields(n))) => *n += 1,
            (None, _) => out.push(Segment::Fields(1)),
        }
    }
    out
}

impl Segment {
    fn slots(&self) -> usize {
        match *self {
            Segment::Fields(n) | Segment::Bag(n, _) => n,
        }
    }
}

impl FeatureEmbeddingConfig {
    pub fn init(&self, device: &Device) -> FeatureEmbedding {
        let n_fields = self.vocab_sizes.len();
        let segments = segments(n_fields, &self.bags);
        let slots = |f: usize| {
            self.bags
                .iter()
                .find(|b| b.field == f)
                .map_or(1, |b| b.len.max(1))
        };
        let (table, offsets) = if n_fields == 0 {
            (None, None)
        } else {
            let mut offsets = Vec::with_capacity(n_fields);
            let mut total = 0i64;
            for (f, &v) in self.vocab_sizes.iter().enumerate() {
                offsets.extend(std::iter::repeat_n(total, slots(f)));
                total += v.max(1) as i64;
            }
            let n_slots = offsets.len();
            let table = EmbeddingConfig::new(total as usize, self.d_emb)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: self.init_std,
                })
                .init(device);
            let offsets =
                Tensor::<2, Int>::from_data(TensorData::new(offsets, [1, n_slots]), device);
            (Some(table), Some(offsets))
        };
        FeatureEmbedding {
            table,
            offsets,
            n_fields,
            n_dense: self.n_dense,
            d_emb: self.d_emb,
            segments,
        }
    }

    /// Width of the flat model input `x`.
    pub fn d_out(&self) -> usize {
        self.vocab_sizes.len() * self.d_emb + self.n_dense
    }
}

impl FeatureEmbedding {
    /// Per-field embeddings `[B, F, d_emb]`, for models that treat fields separately; a bag's
    /// is its pooled vector.
    pub fn fields(&self, input: &ModelInput) -> Option<Tensor<3>> {
        match (&self.table, &self.offsets, &input.sparse) {
            (Some(table), Some(offsets), Some(ids)) => {
                let slots = match &input.slots {
                    Some(gathered) => gathered.clone(),
                    None => table.forward(ids.clone() + offsets.clone()),
                };
                if self.segments.is_empty() {
                    return Some(slots);
                }
                Some(self.pool(slots, ids))
            }
            _ => None,
        }
    }

    /// `[B, S, d]` slot embeddings to `[B, F, d]`: runs of single fields are kept, each bag
    /// becomes the sum of its slots whose id is not 0, divided for `Mean` by their number
    /// (at least 1, so an empty bag is the zero vector, not 0/0).
    fn pool(&self, slots: Tensor<3>, ids: &Tensor<2, Int>) -> Tensor<3> {
        let mut parts = Vec::with_capacity(self.segments.len());
        let mut start = 0;
        for segment in &self.segments {
            let len = segment.slots();
            let run = slots.clone().narrow(1, start, len);
            parts.push(match *segment {
                Segment::Fields(_) => run,
                Segment::Bag(_, pooling) => {
                    let present = ids.clone().narrow(1, start, len).not_equal_elem(0).float();
                    let sum = (run * present.clone().unsqueeze_dim::<3>(2)).sum_dim(1);
                    match pooling {
                        Pooling::Sum => sum,
                        Pooling::Mean => {
                            let count = present.sum_dim(1).clamp_min(1.0);
                            sum / count.unsqueeze_dim::<3>(2)
                        }
                    }
                }
            });
            start += len;
        }
        Tensor::cat(parts, 1)
    }

    /// The flat input `x = [emb_1, ..., emb_F, dense]`, `[B, F*d_emb + D]`.
    pub fn forward(&self, input: &ModelInput) -> Tensor<2> {
        let b = input.batch_size;
        let mut parts = Vec::with_capacity(2);
        if let Some(e) = self.fields(input) {
            parts.push(e.reshape([b, self.n_fields * self.d_emb]));
        }
        if let Some(d) = &input.dense {
            if self.n_dense > 0 {
                parts.push(d.clone());
            }
        }
        if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(parts, 1)
        }
    }

    pub fn d_out(&self) -> usize {
        self.n_fields * self.d_emb + self.n_dense
    }

    /// Each id slot's row offset in the shared table (`[S]`); empty without sparse fields.
    pub fn slot_offsets(&self) -> Vec<i64> {
        self.offsets.as_ref().map_or_else(Vec::new, |o| {
            o.to_data()
                .try_to_vec_as::<i64>()
                .expect("offsets are integers")
        })
    }

    pub fn d_emb(&self) -> usize {
        self.d_emb
    }

    /// The table `[rows, d_emb]`, `None` without sparse fields.
    pub fn table_weights(&self) -> Option<Tensor<2>> {
        self.table.as_ref().map(|t| t.weight.val())
    }

    /// Replaces the table's values (same shape), keeping the parameter's identity.
    pub fn set_table_weights(&mut self, weights: Tensor<2>) {
        if let Some(table) = self.table.take() {
            let mut table = table;
            table.weight = table.weight.map(|_| weights);
            self.table = Some(table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fields `a` (vocabulary 3), `tags` (4, a mean bag of 3 slots), `b` (2), `cats` (3, a sum
    /// bag of 2 slots): 7 slots per row; table offsets a = 0, tags = 3, b = 7, cats = 9.
    fn config() -> FeatureEmbeddingConfig {
        FeatureEmbeddingConfig {
            vocab_sizes: vec![3, 4, 2, 3],
            bags: vec![
                Bag {
                    field: 1,
                    len: 3,
                    pooling: Pooling::Mean,
                },
                Bag {
                    field: 3,
                    len: 2,
                    pooling: Pooling::Sum,
                },
            ],
            n_dense: 1,
            d_emb: 2,
            init_std: 1.0,
        }
    }

    /// Row 0: tags {1, 3}, cats 2 twice. Row 1: every id 0 (empty bags, unknown singles).
    /// Row 2: tags 3 twice around a padding 0, cats {1}.
    const IDS: [i64; 21] = [
        2, 1, 3, 0, 1, 2, 2, //
        0, 0, 0, 0, 0, 0, 0, //
        1, 3, 0, 3, 1, 1, 0,
    ];

    fn input(device: &Device) -> ModelInput {
        ModelInput::from_host(3, &IDS, 7, &[0.5, -1.0, 2.0], 1, device)
    }

    fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
        let [_, d] = t.dims();
        let v: Vec<f32> = t.into_data().try_to_vec().unwrap();
        v.chunks(d).map(<[f32]>::to_vec).collect()
    }

    #[test]
    fn bags_pool_to_the_mean_or_sum_of_their_known_members() {
        let device = Device::default();
        device.seed(11);
        let emb = config().init(&device);
        let w = rows(emb.table.as_ref().unwrap().weight.val());
        assert_eq!(w.len(), 12);
        let out: Vec<f32> = emb
            .fields(&input(&device))
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(out.len(), 3 * 4 * 2);
        let mean = |a: &[f32], b: &[f32]| vec![(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
        let twice = |a: &[f32]| vec![2.0 * a[0], 2.0 * a[1]];
        let zero = vec![0.0, 0.0];
        let expected: Vec<f32> = [
            // a = 2, tags = mean(1, 3), b = 1, cats = 2 + 2.
            w[2].clone(),
            mean(&w[3 + 1], &w[3 + 3]),
            w[7 + 1].clone(),
            twice(&w[9 + 2]),
            // Unknown singles keep id 0's embedding; empty bags are zero.
            w[0].clone(),
            zero.clone(),
            w[7].clone(),
            zero,
            // tags = mean(3, 3): the padding 0 between them does not count.
            w[1].clone(),
            w[3 + 3].clone(),
            w[7 + 1].clone(),
            w[9 + 1].clone(),
        ]
        .concat();
        for (i, (o, e)) in out.iter().zip(&expected).enumerate() {
            assert!((o - e).abs() < 1e-6, "value {i}: {o} vs {e}");
        }
        let flat = rows(emb.forward(&input(&device)));
        assert_eq!(flat[1][8], -1.0);
        assert_eq!(flat[0][..8], out[..8]);
        assert_eq!(emb.d_out(), 4 * 2 + 1);
    }

    #[test]
    fn gradients_reach_only_the_members_a_bag_pooled() {
        let device = Device::default().autodiff();
        let emb = config().init(&device);
        let grads = emb.fields(&input(&device)).unwrap().sum().backward();
        let weight = emb.table.as_ref().unwrap().weight.val();
        let g = rows(weight.grad(&grads).expect("embedding gradient"));
        // d(sum)/dW per row of the table, each dimension alike: a's id 0 once (row 1); the
        // tags' id 1 gets 1/2 (row 0), id 3 1/2 (row 0) + 2 * 1/2 (row 2); their id 0 (padding
        // in rows 0 to 2) nothing; cats' id 2 twice (sum, row 0), id 1 once.
        let expected = [
            1.0, 1.0, 1.0, // a: ids 0 1 2
            0.0, 0.5, 0.0, 1.5, // tags: ids 0 1 2 3
            1.0, 2.0, // b: ids 0 1
            0.0, 1.0, 2.0, // cats: ids 0 1 2
        ];
        for (r, &e) in expected.iter().enumerate() {
            for &v in &g[r] {
                assert!((v - e).abs() < 1e-6, "table row {r}: {v} vs {e}");
            }
        }
    }

    #[test]
    fn without_bags_each_slot_is_its_field() {
        let device = Device::default();
        let cfg = FeatureEmbeddingConfig {
            bags: Vec::new(),
            ..config()
        };
        let emb = cfg.init(&device);
        assert!(emb.segments.is_empty());
        let w = rows(emb.table.as_ref().unwrap().weight.val());
        let x = ModelInput::from_host(1, &[2, 3, 1, 0], 4, &[0.0], 1, &device);
        let out: Vec<f32> = emb.fields(&x).unwrap().into_data().try_to_vec().unwrap();
        assert_eq!(out, [&w[2][..], &w[3 + 3], &w[7 + 1], &w[9]].concat());
    }
}
