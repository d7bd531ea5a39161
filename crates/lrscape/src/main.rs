//! `lrscape`: learning-rate × rank studies of LoRA-family adapters.
//!
//! The binary only parses flags, picks the backend (`backends`), calls the
//! libraries and prints; each subcommand is a module of [`commands`].

mod args;
mod commands;
mod families;
mod progress;

use std::process::ExitCode;

use clap::Parser;

/// Training allocates and frees many multi-megabyte activations per step.
/// glibc serves each from a fresh mmap and unmaps it on free, and the page
/// faults cost much of the wall time (docs/benchmarks/history.md); keep them
/// in the heap instead.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; it is called
    // once at start-up, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    train::flush_subnormals();
    match commands::run(args::Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
