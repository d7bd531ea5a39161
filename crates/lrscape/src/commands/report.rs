//! `lrscape report`: figures and REPORT.md from an experiment's records.

use std::path::Path;

use crate::args::Common;
use crate::families::with_family;

pub fn report(common: &Common, compare: Option<&Path>) -> anyhow::Result<()> {
    let (config, out) = super::load_config(common)?;
    let written = with_family!(config, config => report::write_report(&config, &out, compare))?;
    super::print_warnings(&written.warnings);
    println!(
        "{} figures and {} from {} trials",
        written.figures.len(),
        written.report.display(),
        written.trials
    );
    Ok(())
}
