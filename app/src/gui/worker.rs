//! The worker that owns a running comparison: a thread running the engine's
//! [`run_comparison`] and writing the output folder, talking to the UI only
//! by messages. [`Progress`] turns its events into what the Run view shows.

use std::path::PathBuf;

use super::job::{Job, JobMessage};
use crate::experiment::{
    output::Recorder, run_comparison, ComparisonResults, Context, Event, ExperimentConfig,
    OutputDir,
};
use crate::plugins::Registry;

/// What the worker tells the UI.
#[derive(Debug)]
pub enum Message {
    /// Something happened (as in events.jsonl).
    Event(Event),
    /// The results so far (after a base model, a run, or the end).
    Results(Box<ComparisonResults>),
    /// The comparison ended: its final results, or the setup error that
    /// stopped it before it began (bad config, data, model or device).
    Done(Result<Box<ComparisonResults>, String>),
}

/// Where the worker finds plugins (it builds its own registry: loaded
/// libraries are not shared across threads).
#[derive(Debug, Clone, Default)]
pub struct PluginSources {
    /// Extra plugin folders.
    pub dirs: Vec<PathBuf>,
    /// Libraries added by the user.
    pub libraries: Vec<PathBuf>,
}

impl PluginSources {
    /// Built-ins, the default folders, `dirs` and `libraries`.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::discover(&self.dirs);
        for lib in &self.libraries {
            let _ = r.add_library(lib);
        }
        r
    }
}

impl JobMessage for Message {
    fn is_last(&self) -> bool {
        matches!(self, Message::Done(_))
    }
    fn lost() -> Self {
        Message::Done(Err(
            "the worker thread stopped unexpectedly (a bug; runs finished before it are in the output folder)".into(),
        ))
    }
}

/// A comparison running on its own thread.
pub struct RunHandle {
    job: Job<Message>,
    /// The output folder.
    pub out_dir: PathBuf,
}

impl RunHandle {
    /// Starts `cfg` writing to `out_dir`; `wake(last)` is called after every
    /// message (the UI passes a repaint request).
    pub fn start(
        cfg: ExperimentConfig,
        out_dir: PathBuf,
        plugins: PluginSources,
        wake: impl Fn(bool) + Send + 'static,
    ) -> Self {
        let dir = out_dir.clone();
        let job = Job::spawn("shears-worker", wake, move |send, stop| {
            let outcome = (|| {
                let registry = plugins.registry();
                cfg.validate(&registry)?;
                let output = OutputDir::new(&dir, &cfg)?;
                let mut recorder = Recorder::new(output, stop);
                let mut sink = |e: &Event, r: &ComparisonResults| {
                    recorder.record(e, r);
                    send(Message::Event(e.clone()));
                    if matches!(
                        e,
                        Event::BaseReady(_)
                            | Event::RunFinished(_)
                            | Event::ControlFinished(_)
                            | Event::Finished { .. }
                    ) {
                        send(Message::Results(Box::new(r.clone())));
                    }
                };
                let ctx = Context {
                    registry: &registry,
                    cancel: stop,
                    out_dir: Some(&dir),
                };
                let mut results = run_comparison(&cfg, &ctx, &mut sink)?;
                recorder.finish(&mut results);
                Ok::<_, crate::error::Error>(results)
            })();
            send(Message::Done(
                outcome.map(Box::new).map_err(|e| e.to_string()),
            ));
        });
        Self { job, out_dir }
    }

    /// Asks the comparison to stop after the current batch; finished runs are kept.
    pub fn cancel(&self) {
        self.job.cancel();
    }

    /// Whether cancelling was asked for.
    pub fn cancelling(&self) -> bool {
        self.job.cancelling()
    }

    /// Whether the worker has sent its last message.
    pub fn finished(&self) -> bool {
        self.job.finished()
    }

    /// The messages that arrived since the last call.
    pub fn poll(&mut self) -> Vec<Message> {
        self.job.poll()
    }
}
