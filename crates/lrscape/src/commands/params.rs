//! `lrscape params`: trainable / total parameters per (method, rank).

use crate::args::{Common, parse_methods};
use crate::families::with_family;

pub fn params(
    common: &Common,
    methods: &[String],
    ranks: &[usize],
    targets: &str,
) -> anyhow::Result<()> {
    let (config, _) = super::load_config(common)?;
    let methods = parse_methods(methods)?;
    let selected = backends::select_device(&common.device)?;
    let counts = with_family!(config, config => sweep::params::param_counts(
        &config.model,
        &methods,
        ranks,
        targets,
        &selected.device
    ))?;
    for count in counts {
        println!("{}", serde_json::to_string(&count)?);
    }
    Ok(())
}
