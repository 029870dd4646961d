//! Compute device selection: `cpu`, `auto` (CUDA when built with it and a GPU
//! is present, else CPU) or `cuda:N`.

use candle_core::Device;

use crate::error::{Error, Result};

/// A parsed device setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// Use the CPU.
    Cpu,
    /// CUDA if available, else CPU.
    Auto,
    /// The N-th CUDA device.
    Cuda(usize),
}

/// Parses `cpu`, `auto`, `cuda` (= `cuda:0`) or `cuda:N`.
pub fn parse(s: &str) -> Result<DeviceChoice> {
    match s.trim() {
        "cpu" => Ok(DeviceChoice::Cpu),
        "auto" => Ok(DeviceChoice::Auto),
        "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(DeviceChoice::Cuda)
            .ok_or_else(|| {
                Error::Other(format!(
                    "unknown device `{other}` (use cpu, auto or cuda:N)"
                ))
            }),
    }
}

/// Opens the device; returns it with a description such as `cpu` or `cuda:0`.
pub fn open(choice: DeviceChoice) -> Result<(Device, String)> {
    match choice {
        DeviceChoice::Cpu => Ok((Device::Cpu, "cpu".into())),
        DeviceChoice::Auto => {
            if candle_core::utils::cuda_is_available() {
                if let Ok(d) = Device::new_cuda(0) {
                    return Ok((d, "cuda:0".into()));
                }
            }
            Ok((Device::Cpu, "cpu".into()))
        }
        DeviceChoice::Cuda(n) => {
            if !candle_core::utils::cuda_is_available() {
                return Err(Error::Other(format!(
                    "device cuda:{n} requested, but this build of shears has no CUDA support (build with --features cuda)"
                )));
            }
            let d = Device::new_cuda(n)
                .map_err(|e| Error::Other(format!("cannot open cuda:{n}: {e}")))?;
            Ok((d, format!("cuda:{n}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_opens() {
        assert_eq!(parse("cpu").unwrap(), DeviceChoice::Cpu);
        assert_eq!(parse("cuda:1").unwrap(), DeviceChoice::Cuda(1));
        assert!(parse("tpu").unwrap_err().to_string().contains("tpu"));
        assert_eq!(open(DeviceChoice::Cpu).unwrap().1, "cpu");
        let (_, name) = open(DeviceChoice::Auto).unwrap();
        assert!(name == "cpu" || name.starts_with("cuda"));
    }
}
