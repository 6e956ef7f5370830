//! `mtrec models`: the architectures and their config keys.

use anyhow::Result;
use mtrec_arch::ArchConfig;

pub fn run() -> Result<()> {
    let defaults = ArchConfig::defaults();
    for (i, (kind, about)) in ArchConfig::catalogue().iter().enumerate() {
        let keys = match defaults.get(i) {
            Some(example) => toml::to_string(example)?
                .lines()
                .filter(|l| !l.starts_with("kind"))
                .collect::<Vec<_>>()
                .join(", "),
            None => {
                "a whole architecture, written by `mtrec search` (see `mtrec arch show`)".into()
            }
        };
        println!("{kind:<21} {about}\n{:<21} keys (defaults): {keys}", "");
    }
    Ok(())
}
