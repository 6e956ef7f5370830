//! What a found architecture says about the data, and how much searches agree.
//!
//! - **Reach**: the experts and fields a task's tower can see: the last-layer experts its
//!   tower keeps, the experts below them that those keep, down to the first layer, whose kept
//!   fields (single or inside the interaction) are the fields the task reads.
//! - **Recovery** against a planted ground truth (`mtrec data synth --kind recsys`): per task,
//!   recall of its relevant fields among the fields it reads, and precision of what it reads.
//! - **Agreement** across searches: experts of one layer are interchangeable (expert 0 of one
//!   seed has nothing to do with expert 0 of another), so two architectures are compared after
//!   relabelling the second's experts, layer by layer, to agree best with the first. The same
//!   alignment is applied to random architectures with the same per-gate densities, which is
//!   the chance level the figure must beat.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::genotype::Genotype;

/// What one task's tower reaches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskReach {
    pub task: String,
    /// Experts reached, per layer (input side first).
    pub experts: Vec<BTreeSet<usize>>,
    /// Sparse fields read by the reached first-layer experts.
    pub fields: BTreeSet<String>,
}

/// The reach of every task, in tower order.
pub fn reach(g: &Genotype) -> Vec<TaskReach> {
    let n_layers = g.layers.len();
    g.towers
        .iter()
        .map(|tower| {
            let mut experts = vec![BTreeSet::new(); n_layers];
            if n_layers > 0 {
                experts[n_layers - 1] = tower.inputs.iter().copied().collect();
                for l in (1..n_layers).rev() {
                    let below: BTreeSet<usize> = experts[l]
                        .iter()
                        .flat_map(|&e| g.layers[l].experts[e].inputs.clone().unwrap_or_default())
                        .collect();
                    experts[l - 1] = below;
                }
            }
            // An FM interaction over one field is identically zero: that field is not read.
            let fields = experts
                .first()
                .into_iter()
                .flatten()
                .filter_map(|&e| g.layers[0].experts[e].features.as_ref())
                .flat_map(|f| {
                    let pairs: &[String] = if f.interaction.len() >= 2 {
                        &f.interaction
                    } else {
                        &[]
                    };
                    f.single.iter().chain(pairs).cloned()
                })
                .collect();
            TaskReach {
                task: tower.task.clone(),
                experts,
                fields,
            }
        })
        .collect()
}

/// The planted structure, as the generator's `*.truth.json` states it (other keys ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct PlantedTruth {
    pub tasks: Vec<PlantedTask>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlantedTask {
    pub name: String,
    pub group: String,
    pub relevant_fields: Vec<String>,
}

/// How well one task's reached fields recover its planted relevant fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldRecovery {
    pub task: String,
    pub group: String,
    pub relevant: usize,
    pub read: usize,
    /// Relevant fields read / relevant fields (1 when the task has none).
    pub recall: f64,
    /// Relevant fields read / fields read (1 when it reads none).
    pub precision: f64,
}

/// Recovery per task of `g` (tasks matched by name; a task the truth lacks is an error).
pub fn recovery(g: &Genotype, truth: &PlantedTruth) -> Result<Vec<FieldRecovery>, String> {
    reach(g)
        .into_iter()
        .map(|r| {
            let t = truth
                .tasks
                .iter()
                .find(|t| t.name == r.task)
                .ok_or_else(|| format!("the ground truth has no task `{}`", r.task))?;
            let relevant: BTreeSet<&String> = t.relevant_fields.iter().collect();
            let hit = r.fields.iter().filter(|f| relevant.contains(f)).count();
            let ratio = |n: usize, d: usize| if d == 0 { 1.0 } else { n as f64 / d as f64 };
            Ok(FieldRecovery {
                task: r.task,
                group: t.group.clone(),
                relevant: relevant.len(),
                read: r.fields.len(),
                recall: ratio(hit, relevant.len()),
                precision: ratio(hit, r.fields.len()),
            })
        })
        .collect()
}

