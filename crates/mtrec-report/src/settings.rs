//! A run's settings: the resolved config it saved (`config.toml`) less what varies between the
//! repetitions of one experiment. Runs of one config name repeat one experiment only when their
//! settings agree, so `mtrec compare` and `mtrec report` group runs by name and settings, and
//! `mtrec run` checks a finished run folder against its grid with the same comparison: "the
//! same settings" means one thing everywhere.

use std::collections::BTreeSet;

/// The config section that holds the architecture.
pub const MODEL_SECTION: &str = "model";
/// `[model] kind` of an architecture found by a search.
pub const SEARCHED_KIND: &str = "searched";
/// The model a search run reports in its metrics.json (`mtrec search` trains AutoMTL).
pub const SEARCH_MODEL: &str = "automtl";

/// What the repetitions of one experiment vary: `train.seed` (initialisation and batch
/// order) and `data.seed` (the split: runs on freshly drawn splits repeat an experiment too,
/// as the report's data grouping already treats them).
const SEED_KEYS: [[&str; 2]; 2] = [["train", "seed"], ["data", "seed"]];

/// Whether a saved config's `[model]` is the outcome of a search rather than a setting: a
/// search (`search`) saves the architecture it found there in place of its search space, so
/// each seed holds its own. A found architecture trained with `mtrec train --arch` is the
/// same `kind` but given, not found: there `[model]` is a setting.
pub fn holds_search_outcome(config: &toml::Table, search: bool) -> bool {
    search
        && config
            .get(MODEL_SECTION)
            .and_then(|m| m.get("kind"))
            .and_then(toml::Value::as_str)
            == Some(SEARCHED_KIND)
}

/// The settings of the experiment a run repeats, from its saved config: without the seed
/// keys and, for a search run, without the `[model]` it found.
pub fn experiment_settings(mut config: toml::Table, search: bool) -> toml::Table {
    if holds_search_outcome(&config, search) {
        config.remove(MODEL_SECTION);
    }
    for [section, key] in SEED_KEYS {
        if let Some(toml::Value::Table(t)) = config.get_mut(section) {
            t.remove(key);
        }
    }
    config
}

/// One dotted key whose value differs between two configs; `None` where a side lacks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub key: String,
    pub left: Option<toml::Value>,
    pub right: Option<toml::Value>,
}

/// Every key whose value differs, depth first in key order. A key that holds a table on both
/// sides is descended into; anywhere else (values, a value against a table, a key one side
/// lacks) the key itself differs. Arrays, arrays of tables included, compare as one value.
pub fn differences(left: &toml::Table, right: &toml::Table) -> Vec<Difference> {
    let mut out = Vec::new();
    walk(left, right, &mut Vec::new(), &mut out);
    out
}

fn walk(left: &toml::Table, right: &toml::Table, at: &mut Vec<String>, out: &mut Vec<Difference>) {
    let keys: BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    for key in keys {
        at.push(key.clone());
        match (left.get(key), right.get(key)) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => walk(a, b, at, out),
            (a, b) if a != b => out.push(Difference {
                key: at.join("."),
                left: a.cloned(),
                right: b.cloned(),
            }),
            _ => {}
        }
        at.pop();
    }
}

/// The value at a dotted key, where every part but the last names a table.
pub fn lookup<'a>(config: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut parts = key.split('.');
    let mut here = config.get(parts.next()?)?;
    for part in parts {
        here = here.as_table()?.get(part)?;
    }
    Some(here)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn differences_name_dotted_keys_in_order() {
        let a = table("name = \"a\"\n[train]\nepochs = 1\nseed = 2\n[model]\nkind = \"mmoe\"");
        let b = table(
            "name = \"a\"\n[train]\nepochs = 3\nseed = 2\n[model]\nkind = \"mmoe\"\nn_experts = 4",
        );
        let d = differences(&a, &b);
        let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["model.n_experts", "train.epochs"]);
        assert_eq!(d[0].left, None);
        assert_eq!(d[0].right, Some(toml::Value::Integer(4)));
        assert!(differences(&a, &a).is_empty());
        // A section one side lacks is one difference, not one per key in it.
        let d = differences(&table("name = \"a\""), &a);
        assert_eq!(
            d.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            ["model", "train"]
        );
        assert_eq!(
            lookup(&b, "model.n_experts"),
            Some(&toml::Value::Integer(4))
        );
        assert_eq!(lookup(&b, "name.x"), None);
    }

    #[test]
    fn settings_drop_seeds_and_only_a_search_runs_found_model() {
        let saved = table(
            "name = \"x\"\n[data]\nkind = \"census\"\nseed = 7\n[train]\nseed = 3\nepochs = 2\n[model]\nkind = \"searched\"\nblock_width = 64",
        );
        let search = experiment_settings(saved.clone(), true);
        assert_eq!(
            search,
            table("name = \"x\"\n[data]\nkind = \"census\"\n[train]\nepochs = 2")
        );
        // The same architecture trained by hand: its model is what it was given.
        let trained = experiment_settings(saved, false);
        assert_eq!(
            lookup(&trained, "model.block_width"),
            Some(&toml::Value::Integer(64))
        );
        assert_eq!(lookup(&trained, "train.seed"), None);
        let space = table("[model]\nkind = \"automtl\"");
        assert!(!holds_search_outcome(&space, true));
    }
}
