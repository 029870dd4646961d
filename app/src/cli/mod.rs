//! The `shears` command line: `gui`, `compare`, `report`, `train`, `prune`,
//! `eval`, `inspect`, `plugins`, `schedule` and `sensitivity`. With no arguments it opens the desktop app (built
//! with the `gui` feature; without it, it runs the demo comparison).

mod chart_args;
mod commands;
mod compare;
mod plan_cli;
mod plugins_cli;
mod report_cli;
mod schedule_cli;
mod sensitivity_cli;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::Result;

pub use chart_args::ChartArgs;

/// Command-line interface of Shears.
#[derive(Debug, Parser)]
#[command(
    name = "shears",
    version,
    about = "Compare neural-network pruning strategies on your own model and data"
)]
pub struct Cli {
    /// What to do (default: the desktop app, with the demo preselected).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Extra folders to load plugin libraries from (besides `plugins/` next
    /// to the executable and the user's config folder).
    #[arg(long = "plugins", global = true, value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// With no command: the desktop app's options (`shears --fresh` is
    /// `shears gui --fresh`).
    #[command(flatten)]
    pub gui: GuiArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the desktop app (the default).
    Gui(GuiArgs),
    /// Run a comparison of strategies x target sparsities x seeds.
    Compare(CompareArgs),
    /// Print the tables of saved results (what `compare` prints at its end)
    /// and, with `--charts DIR`, write the Compare charts as SVG and PNG.
    Report(ReportArgs),
    /// Train a model and save it as a checkpoint.
    Train(TrainArgs),
    /// Prune a checkpoint once (optionally fine-tune) and save the result.
    Prune(PruneArgs),
    /// Evaluate a checkpoint on a dataset.
    Eval(EvalArgs),
    /// Write a dataset (default: the embedded glyphs of the demo) as NumPy
    /// `.npy` files, x_train/y_train/x_test/y_test, for other tools.
    ExportData(ExportDataArgs),
    /// Show a model's layers, shapes and sparsity.
    Inspect {
        /// The model: a Shears checkpoint or a PyTorch state dict.
        checkpoint: PathBuf,
        /// What a PyTorch state dict cannot tell.
        #[command(flatten)]
        import: ImportArgs,
    },
    /// List, check or probe plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Print the target sparsities a schedule (built-in or plugin) takes to
    /// reach a target, with its fine-tuning after each step.
    Schedule(ScheduleArgs),
    /// Write a comparison as a folder of tasks for job arrays (a base-model
    /// task per seed, every run, the dense controls) with scripts for GNU
    /// parallel, Slurm and HyperQueue.
    Plan(PlanArgs),
    /// Run one task of a plan folder (a finished one again does nothing).
    RunTask(RunTaskArgs),
    /// List the done, running, failed and pending tasks of a plan folder.
    Status {
        /// The plan folder.
        dir: PathBuf,
    },
    /// Write results.json and results.csv of a finished plan folder, as the
    /// same comparison run in one process would.
    Merge {
        /// The plan folder.
        dir: PathBuf,
    },
    /// Prune one layer at a time to each sparsity (no fine-tuning) and
    /// record the test accuracy: which layers tolerate pruning.
    Sensitivity(SensitivityArgs),
}

/// `shears report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results folder (as `compare --out` writes), or its results.json.
    #[arg(value_name = "RESULTS")]
    pub results: PathBuf,
    /// Chart export and its choices.
    #[command(flatten)]
    pub chart: ChartArgs,
}

/// `shears sensitivity`.
#[derive(Debug, Args)]
pub struct SensitivityArgs {
    /// The trained model: a Shears checkpoint or a PyTorch state dict.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// What a PyTorch state dict cannot tell.
    #[command(flatten)]
    pub import: ImportArgs,
    /// Data and device.
    #[command(flatten)]
    pub data: DataArgs,
    /// Sparsities, comma-separated (default 0.1,0.2,...,0.9).
    #[arg(long, value_delimiter = ',')]
    pub sparsities: Option<Vec<f32>>,
    /// unstructured (weights) or structured (channels).
    #[arg(long, default_value = "unstructured")]
    pub granularity: String,
    /// Criterion plugin.
    #[arg(long, default_value = "magnitude")]
    pub criterion: String,
    /// Criterion parameters as a JSON object.
    #[arg(long, default_value = "{}")]
    pub criterion_params: String,
    /// Where to write sensitivity.json and sensitivity.csv.
    #[arg(long, default_value = "shears-sensitivity")]
    pub out: PathBuf,
}