/// Mean expert overlap (Jaccard of reached expert sets, all layers together) between tasks of
/// one group and between tasks of different groups; `None` where no such pair exists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSharing {
    pub same_group: Option<f64>,
    pub different_groups: Option<f64>,
}

pub fn group_sharing(g: &Genotype, truth: &PlantedTruth) -> GroupSharing {
    let reached = reach(g);
    let group_of: BTreeMap<&str, &str> = truth
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t.group.as_str()))
        .collect();
    let tagged = |r: &TaskReach| -> BTreeSet<(usize, usize)> {
        r.experts
            .iter()
            .enumerate()
            .flat_map(|(l, s)| s.iter().map(move |&e| (l, e)))
            .collect()
    };
    let (mut same, mut diff) = (Vec::new(), Vec::new());
    for (i, a) in reached.iter().enumerate() {
        for b in &reached[i + 1..] {
            let j = jaccard(&tagged(a), &tagged(b));
            match (group_of.get(a.task.as_str()), group_of.get(b.task.as_str())) {
                (Some(x), Some(y)) if x == y => same.push(j),
                (Some(_), Some(_)) => diff.push(j),
                _ => {}
            }
        }
    }
    GroupSharing {
        same_group: mean(&same),
        different_groups: mean(&diff),
    }
}

/// Mean pairwise Jaccard similarity of kept features and kept connections across searches,
/// beside the same figures for random architectures of the same per-gate densities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub pairs: usize,
    pub features: f64,
    pub features_random: f64,
    pub connections: f64,
    pub connections_random: f64,
}

