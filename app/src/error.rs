//! The engine's error type: every error says what went wrong and where
//! (which file, field, layer or plugin).

use std::path::{Path, PathBuf};

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file was read but its content is not what its format requires.
    #[error("{path}: {msg}")]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A configuration key has a bad value.
    #[error("config `{field}`: {msg}")]
    Config {
        /// Dotted path of the key, e.g. `train.lr`.
        field: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A plan folder's task cannot run (yet), or its tasks cannot be merged.
    #[error("{what}: {msg}")]
    Plan {
        /// What was asked: `task 3`, `merge`.
        what: String,
        /// Why it cannot be done.
        msg: String,
    },
    /// Tensors or layers do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A plugin failed or answered something invalid.
    #[error("plugin `{plugin}`: {msg}")]
    Plugin {
        /// Plugin name (and file, for loaded ones).
        plugin: String,
        /// What went wrong.
        msg: String,
    },
    /// A plugin library could not be loaded.
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// Training diverged.
    #[error("training diverged: {0}")]
    NonFinite(String),
    /// The user cancelled the run.
    #[error("cancelled")]
    Cancelled,
    /// An error inside Candle.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// Data could not be written as JSON.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A config could not be written as TOML.
    #[error("cannot write TOML: {0}")]
    Toml(#[from] toml::ser::Error),
    /// A chart could not be drawn as a picture.
    #[error("chart `{chart}`: {source}")]
    Chart {
        /// The chart's id.
        chart: String,
        /// Why.
        source: RasterError,
    },
    /// A node of a model graph cannot be built or run as it is.
    #[error("node `{node}`: {msg}")]
    Node {
        /// The node's name.
        node: String,
        /// What is wrong.
        msg: String,
    },
    /// Anything else, with its context.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A format error in `path`.
    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// A configuration error on `field`.
    pub fn config(field: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            msg: msg.into(),
        }
    }
}

/// Why a plugin library could not be loaded; every variant names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LibraryError {
    /// The OS could not load the file as a shared library.
    #[error("{}: not a loadable shared library ({detail})", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The loader's reason.
        detail: String,
    },
    /// The library has no Shears entry symbol.
    #[error("{}: no entry symbol `{}`: not a Shears plugin", path.display(), shears_plugin_api::abi::ENTRY_SYMBOL)]
    Symbol {
        /// The file.
        path: PathBuf,
    },
    /// The library speaks another version of the plugin ABI.
    #[error("{}: plugin ABI version {found}, this Shears expects {}", path.display(), shears_plugin_api::ABI_VERSION)]
    Version {
        /// The file.
        path: PathBuf,
        /// The version it declares.
        found: u32,
    },
    /// The entry function or a plugin descriptor is broken (null, incomplete,
    /// not UTF-8, an invalid schema, an unknown kind).
    #[error("{}: {msg}", path.display())]
    Descriptor {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The library declares a plugin twice, or one that is already loaded.
    #[error("{}: {msg}", path.display())]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// Which plugin, and where the other one comes from.
        msg: String,
    },
}

/// Why an SVG could not be made a PNG.
#[derive(Debug, thiserror::Error)]
pub enum RasterError {
    /// The SVG does not parse.
    #[error("not a valid SVG: {0}")]
    Svg(#[from] resvg::usvg::Error),
    /// The picture would have no pixels, or too many.
    #[error("{width}x{height} pixels is not a picture size")]
    Size {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
    },
    /// The pixels could not be encoded.
    #[error("cannot encode PNG: {0}")]
    Png(#[from] png::EncodingError),
}
