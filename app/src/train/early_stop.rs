//! Fine-tuning policies: a fixed number of epochs, or early stopping with
//! patience that can restore the best epoch's weights. A strategy's policy
//! applies to every fine-tuning decision its schedule makes.

use serde::{Deserialize, Serialize};

use super::Metrics;

/// Which validation metric early stopping watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopMetric {
    /// Validation accuracy (a fraction in [0, 1]); higher is better.
    #[default]
    ValAcc,
    /// Validation cross-entropy; lower is better.
    ValLoss,
}

impl StopMetric {
    /// The metric's value in `m`, oriented so that higher is better.
    fn score(self, m: &Metrics) -> f32 {
        match self {
            StopMetric::ValAcc => m.acc,
            StopMetric::ValLoss => -m.loss,
        }
    }
}

/// Early stopping of one fine-tuning phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EarlyStopping {
    /// Stop after this many epochs without an improvement on the best so far.
    pub patience: u32,
    /// Most epochs of the phase.
    pub max_epochs: u32,
    /// The metric watched.
    pub metric: StopMetric,
    /// An epoch improves when it beats the best by more than this (in the
    /// metric's unit: an accuracy fraction, 0.001 = 0.1 points, or a loss).
    pub min_delta: f32,
    /// Put back the best epoch's weights when the phase ends (the model right
    /// after the prune when no epoch beat it).
    pub restore_best: bool,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        Self {
            patience: 3,
            max_epochs: 20,
            metric: StopMetric::ValAcc,
            min_delta: 0.0,
            restore_best: true,
        }
    }
}

/// How a strategy fine-tunes after each prune. In TOML:
/// `finetune = { epochs = 3 }` or
/// `finetune = { patience = 3, max_epochs = 20, metric = "val-acc", min_delta = 0.0, restore_best = true }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PolicyFields", into = "PolicyFields")]
pub enum FinetunePolicy {
    /// Exactly this many epochs after each prune.
    Epochs(u32),
    /// Early stopping in every phase.
    Patience(EarlyStopping),
}

/// The TOML/JSON table of a [`FinetunePolicy`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    epochs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    patience: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_epochs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metric: Option<StopMetric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_delta: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    restore_best: Option<bool>,
}

impl TryFrom<PolicyFields> for FinetunePolicy {
    type Error = String;

    fn try_from(f: PolicyFields) -> Result<Self, String> {
        let stopping_keys = f.max_epochs.is_some()
            || f.metric.is_some()
            || f.min_delta.is_some()
            || f.restore_best.is_some();
        match (f.epochs, f.patience) {
            (Some(_), Some(_)) => Err("give either `epochs` or `patience`, not both".into()),
            (Some(_), None) if stopping_keys => Err(
                "`max_epochs`, `metric`, `min_delta` and `restore_best` go with `patience`, not `epochs`"
                    .into(),
            ),
            (Some(0), None) => Err("`epochs` must be at least 1".into()),
            (Some(n), None) => Ok(Self::Epochs(n)),
            (None, Some(patience)) => {
                let d = EarlyStopping::default();
                let es = EarlyStopping {
                    patience,
                    max_epochs: f.max_epochs.unwrap_or(d.max_epochs),
                    metric: f.metric.unwrap_or(d.metric),
                    min_delta: f.min_delta.unwrap_or(d.min_delta),
                    restore_best: f.restore_best.unwrap_or(d.restore_best),
                };
                let p = Self::Patience(es);
                p.check()?;
                Ok(p)
            }
            (None, None) => Err("needs `epochs = N` or `patience = P`".into()),
        }
    }
}

impl FinetunePolicy {
    /// Checks the values (what the config file and the app's fields may
    /// set out of range); the error names the key.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Self::Epochs(0) => Err("`epochs` must be at least 1".into()),
            Self::Epochs(_) => Ok(()),
            Self::Patience(es) => {
                if es.patience == 0 {
                    return Err("`patience` must be at least 1".into());
                }
                if es.max_epochs == 0 {
                    return Err("`max_epochs` must be at least 1".into());
                }
                if !(es.min_delta.is_finite() && es.min_delta >= 0.0) {
                    return Err(format!(
                        "`min_delta` {} must be finite and >= 0",
                        es.min_delta
                    ));
                }
                Ok(())
            }
        }
    }
}

impl From<FinetunePolicy> for PolicyFields {
    fn from(p: FinetunePolicy) -> Self {
        match p {
            FinetunePolicy::Epochs(n) => PolicyFields {
                epochs: Some(n),
                ..Default::default()
            },
            FinetunePolicy::Patience(es) => PolicyFields {
                patience: Some(es.patience),
                max_epochs: Some(es.max_epochs),
                metric: Some(es.metric),
                min_delta: Some(es.min_delta),
                restore_best: Some(es.restore_best),
                ..Default::default()
            },
        }
    }
}

impl FinetunePolicy {
    /// The phase a fine-tuning decision of `max_epochs` epochs with
    /// `patience` (0 = none) becomes under `policy`: its epoch limit and its
    /// early stopping. Without a policy, the schedule's own patience stops on
    /// validation accuracy and restores the best weights.
    pub fn phase(
        policy: Option<&Self>,
        max_epochs: u32,
        patience: u32,
    ) -> (u32, Option<EarlyStopping>) {
        match policy {
            None if patience == 0 => (max_epochs, None),
            None => (
                max_epochs,
                Some(EarlyStopping {
                    patience,
                    max_epochs,
                    ..EarlyStopping::default()
                }),
            ),
            Some(Self::Epochs(n)) => (*n, None),
            Some(Self::Patience(es)) => (es.max_epochs, Some(*es)),
        }
    }
}

