//! `mtrec models`: the architectures and their config keys.

use anyhow::Result;
use mtrec_arch::{ArchConfig, BottomConfig, MoeConfig};

pub fn run() -> Result<()> {
    for (kind, about) in ArchConfig::catalogue() {
        let example = match *kind {
            "single-task" => ArchConfig::SingleTask(BottomConfig::default()),
            "shared-bottom" => ArchConfig::SharedBottom(BottomConfig::default()),
            "omoe" => ArchConfig::Omoe(MoeConfig::default()),
            _ => ArchConfig::Mmoe(MoeConfig::default()),
        };
        let keys = toml::to_string(&example)?
            .lines()
            .filter(|l| !l.starts_with("kind"))
            .collect::<Vec<_>>()
            .join(", ");
        println!("{kind:<14} {about}\n{:<14} keys (defaults): {keys}", "");
    }
    Ok(())
}
