//! `lrscape status`: how far an experiment is, from its records alone.

use crate::args::Common;
use crate::families::with_family;

pub fn status(common: &Common) -> anyhow::Result<()> {
    let (config, out) = super::load_config(common)?;
    if !out.is_dir() {
        anyhow::bail!(
            "--out {}: no such directory (nothing run there yet?)",
            out.display()
        );
    }
    // trials.jsonl and the shards' files, read only (safe while jobs run).
    let gathered = sweep::store::gather(&out)?;
    super::print_warnings(&gathered.warnings);
    let (table, shards, outside) = with_family!(config, config => {
        sweep::store::check_setup(&config, &out, &gathered.trials)?;
        (
            sweep::runner::status_table(&config, &gathered.trials),
            sweep::shard::shard_status(&config, &out, &gathered.trials)?,
            sweep::grid::outside_count(&config, &gathered.trials),
        )
    });
    let note = sweep::grid::outside_note(outside, gathered.trials.len(), &out);
    super::print_warnings(note.as_slice());
    print!("{table}");
    if !shards.is_empty() {
        print!("\n{shards}");
    }
    Ok(())
}
