//! `mtrec models`: the architectures, loss weightings and training schemes with their config
//! keys.

use anyhow::Result;
use mtrec_arch::ArchConfig;
use mtrec_engine::SchemeConfig;
use mtrec_engine::scheme::{CrossDistilConfig, CsmConfig, Lt4recConfig};
use mtrec_weighting::WeightingConfig;

pub fn run() -> Result<()> {
    let defaults = ArchConfig::defaults();
    for (i, (kind, about)) in ArchConfig::catalogue().iter().enumerate() {
        let keys = match defaults.get(i) {
            Some(example) => keys(example)?,
            None => {
                "a whole architecture, written by `mtrec search` (see `mtrec arch show`)".into()
            }
        };
        println!("{kind:<21} {about}\n{:<21} keys (defaults): {keys}", "");
    }
    println!("\n[weighting] kinds (how task losses combine; default fixed):");
    let weightings = [
        (
            WeightingConfig::Fixed { weights: None },
            "fixed per-task weights by task name (default: the mean of the losses)",
        ),
        (
            WeightingConfig::Uncertainty { init: -0.5 },
            "Kendall et al.: learnt log-variances s_k, sum L_k / (2 exp(s_k)) + s_k / 2",
        ),
        (
            WeightingConfig::MetaBalance {
                target: None,
                relax: 0.7,
                beta: 0.9,
            },
            "MetaBalance: auxiliary gradients on shared parameters scaled towards the target's",
        ),
    ];
    for (cfg, about) in &weightings {
        println!(
            "{:<21} {about}\n{:<21} keys (defaults): {}",
            cfg.kind(),
            "",
            keys(cfg)?
        );
    }
    println!("\n[scheme] kinds (how training proceeds; default none):");
    let schemes = [
        (
            SchemeConfig::CrossDistil(CrossDistilConfig::default()),
            "Cross-Task Knowledge Distillation: ranking teachers distilled into the towers",
        ),
        (
            SchemeConfig::Lt4rec(Lt4recConfig::default()),
            "LT4Rec / sparse sharing: per-task lottery tickets, then joint masked training",
        ),
        (
            SchemeConfig::Csm(CsmConfig::default()),
            "CSM contrastive sharing: progressive per-task masks, conflicts owned by one task",
        ),
    ];
    for (cfg, about) in &schemes {
        println!(
            "{:<21} {about}\n{:<21} keys (defaults): {}",
            cfg.kind(),
            "",
            keys(cfg)?
        );
    }
    Ok(())
}

/// `key = value` pairs of a config section, without its `kind`.
fn keys(section: &impl serde::Serialize) -> Result<String> {
    let text = toml::to_string(section)?;
    let keys: Vec<&str> = text.lines().filter(|l| !l.starts_with("kind")).collect();
    Ok(if keys.is_empty() {
        "none".into()
    } else {
        keys.join(", ")
    })
}