/// `shears plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Experiment config (TOML); default: the demo.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The plan folder to write (on a file system every host sees).
    #[arg(long)]
    pub out: PathBuf,
}

/// `shears run-task`.
#[derive(Debug, Args)]
pub struct RunTaskArgs {
    /// The plan folder.
    pub dir: PathBuf,
    /// The task; default: $SLURM_ARRAY_TASK_ID, $HQ_TASK_ID or
    /// $JOB_COMPLETION_INDEX.
    pub index: Option<usize>,
    /// The data at this path on this host (default: the plan's path).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// `shears schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Schedule name, e.g. `iterative-geometric` (see `shears plugins list`).
    pub name: String,
    /// Target sparsity in [0, 1).
    #[arg(long)]
    pub target: f32,
    /// Schedule parameters as a JSON object, e.g. '{"steps": 5}'.
    #[arg(long, default_value = "{}")]
    pub params: String,
}

/// `shears plugins ...`.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Every criterion and schedule: name, kind, version, ABI, file, status
    /// (libraries that failed to load are listed with their error).
    List,
    /// Load a plugin library in a child process and call each of its
    /// plugins once, so a library that crashes is reported, not fatal.
    Check {
        /// The shared library.
        file: PathBuf,
    },
    /// What `check` runs in the child process.
    #[command(hide = true)]
    Probe {
        /// The shared library.
        file: PathBuf,
    },
}

/// Settings shared by commands that read data and build a model.
#[derive(Debug, Args, Default, Clone)]
pub struct DataArgs {
    /// Dataset folder or file (IDX, CIFAR binary, digits CSV); default: the embedded glyphs.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Compute device: cpu, auto or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
}

