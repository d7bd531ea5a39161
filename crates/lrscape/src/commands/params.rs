//! `lrscape params`: trainable / total parameters per (method, rank).

use std::path::Path;

use crate::args::parse_methods;
use crate::families::{AnyConfig, with_family};

/// Counts for the config's grid, or for the methods, ranks and targets the
/// flags name instead.
pub fn params(
    config: Option<&Path>,
    methods: Option<&[String]>,
    ranks: Option<&[usize]>,
    targets: Option<&str>,
) -> anyhow::Result<()> {
    let config = AnyConfig::load(config)?;
    let device = backends::select_device(backends::default_device_name())?.device;
    let counts = with_family!(config, config => {
        let methods = match methods {
            Some(names) => parse_methods(names)?,
            None => config.grid.methods.clone(),
        };
        let targets = match targets {
            Some(name) => peft::TargetModules::Preset(name.to_string()),
            None => config.grid.targets.clone(),
        };
        sweep::params::param_counts(
            &config.model,
            &methods,
            ranks.unwrap_or(&config.grid.ranks),
            &targets,
            config.train_head(),
            &device,
        )
    })?;
    for count in counts {
        println!("{}", serde_json::to_string(&count)?);
    }
    Ok(())
}
