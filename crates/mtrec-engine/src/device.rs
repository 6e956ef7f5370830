//! Which device tensors live on: the CPU (burn's flex backend) unless a GPU backend is
//! compiled in (`--features cuda`) and chosen with `--device cuda` or `MTREC_DEVICE=cuda`.
//!
//! One process-wide choice rather than a parameter threaded through every command: the
//! engine, evaluation and prediction all ask [`default_device`], and child processes of
//! `mtrec run` and the test suite inherit the environment variable.

use std::str::FromStr;
use std::sync::OnceLock;

use burn::prelude::Device;

use crate::EngineError;

/// A device a user can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    /// The CUDA GPU of that index.
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    /// `cpu`, `cuda` (GPU 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("unknown device `{other}`: expected cpu, cuda or cuda:N")),
        }
    }
}

static CHOICE: OnceLock<DeviceChoice> = OnceLock::new();

/// Fixes the process's device (first call wins); refuses a GPU this build cannot drive.
pub fn select_device(choice: DeviceChoice) -> Result<(), EngineError> {
    check_available(choice)?;
    let _ = CHOICE.set(choice);
    Ok(())
}

fn check_available(choice: DeviceChoice) -> Result<(), EngineError> {
    if matches!(choice, DeviceChoice::Cuda(_)) && !cfg!(feature = "cuda") {
        return Err(EngineError::Invalid(
            "this mtrec was built without GPU support: rebuild with `cargo build --release \
             --features cuda` (needs the CUDA driver at run time), or use --device cpu"
                .into(),
        ));
    }
    Ok(())
}

/// The chosen device: [`select_device`]'s, else `MTREC_DEVICE`'s, else the CPU. An unusable
/// `MTREC_DEVICE` falls back to the CPU with a warning (a library call has no error path
/// here; the CLI checks the variable up front).
pub fn default_device() -> Device {
    let choice = *CHOICE.get_or_init(|| match std::env::var("MTREC_DEVICE") {
        Ok(v) if !v.is_empty() => match v.parse().map_err(EngineError::Invalid).and_then(|c| {
            check_available(c)?;
            Ok(c)
        }) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("MTREC_DEVICE={v}: {e}; using the CPU");
                DeviceChoice::Cpu
            }
        },
        _ => DeviceChoice::Cpu,
    });
    device_of(choice)
}

#[cfg(feature = "cuda")]
fn device_of(choice: DeviceChoice) -> Device {
    match choice {
        DeviceChoice::Cpu => Device::flex(),
        DeviceChoice::Cuda(i) => Device::cuda(i),
    }
}

#[cfg(not(feature = "cuda"))]
fn device_of(_: DeviceChoice) -> Device {
    Device::flex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse() {
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        let err = "gpu".parse::<DeviceChoice>().unwrap_err();
        assert!(err.contains("unknown device `gpu`"), "{err}");
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_is_refused_with_a_rebuild_hint_without_the_feature() {
        let err = check_available(DeviceChoice::Cuda(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--features cuda"), "{err}");
        assert!(check_available(DeviceChoice::Cpu).is_ok());
    }
}