/// `shears compare`.
#[derive(Debug, Args, Default)]
pub struct CompareArgs {
    /// Experiment config (TOML); default: the demo (assets/demo.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output folder for events.jsonl, results.json, results.csv and checkpoints.
    #[arg(long, default_value = "shears-out")]
    pub out: PathBuf,
    /// Data and device overrides.
    #[command(flatten)]
    pub data: DataArgs,
    /// Model architecture override: mlp, lenet5, vgg, resnet20, resnet56, resnet18, resnet34,
    /// resnet50 (CIFAR stem), mobilenetv2, efficientnet-b0, vit.
    #[arg(long)]
    pub model: Option<String>,
    /// Base training epochs.
    #[arg(long)]
    pub epochs: Option<u32>,
    /// Default fine-tuning epochs per step.
    #[arg(long)]
    pub finetune_epochs: Option<u32>,
    /// Target sparsities, comma-separated (e.g. 0.5,0.9,0.95).
    #[arg(long, value_delimiter = ',')]
    pub sparsities: Option<Vec<f32>>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Start from this model instead of training a base model: a Shears
    /// checkpoint or a PyTorch state dict (.pth, .pt, .safetensors).
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// What the base model's PyTorch state dict cannot tell.
    #[command(flatten)]
    pub import: ImportArgs,
    /// Equal-budget mode: every strategy spends this many fine-tuning
    /// epochs at each target (config `finetune_budget`).
    #[arg(long, value_name = "EPOCHS")]
    pub finetune_budget: Option<u32>,
    /// Skip the dense controls (config `dense_control = false`).
    #[arg(long)]
    pub no_dense_control: bool,
    /// Skip timing the final models (config `latency = false`).
    #[arg(long)]
    pub no_latency: bool,
    /// Runs at once, the cores shared between them (config `jobs`; 0:
    /// what the cores make worthwhile for the model).
    #[arg(long, value_name = "N")]
    pub jobs: Option<u32>,
    /// Use only this many training samples of the embedded dataset (quick runs).
    #[arg(long)]
    pub train_samples: Option<usize>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Chart export once the comparison ends (also when cancelled, with the
    /// runs that finished).
    #[command(flatten)]
    pub chart: ChartArgs,
}

/// `shears gui`.
#[derive(Debug, Args, Default, Clone)]
pub struct GuiArgs {
    /// Open this experiment config instead of the one from the last session.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output folder for comparisons started in the app.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Start the comparison at once.
    #[arg(long)]
    pub run: bool,
    /// When the comparison ends, show the results and save a screenshot of
    /// the window here (PNG).
    #[arg(long, value_name = "PNG")]
    pub screenshot: Option<PathBuf>,
    /// When the comparison ends, save each chart as PNG in this folder
    /// (`accuracy-vs-sparsity.png`, `per-layer-sparsity.png`, `accuracy-vs-compute.png`).
    #[arg(long, value_name = "DIR")]
    pub export_charts: Option<PathBuf>,
    /// Close the window when the comparison (and screenshot) is done.
    #[arg(long)]
    pub quit_after_run: bool,
    /// Ignore the settings saved by the last session.
    #[arg(long)]
    pub fresh: bool,
    /// Never show native file dialogs; ask for paths in the window instead
    /// (also when SHEARS_NO_NATIVE_DIALOGS is set, and by itself where no
    /// XDG desktop portal or zenity can show one).
    #[arg(long)]
    pub no_native_dialogs: bool,
}

impl GuiArgs {
    /// Whether any option was given.
    pub fn is_set(&self) -> bool {
        self.config.is_some()
            || self.out.is_some()
            || self.run
            || self.screenshot.is_some()
            || self.export_charts.is_some()
            || self.quit_after_run
            || self.fresh
            || self.no_native_dialogs
    }
}

/// `shears train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Data and device.
    #[command(flatten)]
    pub data: DataArgs,
    /// Architecture: mlp, lenet5, vgg, resnet20, resnet56, resnet18, resnet34, resnet50 (CIFAR
    /// stem), mobilenetv2, efficientnet-b0, vit.
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// Epochs.
    #[arg(long, default_value_t = 5)]
    pub epochs: u32,
    /// Learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Optimiser: sgd or adamw.
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
    /// Seed (weights and data order).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to write the checkpoint.
    #[arg(long)]
    pub out: PathBuf,
}

/// `shears export-data`.
#[derive(Debug, Args)]
pub struct ExportDataArgs {
    /// The dataset (the device option is not used).
    #[command(flatten)]
    pub data: DataArgs,
    /// Folder to write the `.npy` files into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// `shears prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Model to prune: a Shears checkpoint or a PyTorch state dict.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// What a PyTorch state dict cannot tell.
    #[command(flatten)]
    pub import: ImportArgs,
    /// Data (needed for fine-tuning and gradient/activation criteria) and device.
    #[command(flatten)]
    pub data: DataArgs,
    /// Target sparsity in [0, 1).
    #[arg(long)]
    pub sparsity: f32,
    /// Criterion plugin.
    #[arg(long, default_value = "magnitude")]
    pub criterion: String,
    /// unstructured or structured.
    #[arg(long, default_value = "unstructured")]
    pub granularity: String,
    /// global or layer.
    #[arg(long, default_value = "global")]
    pub scope: String,
    /// Fine-tuning epochs after pruning.
    #[arg(long, default_value_t = 0)]
    pub finetune_epochs: u32,
    /// Training batches the criterion's inputs (gradients, activation norms)
    /// are computed on.
    #[arg(long, default_value_t = crate::prune::DEFAULT_CALIBRATION_BATCHES)]
    pub calibration_batches: usize,
    /// Samples per calibration batch.
    #[arg(long, default_value_t = crate::train::DEFAULT_BATCH_SIZE)]
    pub calibration_batch_size: usize,
    /// Fine-tuning learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Remove pruned channels physically (structured pruning).
    #[arg(long)]
    pub compact: bool,
    /// Format of `--out`: shears (a checkpoint), safetensors (a PyTorch
    /// state dict), pth or onnx; default from the file name: .pth/.pt is
    /// PyTorch's, .onnx ONNX, .safetensors is what the model was opened as.
    #[arg(long)]
    pub format: Option<String>,
    /// Where to write the pruned model.
    #[arg(long)]
    pub out: PathBuf,
}

