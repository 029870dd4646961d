//! Measured inference latency of a network on its device: the median of
//! repeated timed forward passes in evaluation mode.

use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::Network;
use crate::error::Result;

/// Fewest and most timed passes, and the time after which no more are
/// started once the fewest are done.
const MIN_SAMPLES: usize = 5;
const MAX_SAMPLES: usize = 25;
const BUDGET: Duration = Duration::from_millis(300);

/// Taken shared by every training and evaluation batch
/// ([`sharing_the_machine`]) and exclusively while a latency is timed, so
/// that runs in parallel jobs do not time each other's work.
static MACHINE: RwLock<()> = RwLock::new(());

/// Held for one training or evaluation batch: a latency measurement in
/// another job waits for it, and batches wait while one is timed.
pub fn sharing_the_machine() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

/// Median milliseconds per forward pass of the final model of a run.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Latency {
    /// One sample per pass.
    pub batch1_ms: f64,
    /// 64 samples per pass.
    pub batch64_ms: f64,
    /// The compacted model (structured pruning), batch 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacted_batch1_ms: Option<f64>,
    /// The compacted model, batch 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacted_batch64_ms: Option<f64>,
}

/// Median wall milliseconds of a forward pass of `net` on `batch` random
/// inputs, after one untimed warm-up pass; each timing waits for the device
/// (the output is read back).
pub fn median_forward_ms(net: &mut Network, batch: usize) -> Result<f64> {
    let [c, h, w] = net.arch.input;
    let x = Tensor::randn(0f32, 1.0, (batch, c, h, w), net.device())?;
    let pass = |net: &mut Network| -> Result<()> {
        net.forward(&x, false)?.sum_all()?.to_scalar::<f32>()?;
        Ok(())
    };
    pass(net)?;
    let started = Instant::now();
    let mut samples = Vec::with_capacity(MAX_SAMPLES);
    while samples.len() < MIN_SAMPLES || (samples.len() < MAX_SAMPLES && started.elapsed() < BUDGET)
    {
        let t0 = Instant::now();
        pass(net)?;
        samples.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    Ok(if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    })
}

/// Latency of `net` at batch 1 and 64, and of `compacted` when given; no
/// batch of another job runs meanwhile.
pub fn measure(net: &mut Network, compacted: Option<&mut Network>) -> Result<Latency> {
    let _alone = MACHINE.write().unwrap_or_else(|e| e.into_inner());
    let mut l = Latency {
        batch1_ms: median_forward_ms(net, 1)?,
        batch64_ms: median_forward_ms(net, 64)?,
        ..Latency::default()
    };
    if let Some(c) = compacted {
        l.compacted_batch1_ms = Some(median_forward_ms(c, 1)?);
        l.compacted_batch64_ms = Some(median_forward_ms(c, 64)?);
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::model::ModelSpec;

    #[test]
    fn latency_is_positive_and_grows_with_the_batch() {
        let arch = ModelSpec::Lenet5.build([1, 28, 28], 10).unwrap();
        let mut net = Network::new(arch, 0, &Device::Cpu).unwrap();
        let mut copy = net.try_clone().unwrap();
        let l = measure(&mut net, Some(&mut copy)).unwrap();
        assert!(l.batch1_ms > 0.0 && l.batch1_ms.is_finite(), "{l:?}");
        assert!(l.batch64_ms > l.batch1_ms, "{l:?}");
        assert!(l.compacted_batch1_ms.unwrap() > 0.0);
    }
}