/// Agreement of `archs` (at least two, same space); `draws` random pairs per real pair.
pub fn agreement(archs: &[Genotype], draws: usize, seed: u64) -> Result<Agreement, String> {
    if archs.len() < 2 {
        return Err("agreement needs at least two architectures".into());
    }
    let fields: Vec<String> = archs
        .iter()
        .flat_map(|g| g.layers.first().into_iter().flat_map(|l| &l.experts))
        .filter_map(|e| e.features.as_ref())
        .flat_map(|f| f.single.iter().chain(&f.interaction).cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let masks: Vec<Masks> = archs.iter().map(|g| Masks::of(g, &fields)).collect();
    let tasks = |g: &Genotype| g.towers.iter().map(|t| t.task.clone()).collect::<Vec<_>>();
    for (g, m) in archs.iter().zip(&masks).skip(1) {
        if m.shape() != masks[0].shape() || tasks(g) != tasks(&archs[0]) {
            return Err(format!(
                "the architectures come from different search spaces (experts per layer {:?} and tasks {:?} against {:?} and {:?})",
                m.shape(),
                tasks(g),
                masks[0].shape(),
                tasks(&archs[0])
            ));
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut f, mut c, mut fr, mut cr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..masks.len() {
        for j in i + 1..masks.len() {
            let (a, b) = aligned(&masks[i], &masks[j]);
            f.push(a);
            c.push(b);
            for _ in 0..draws.max(1) {
                let x = masks[i].shuffled(&mut rng);
                let y = masks[j].shuffled(&mut rng);
                let (a, b) = aligned(&x, &y);
                fr.push(a);
                cr.push(b);
            }
        }
    }
    Ok(Agreement {
        pairs: f.len(),
        features: mean(&f).unwrap_or(0.0),
        features_random: mean(&fr).unwrap_or(0.0),
        connections: mean(&c).unwrap_or(0.0),
        connections_random: mean(&cr).unwrap_or(0.0),
    })
}

/// An architecture's gates as index sets: per first-layer expert its kept (kind, field)
/// pairs; per layer and consumer the kept experts below (the towers are the last consumers).
#[derive(Debug, Clone)]
struct Masks {
    fields: Vec<String>,
    features: Vec<BTreeSet<(u8, usize)>>,
    /// `connections[l][c]`: consumer `c` of layer `l`'s experts (consumers of the last layer
    /// are the towers).
    connections: Vec<Vec<BTreeSet<usize>>>,
    experts_per_layer: Vec<usize>,
}

impl Masks {
    /// `fields`: sorted, every field any compared architecture names.
    fn of(g: &Genotype, fields: &[String]) -> Self {
        let fields = fields.to_vec();
        let index = |name: &String| fields.binary_search(name).expect("collected above");
        let features = g
            .layers
            .first()
            .into_iter()
            .flat_map(|l| &l.experts)
            .map(|e| match &e.features {
                Some(f) => f
                    .single
                    .iter()
                    .map(|n| (0, index(n)))
                    .chain(f.interaction.iter().map(|n| (1, index(n))))
                    .collect(),
                None => BTreeSet::new(),
            })
            .collect();
        let n_layers = g.layers.len();
        let connections = (0..n_layers)
            .map(|l| {
                if l + 1 < n_layers {
                    g.layers[l + 1]
                        .experts
                        .iter()
                        .map(|e| e.inputs.clone().unwrap_or_default().into_iter().collect())
                        .collect()
                } else {
                    g.towers
                        .iter()
                        .map(|t| t.inputs.iter().copied().collect())
                        .collect()
                }
            })
            .collect();
        Masks {
            fields,
            features,
            connections,
            experts_per_layer: g.layers.iter().map(|l| l.experts.len()).collect(),
        }
    }

    fn shape(&self) -> Vec<usize> {
        self.experts_per_layer.clone()
    }

    /// The same number of kept elements per gate vector, at random positions. Feature
    /// gates are over the fields some compared architecture keeps (a field no search kept
    /// is left out of the universe, which can only raise the chance level).
    fn shuffled(&self, rng: &mut StdRng) -> Masks {
        let n_fields = self.fields.len();
        let pick = |n: usize, k: usize, rng: &mut StdRng| -> Vec<usize> {
            let mut all: Vec<usize> = (0..n).collect();
            all.shuffle(rng);
            all.truncate(k);
            all
        };
        let features = self
            .features
            .iter()
            .map(|set| {
                let mut out = BTreeSet::new();
                for kind in [0u8, 1] {
                    let k = set.iter().filter(|(t, _)| *t == kind).count();
                    out.extend(pick(n_fields, k, rng).into_iter().map(|i| (kind, i)));
                }
                out
            })
            .collect();
        let connections = self
            .connections
            .iter()
            .enumerate()
            .map(|(l, consumers)| {
                consumers
                    .iter()
                    .map(|s| {
                        pick(self.experts_per_layer[l], s.len(), rng)
                            .into_iter()
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Masks {
            fields: self.fields.clone(),
            features,
            connections,
            experts_per_layer: self.experts_per_layer.clone(),
        }
    }

    /// Kept features as (expert, kind, field name) under the expert relabelling `perm[0]`.
    fn feature_set(&self, perm: &[Vec<usize>]) -> BTreeSet<(usize, u8, String)> {
        self.features
            .iter()
            .enumerate()
            .flat_map(|(e, set)| {
                set.iter()
                    .map(move |(k, f)| (perm[0][e], *k, self.fields[*f].clone()))
            })
            .collect()
    }

    /// Kept connections as (layer, consumer, expert) under the relabelling (towers keep their
    /// task order).
    fn connection_set(&self, perm: &[Vec<usize>]) -> BTreeSet<(usize, usize, usize)> {
        let n_layers = self.connections.len();
        let mut out = BTreeSet::new();
        for (l, consumers) in self.connections.iter().enumerate() {
            for (c, inputs) in consumers.iter().enumerate() {
                let consumer = if l + 1 < n_layers { perm[l + 1][c] } else { c };
                out.extend(inputs.iter().map(|&i| (l, consumer, perm[l][i])));
            }
        }
        out
    }
}

/// Feature and connection Jaccard of `a` and `b` after relabelling `b`'s experts to agree
/// best with `a` (by their sum). Exhaustive over the layers' permutations up to 40,320
/// combinations, else each layer in turn with the others as they are.
fn aligned(a: &Masks, b: &Masks) -> (f64, f64) {
    let identity: Vec<Vec<usize>> = a
        .experts_per_layer
        .iter()
        .map(|&n| (0..n).collect())
        .collect();
    let fa = a.feature_set(&identity);
    let ca = a.connection_set(&identity);
    let score = |perm: &[Vec<usize>]| {
        (
            jaccard(&fa, &b.feature_set(perm)),
            jaccard(&ca, &b.connection_set(perm)),
        )
    };
    let per_layer: Vec<Vec<Vec<usize>>> = a
        .experts_per_layer
        .iter()
        .map(|&n| permutations(n))
        .collect();
    let combos: usize = per_layer.iter().map(Vec::len).product();
    let mut best_perm = identity.clone();
    let mut best = score(&best_perm);
    let better = |x: (f64, f64), y: (f64, f64)| x.0 + x.1 > y.0 + y.1 + 1e-12;
    if combos <= 40_320 {
        let mut idx = vec![0usize; per_layer.len()];
        loop {
            let perm: Vec<Vec<usize>> = idx
                .iter()
                .zip(&per_layer)
                .map(|(&i, ps)| ps[i].clone())
                .collect();
            let s = score(&perm);
            if better(s, best) {
                best = s;
            }
            let mut l = 0;
            while l < idx.len() {
                idx[l] += 1;
                if idx[l] < per_layer[l].len() {
                    break;
                }
                idx[l] = 0;
                l += 1;
            }
            if l == idx.len() {
                break;
            }
        }
    } else {
        for l in 0..per_layer.len() {
            for p in &per_layer[l] {
                let mut perm = best_perm.clone();
                perm[l] = p.clone();
                let s = score(&perm);
                if better(s, best) {
                    best = s;
                    best_perm = perm;
                }
            }
        }
    }
    best
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for pos in 0..=p.len() {
            let mut q = p.clone();
            q.insert(pos, n - 1);
            out.push(q);
        }
    }
    out
}

/// `|A ∩ B| / |A ∪ B|`, 1 for two empty sets.
pub fn jaccard<T: Ord>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automtl::{ExpertGene, FeatureGene, LayerGene, OpKind, TowerGene};

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn first(single: &[&str], interaction: &[&str]) -> ExpertGene {
        ExpertGene {
            features: Some(FeatureGene {
                single: names(single),
                interaction: names(interaction),
            }),
            inputs: None,
            blocks: vec![OpKind::Identity],
        }
    }

    fn upper(inputs: &[usize]) -> ExpertGene {
        ExpertGene {
            features: None,
            inputs: Some(inputs.to_vec()),
            blocks: vec![OpKind::Mlp(8)],
        }
    }

    fn tower(task: &str, inputs: &[usize]) -> TowerGene {
        TowerGene {
            task: task.into(),
            inputs: inputs.to_vec(),
        }
    }

    /// Layer 0: e0 reads a, b (+ a one-field interaction over c, identically zero, so c is not
    /// read), e1 reads d (+ the interaction of d and e), e2 reads a. Layer 1: e0
    /// mixes e0, e1; e1 mixes e2. Towers: t0 <- e0, t1 <- e1, t2 <- e0, e1.
    fn hand_built() -> Genotype {
        Genotype {
            block_width: 4,
            tower: vec![4],
            dropout: 0.0,
            layers: vec![
                LayerGene {
                    experts: vec![
                        first(&["a", "b"], &["c"]),
                        first(&["d"], &["d", "e"]),
                        first(&["a"], &[]),
                    ],
                },
                LayerGene {
                    experts: vec![upper(&[0, 1]), upper(&[2])],
                },
            ],
            towers: vec![tower("t0", &[0]), tower("t1", &[1]), tower("t2", &[0, 1])],
        }
    }

    fn truth() -> PlantedTruth {
        serde_json::from_str(
            r#"{"kind":"recsys","tasks":[
                {"name":"t0","group":"g0","relevant_fields":["a","b","e"],"interactions":[]},
                {"name":"t1","group":"g1","relevant_fields":["a"]},
                {"name":"t2","group":"g0","relevant_fields":[]}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn reach_follows_kept_connections_down_to_the_fields() {
        let r = reach(&hand_built());
        assert_eq!(
            r[0].experts,
            vec![BTreeSet::from([0, 1]), BTreeSet::from([0])]
        );
        assert_eq!(
            r[0].fields,
            names(&["a", "b", "d", "e"])
                .into_iter()
                .collect::<BTreeSet<_>>()
        );
        assert_eq!(r[1].experts, vec![BTreeSet::from([2]), BTreeSet::from([1])]);
        assert_eq!(r[1].fields, BTreeSet::from(["a".to_string()]));
    }

    #[test]
    fn recall_and_precision_against_a_hand_built_truth() {
        let rec = recovery(&hand_built(), &truth()).unwrap();
        // t0: reads a, b, d, e (not c); relevant a, b, e -> recall 3/3, precision 3/4.
        assert_eq!((rec[0].relevant, rec[0].read), (3, 4));
        assert!((rec[0].recall - 1.0).abs() < 1e-12);
        assert!((rec[0].precision - 0.75).abs() < 1e-12);
        // t1: reads a; relevant a -> 1 and 1.
        assert_eq!((rec[1].recall, rec[1].precision), (1.0, 1.0));
        // t2: nothing relevant -> recall 1 by definition, precision 0.
        assert_eq!((rec[2].recall, rec[2].precision), (1.0, 0.0));
        let mut other = truth();
        other.tasks.remove(1);
        assert!(
            recovery(&hand_built(), &other)
                .unwrap_err()
                .contains("`t1`")
        );
    }

    /// t0 reaches {L1 e0, L0 e0, L0 e1}, t1 {L1 e1, L0 e2}, t2 all five: same group (t0, t2)
    /// 3/5; different groups (t0, t1) 0 and (t1, t2) 2/5, mean 0.2.
    #[test]
    fn expert_sharing_within_and_across_groups() {
        let s = group_sharing(&hand_built(), &truth());
        assert!((s.same_group.unwrap() - 0.6).abs() < 1e-12);
        assert!((s.different_groups.unwrap() - 0.2).abs() < 1e-12);
    }

    /// The same architecture with its first-layer experts relabelled agrees fully; random
    /// masks of the same densities agree less.
    #[test]
    fn agreement_is_invariant_to_expert_labels_and_beats_chance_only_when_real() {
        let a = hand_built();
        let mut b = hand_built();
        // Relabel layer 0 as (0, 1, 2) -> (2, 0, 1).
        let old = b.layers[0].experts.clone();
        b.layers[0].experts = vec![old[1].clone(), old[2].clone(), old[0].clone()];
        let map = [2usize, 0, 1];
        for e in &mut b.layers[1].experts {
            let inputs = e.inputs.as_mut().unwrap();
            for i in inputs.iter_mut() {
                *i = map[*i];
            }
        }
        let ag = agreement(&[a.clone(), b], 50, 7).unwrap();
        assert_eq!(ag.pairs, 1);
        assert!((ag.features - 1.0).abs() < 1e-12, "{ag:?}");
        assert!((ag.connections - 1.0).abs() < 1e-12, "{ag:?}");
        assert!(ag.features_random < 0.95, "{ag:?}");
        assert!(agreement(&[a.clone()], 5, 1).is_err());
        let mut other_tasks = a.clone();
        other_tasks.towers[0].task = "x".into();
        let err = agreement(&[a, other_tasks], 5, 1).unwrap_err();
        assert!(err.contains("different search spaces"), "{err}");
    }

    #[test]
    fn jaccard_of_small_sets() {
        let a = BTreeSet::from([1, 2, 3]);
        let b = BTreeSet::from([2, 3, 4, 5]);
        assert!((jaccard(&a, &b) - 0.4).abs() < 1e-12);
        assert_eq!(jaccard(&BTreeSet::<u8>::new(), &BTreeSet::new()), 1.0);
    }
}