/// `shears eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model to evaluate: a Shears checkpoint or a PyTorch state dict.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// What a PyTorch state dict cannot tell.
    #[command(flatten)]
    pub import: ImportArgs,
    /// Data and device.
    #[command(flatten)]
    pub data: DataArgs,
}

/// What a PyTorch state dict cannot tell (`--layers`, `--mean`, `--std`,
/// `--resize`, `--input`).
#[derive(Debug, Args, Default, Clone)]
pub struct ImportArgs {
    /// An nn.Sequential's layers, one per module index, e.g.
    /// "flatten, linear, relu, linear" (README, "Your own model").
    #[arg(long)]
    pub layers: Option<String>,
    /// Normalisation mean per channel the model was trained with
    /// (transforms.Normalize), comma-separated, e.g. 0.1307.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub mean: Option<Vec<f32>>,
    /// Normalisation standard deviation per channel, e.g. 0.3081.
    #[arg(long, value_delimiter = ',')]
    pub std: Option<Vec<f32>>,
    /// Shorter side image files are resized to before the centre crop to
    /// the model's input size (torchvision's Resize, e.g. 256 for a
    /// 224x224 model).
    #[arg(long, value_name = "PIXELS")]
    pub resize: Option<usize>,
    /// Input shape CxHxW when no data tells it (default 3x224x224).
    #[arg(long, value_name = "CxHxW")]
    pub input: Option<String>,
    /// A ViT state dict's attention heads (default: width / 64).
    #[arg(long)]
    pub heads: Option<usize>,
}

impl ImportArgs {
    /// An error about an import option named as its flag (`--layers`),
    /// not as the config key it becomes (`import.layers`).
    pub fn flag_names(&self, e: crate::error::Error) -> crate::error::Error {
        match e {
            crate::error::Error::Config { field, msg } if field.starts_with("import.") => {
                crate::error::Error::Other(format!("`--{}`: {msg}", &field["import.".len()..]))
            }
            e => e,
        }
    }

    /// The options for [`crate::model::import::open`].
    pub fn options(&self) -> crate::model::import::ImportOptions {
        crate::model::import::ImportOptions {
            layers: self.layers.clone(),
            mean: self.mean.clone(),
            std: self.std.clone(),
            resize: self.resize,
            heads: self.heads,
        }
    }

    /// `--input`, parsed (`3x32x32`).
    pub fn input_shape(&self) -> Result<Option<[usize; 3]>> {
        let Some(s) = &self.input else {
            return Ok(None);
        };
        let v: Vec<usize> = s
            .split(['x', 'X', ','])
            .map(|p| p.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| crate::error::Error::config("--input", format!("`{s}` is not CxHxW")))?;
        match v[..] {
            [c, h, w] if c * h * w > 0 => Ok(Some([c, h, w])),
            _ => Err(crate::error::Error::config(
                "--input",
                format!("`{s}` is not CxHxW (three positive numbers)"),
            )),
        }
    }
}

/// Exit code for a comparison stopped by the user.
pub const EXIT_CANCELLED: i32 = 130;

/// Runs the command line with `args` (including the program name) and
/// returns the process exit code. Errors are printed as one line on stderr.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// The registry for a command: built-ins plus discovered libraries; load
/// errors are printed as warnings and never stop the command.
fn registry(dirs: &[PathBuf]) -> crate::plugins::Registry {
    let r = crate::plugins::Registry::discover(dirs);
    for e in r.errors() {
        eprintln!("warning: plugin not loaded: {}", e.message);
    }
    r
}

#[cfg(feature = "gui")]
fn default_command(a: GuiArgs, dirs: Vec<PathBuf>) -> Result<i32> {
    gui(a, dirs)
}

#[cfg(not(feature = "gui"))]
fn default_command(_: GuiArgs, dirs: Vec<PathBuf>) -> Result<i32> {
    eprintln!("No command given: running the demo comparison (see `shears --help`).");
    compare::compare(
        CompareArgs {
            out: PathBuf::from("shears-out"),
            ..Default::default()
        },
        &registry(&dirs),
    )
}

