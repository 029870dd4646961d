//! The plugin host: the registry of criteria and schedules a run can use.
//!
//! Built-in plugins (the `plugins/` crates) are linked in statically; plugins
//! loaded from shared libraries join the same registry.

use serde::Serialize;
use shears_plugin_api::{
    Criterion, CriterionFactory, PluginKind, PluginMeta, Schedule, ScheduleFactory,
};

use crate::error::{Error, Result};

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Origin {
    /// Linked into the application.
    Builtin,
}

/// A row of `shears plugins list`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginRow {
    /// Criterion or schedule.
    pub kind: &'static str,
    /// Plugin name.
    pub name: &'static str,
    /// Plugin version.
    pub version: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Where it came from.
    pub origin: Origin,
}

/// All criteria and schedules available to a run.
#[derive(Debug, Clone)]
pub struct Registry {
    criteria: Vec<CriterionFactory>,
    schedules: Vec<ScheduleFactory>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// The built-in plugins.
    pub fn builtin() -> Self {
        let mut criteria = shears_magnitude::factories();
        criteria.extend(shears_random::factories());
        criteria.extend(shears_taylor::factories());
        criteria.extend(shears_wanda::factories());
        Self {
            criteria,
            schedules: shears_schedules::factories(),
        }
    }

    /// Adds a criterion; a name already taken is an error.
    pub fn add_criterion(&mut self, f: CriterionFactory) -> Result<()> {
        if self.criteria.iter().any(|c| c.meta.name == f.meta.name) {
            return Err(Error::Plugin {
                plugin: f.meta.name.into(),
                msg: "a criterion with this name is already registered".into(),
            });
        }
        self.criteria.push(f);
        Ok(())
    }

    /// Adds a schedule; a name already taken is an error.
    pub fn add_schedule(&mut self, f: ScheduleFactory) -> Result<()> {
        if self.schedules.iter().any(|c| c.meta.name == f.meta.name) {
            return Err(Error::Plugin {
                plugin: f.meta.name.into(),
                msg: "a schedule with this name is already registered".into(),
            });
        }
        self.schedules.push(f);
        Ok(())
    }

    /// Names of the criteria, in registry order.
    pub fn criterion_names(&self) -> Vec<&'static str> {
        self.criteria.iter().map(|f| f.meta.name).collect()
    }

    /// Names of the schedules, in registry order.
    pub fn schedule_names(&self) -> Vec<&'static str> {
        self.schedules.iter().map(|f| f.meta.name).collect()
    }

    /// Every plugin, criteria first.
    pub fn rows(&self) -> Vec<PluginRow> {
        let row = |m: &PluginMeta| PluginRow {
            kind: match m.kind {
                PluginKind::Criterion => "criterion",
                PluginKind::Schedule => "schedule",
            },
            name: m.name,
            version: m.version,
            description: m.description,
            origin: Origin::Builtin,
        };
        self.criteria
            .iter()
            .map(|f| row(&f.meta))
            .chain(self.schedules.iter().map(|f| row(&f.meta)))
            .collect()
    }

    /// Metadata of the schedule called `name`.
    pub fn schedule_meta(&self, name: &str) -> Option<&PluginMeta> {
        self.schedules
            .iter()
            .find(|f| f.meta.name == name)
            .map(|f| &f.meta)
    }

    /// Creates the criterion `name` with JSON `params`; an unknown name lists
    /// the known ones, invalid parameters name the plugin and the key.
    pub fn criterion(&self, name: &str, params: &serde_json::Value) -> Result<Box<dyn Criterion>> {
        let f = self
            .criteria
            .iter()
            .find(|f| f.meta.name == name)
            .ok_or_else(|| Error::Plugin {
                plugin: name.into(),
                msg: format!(
                    "no such criterion (available: {})",
                    self.criterion_names().join(", ")
                ),
            })?;
        (f.create)(&params.to_string()).map_err(|e| Error::Plugin {
            plugin: name.into(),
            msg: e.to_string(),
        })
    }

    /// Creates the schedule `name` with JSON `params`.
    pub fn schedule(&self, name: &str, params: &serde_json::Value) -> Result<Box<dyn Schedule>> {
        let f = self
            .schedules
            .iter()
            .find(|f| f.meta.name == name)
            .ok_or_else(|| Error::Plugin {
                plugin: name.into(),
                msg: format!(
                    "no such schedule (available: {})",
                    self.schedule_names().join(", ")
                ),
            })?;
        (f.create)(&params.to_string()).map_err(|e| Error::Plugin {
            plugin: name.into(),
            msg: e.to_string(),
        })
    }
}
