//! `mtrec models`: the architectures and their config keys.

use anyhow::Result;
use mtrec_arch::ArchConfig;

pub fn run() -> Result<()> {
    for (example, (kind, about)) in ArchConfig::defaults().iter().zip(ArchConfig::catalogue()) {
        let keys = toml::to_string(example)?
            .lines()
            .filter(|l| !l.starts_with("kind"))
            .collect::<Vec<_>>()
            .join(", ");
        println!("{kind:<21} {about}\n{:<21} keys (defaults): {keys}", "");
    }
    Ok(())
}