/// The running verdict of early stopping over one phase.
#[derive(Debug, Clone)]
pub struct Stopper {
    rule: EarlyStopping,
    best: f32,
    /// Epoch (1-based) of the best score; 0 = the model before the phase.
    best_epoch: u32,
    since_best: u32,
}

impl Stopper {
    /// Starts with `start`, the validation metrics of the model before the
    /// phase (right after the prune), as the best so far.
    pub fn new(rule: EarlyStopping, start: &Metrics) -> Self {
        Self {
            rule,
            best: rule.metric.score(start),
            best_epoch: 0,
            since_best: 0,
        }
    }

    /// Takes epoch `epoch`'s validation metrics; returns whether they are the
    /// new best.
    pub fn observe(&mut self, epoch: u32, val: &Metrics) -> bool {
        let score = self.rule.metric.score(val);
        // A NaN score never improves; a NaN best (a broken start) is beaten
        // by any number.
        if score > self.best + self.rule.min_delta || (self.best.is_nan() && !score.is_nan()) {
            self.best = score;
            self.best_epoch = epoch;
            self.since_best = 0;
            true
        } else {
            self.since_best += 1;
            false
        }
    }

    /// Whether the phase should stop now.
    pub fn should_stop(&self) -> bool {
        self.since_best >= self.rule.patience
    }

    /// The epoch whose weights are kept: the best one with `restore_best`,
    /// else `None` (the last epoch's).
    pub fn kept_epoch(&self) -> Option<u32> {
        self.rule.restore_best.then_some(self.best_epoch)
    }

    /// Whether weights must be snapshotted at a new best.
    pub fn restores(&self) -> bool {
        self.rule.restore_best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(acc: f32, loss: f32) -> Metrics {
        Metrics { loss, acc }
    }

    #[test]
    fn best_starts_at_the_pruned_model() {
        let rule = EarlyStopping {
            patience: 2,
            ..EarlyStopping::default()
        };
        // The pruned model has 0.9; epochs reach 0.85 and 0.89: no
        // improvement, stop after two, keep the pruned model (epoch 0).
        let mut s = Stopper::new(rule, &m(0.9, 0.3));
        assert!(!s.observe(1, &m(0.85, 0.4)));
        assert!(!s.should_stop());
        assert!(!s.observe(2, &m(0.89, 0.35)));
        assert!(s.should_stop());
        assert_eq!(s.kept_epoch(), Some(0));
    }

    #[test]
    fn min_delta_and_loss_metric() {
        let rule = EarlyStopping {
            patience: 1,
            metric: StopMetric::ValLoss,
            min_delta: 0.05,
            restore_best: false,
            ..EarlyStopping::default()
        };
        let mut s = Stopper::new(rule, &m(0.5, 1.0));
        assert!(s.observe(1, &m(0.5, 0.9)));
        assert!(!s.should_stop());
        // 0.87 is better than 0.9 but not by more than 0.05.
        assert!(!s.observe(2, &m(0.6, 0.87)));
        assert!(s.should_stop());
        assert_eq!(s.kept_epoch(), None);
    }

    #[test]
    fn toml_forms_and_errors() {
        #[derive(Deserialize, Serialize)]
        struct T {
            finetune: FinetunePolicy,
        }
        let t: T = toml::from_str("finetune = { epochs = 3 }").unwrap();
        assert_eq!(t.finetune, FinetunePolicy::Epochs(3));
        let t: T = toml::from_str(
            r#"finetune = { patience = 2, max_epochs = 9, metric = "val-loss", min_delta = 0.01, restore_best = false }"#,
        )
        .unwrap();
        let want = FinetunePolicy::Patience(EarlyStopping {
            patience: 2,
            max_epochs: 9,
            metric: StopMetric::ValLoss,
            min_delta: 0.01,
            restore_best: false,
        });
        assert_eq!(t.finetune, want);
        let back: T = toml::from_str(&toml::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.finetune, want);
        let t: T = toml::from_str("finetune = { patience = 4 }").unwrap();
        assert_eq!(
            t.finetune,
            FinetunePolicy::Patience(EarlyStopping {
                patience: 4,
                ..EarlyStopping::default()
            })
        );
        for (bad, says) in [
            ("finetune = { epochs = 3, patience = 2 }", "not both"),
            (
                "finetune = { epochs = 3, max_epochs = 2 }",
                "go with `patience`",
            ),
            ("finetune = {}", "needs `epochs"),
            ("finetune = { epochs = 0 }", "at least 1"),
            ("finetune = { patience = 0 }", "at least 1"),
            ("finetune = { patience = 2, min_delta = -1.0 }", "min_delta"),
            ("finetune = { patience = 2, metric = \"acc\" }", "val-acc"),
            ("finetune = { patients = 2 }", "patients"),
        ] {
            let e = toml::from_str::<T>(bad).err().unwrap().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn phase_under_each_policy() {
        assert_eq!(FinetunePolicy::phase(None, 2, 0), (2, None));
        let (n, es) = FinetunePolicy::phase(None, 20, 2);
        assert_eq!(n, 20);
        assert_eq!(es.unwrap().patience, 2);
        assert!(es.unwrap().restore_best);
        assert_eq!(
            FinetunePolicy::phase(Some(&FinetunePolicy::Epochs(5)), 2, 0),
            (5, None)
        );
        let p = FinetunePolicy::Patience(EarlyStopping::default());
        assert_eq!(FinetunePolicy::phase(Some(&p), 1, 0).0, 20);
    }
}
