//! The worker that owns a sensitivity analysis: a thread that prepares the
//! experiment's base model (its checkpoint, or trained as a comparison
//! would), runs the engine's [`run_sensitivity`] and saves the result,
//! talking to the UI only by messages.

use std::path::PathBuf;

use super::job::{Job, JobMessage};
use super::worker::PluginSources;
use crate::experiment::runner::first_base;
use crate::experiment::sensitivity::{run_sensitivity, save, SensitivityResults, SensitivitySpec};
use crate::experiment::ExperimentConfig;

/// What the analysis tells the UI.
#[derive(Debug)]
pub enum SensitivityMessage {
    /// How far it is, in words and as a fraction.
    Progress(String, f32),
    /// It ended: the results and the folder they were saved in, or why not.
    Done(Result<(Box<SensitivityResults>, PathBuf), String>),
}

impl JobMessage for SensitivityMessage {
    fn is_last(&self) -> bool {
        matches!(self, SensitivityMessage::Done(_))
    }
    fn lost() -> Self {
        SensitivityMessage::Done(Err(
            "the analysis thread stopped unexpectedly (a bug)".into()
        ))
    }
}

/// A sensitivity analysis running on its own thread.
pub struct SensitivityHandle {
    job: Job<SensitivityMessage>,
}

impl SensitivityHandle {
    /// Starts the analysis of `cfg`'s model with `spec`, saving into
    /// `out_dir`; `wake` is called after every message.
    pub fn start(
        cfg: ExperimentConfig,
        spec: SensitivitySpec,
        out_dir: PathBuf,
        plugins: PluginSources,
        wake: impl Fn(bool) + Send + 'static,
    ) -> Self {
        let job = Job::spawn("shears-sensitivity", wake, move |send, stop| {
            let outcome = (|| {
                let registry = plugins.registry();
                let mut on_epoch = |r: crate::train::EpochReport| {
                    let what = format!("training the base model: epoch {}/{}", r.epoch, r.of);
                    send(SensitivityMessage::Progress(what, 0.0));
                };
                let (net, data) = first_base(&cfg, stop, &mut on_epoch)?;
                let mut on_progress = |done: usize, total: usize| {
                    let what = format!("pruned and evaluated {done}/{total}");
                    send(SensitivityMessage::Progress(
                        what,
                        done as f32 / total.max(1) as f32,
                    ));
                };
                let r = run_sensitivity(&net, &data, &spec, &registry, stop, &mut on_progress)?;
                save(&out_dir, &r)?;
                Ok((Box::new(r), out_dir))
            })();
            send(SensitivityMessage::Done(
                outcome.map_err(|e: crate::error::Error| e.to_string()),
            ));
        });
        Self { job }
    }

    /// Messages since the last call.
    pub fn poll(&mut self) -> Vec<SensitivityMessage> {
        self.job.poll()
    }

    /// Whether it has ended.
    pub fn finished(&self) -> bool {
        self.job.finished()
    }

    /// Asks it to stop at the next evaluation.
    pub fn cancel(&self) {
        self.job.cancel();
    }
}