#[cfg(feature = "gui")]
fn gui(a: GuiArgs, dirs: Vec<PathBuf>) -> Result<i32> {
    let launch = crate::gui::LaunchOptions {
        config: a.config,
        out_dir: a.out,
        autorun: a.run,
        screenshot: a.screenshot,
        export_charts: a.export_charts,
        quit_after_run: a.quit_after_run,
        plugin_dirs: dirs,
        probe_exe: std::env::current_exe().ok(),
        no_native_dialogs: a.no_native_dialogs,
    };
    crate::gui::run(launch, a.fresh).map(|_| 0)
}

#[cfg(not(feature = "gui"))]
fn gui(_: GuiArgs, _: Vec<PathBuf>) -> Result<i32> {
    Err(crate::error::Error::Other(
        "this build of shears has no desktop app (build with the `gui` feature)".into(),
    ))
}

fn dispatch(cli: Cli) -> Result<i32> {
    if cli.command.is_some() && cli.gui.is_set() {
        return Err(crate::error::Error::config(
            "command line",
            "the app's options (--config, --out, --run, --fresh, ...) go without a command or after `gui`",
        ));
    }
    let dirs = cli.plugin_dirs;
    match cli.command {
        None => default_command(cli.gui, dirs),
        Some(Command::Gui(a)) => gui(a, dirs),
        Some(Command::Compare(a)) => compare::compare(a, &registry(&dirs)),
        Some(Command::Report(a)) => report_cli::report(&a),
        Some(Command::Train(a)) => commands::train(a).map(|_| 0),
        Some(Command::Prune(a)) => commands::prune(a, &registry(&dirs)).map(|_| 0),
        Some(Command::Eval(a)) => commands::eval(a).map(|_| 0),
        Some(Command::ExportData(a)) => commands::export_data(&a).map(|_| 0),
        Some(Command::Inspect { checkpoint, import }) => {
            commands::inspect(&checkpoint, &import).map(|_| 0)
        }
        Some(Command::Plugins(PluginsCommand::List)) => {
            plugins_cli::list(&crate::plugins::Registry::discover(&dirs));
            Ok(0)
        }
        Some(Command::Plugins(PluginsCommand::Check { file })) => plugins_cli::check(&file),
        Some(Command::Plugins(PluginsCommand::Probe { file })) => plugins_cli::probe(&file),
        Some(Command::Schedule(a)) => schedule_cli::schedule(&a, &registry(&dirs)),
        Some(Command::Plan(a)) => plan_cli::plan(&a, &registry(&dirs)),
        Some(Command::RunTask(a)) => plan_cli::run_task(&a, &registry(&dirs)),
        Some(Command::Status { dir }) => plan_cli::status(&dir),
        Some(Command::Merge { dir }) => plan_cli::merge(&dir),
        Some(Command::Sensitivity(a)) => sensitivity_cli::sensitivity(&a, &registry(&dirs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_flags_work_without_the_gui_command() {
        let cli = Cli::try_parse_from(["shears", "--fresh", "--config", "a.toml"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.gui.fresh);
        assert_eq!(cli.gui.config, Some(PathBuf::from("a.toml")));
        let cli = Cli::try_parse_from(["shears", "gui", "--fresh"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Gui(GuiArgs { fresh: true, .. }))
        ));
        // A subcommand's own flags are its own.
        let cli = Cli::try_parse_from(["shears", "compare", "--out", "x"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Compare(_))));
        // The global --plugins goes with every command, `plugins` included.
        let cli = Cli::try_parse_from(["shears", "--plugins", "d", "plugins", "list"]).unwrap();
        assert_eq!(cli.plugin_dirs, [PathBuf::from("d")]);
        // App options before another command are refused, not ignored.
        let cli = Cli::try_parse_from(["shears", "--fresh", "plugins", "list"]).unwrap();
        let e = dispatch(cli).unwrap_err().to_string();
        assert!(e.contains("without a command"), "{e}");
    }
}
