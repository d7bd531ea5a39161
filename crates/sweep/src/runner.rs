//! `lrscape run`: the whole study of a config, resumable.
//!
//! Pre-train (or load) the base, then for each grid cell train the members
//! not yet recorded as populations of at most `run.max_population`, append
//! their records to `trials.jsonl`, and rewrite the derived files.
//!
//! With a shard (`--shard I/N`, see [`crate::shard`]) only that shard's
//! cells run, under its lock, into `trials.shard-I-of-N.jsonl`; the base
//! must exist, and the derived files are left to `lrscape merge`.

use nn::ModelConfig;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use peft::PeftModel;
use records::{TrialKey, TrialRecord, best_of_lr, cell_curves};
use synth_data::{Dataset, SequenceDataset};
use train::{Schedule, SelectedDevice, WorkerPools, evaluate, train_population};

use crate::config::{Cell, ExperimentConfig};
use crate::events::RunEvents;
use crate::grid::{trial_key, trial_stub};
use crate::lock::Lock;
use crate::pretrain::{load_base, pretrain, provenance};
use crate::shard::Shard;
use crate::store::{RunLogEntry, TrialStore, append_run_log, write_derived};
use crate::task::finetune_data;

/// Where a run writes and how far it goes.
pub struct RunOptions {
    pub out: PathBuf,
    pub device: SelectedDevice,
    /// Stop after this many trained populations (tests of resume).
    pub max_populations: Option<usize>,
    /// Run only this shard of the grid's cells (`--shard I/N`): records go
    /// to `trials.shard-I-of-N.jsonl` under a lock, the base must exist, and
    /// the derived files are left to `lrscape merge`.
    pub shard: Option<Shard>,
    /// The config file, for messages that name a command to run.
    pub config_path: Option<PathBuf>,
}

impl RunOptions {
    /// The records file this run appends to.
    pub fn records_path(&self) -> PathBuf {
        match self.shard {
            Some(shard) => self.out.join(shard.records_file()),
            None => self.out.join(crate::layout::TRIALS),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub trained: usize,
    pub skipped: usize,
    pub seconds: f64,
    pub warnings: Vec<String>,
    /// Every record of the file the run appended to, after the run.
    pub trials: Vec<TrialRecord>,
    /// The base's loss on the fine-tuning validation split, where the run
    /// loaded it (it had trials to train).
    pub base_val_loss: Option<f64>,
}

/// The cells a run (or one shard of it) trains, and how much work they are.
#[derive(Debug, Clone)]
pub struct Plan {
    pub cells: Vec<Cell>,
    /// Cells of the whole grid.
    pub grid_cells: usize,
    /// Members of every cell: learning rates × seeds.
    pub members: usize,
    /// Optimizer steps of every member of every cell, summed.
    pub member_steps: usize,
}

/// The cells of `config` that `shard` owns (every cell without one).
pub fn plan<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    shard: Option<Shard>,
) -> anyhow::Result<Plan> {
    let all = config.cells();
    let grid_cells = all.len();
    let cells: Vec<Cell> = match shard {
        Some(shard) => crate::shard::shard_cells(config, shard)
            .into_iter()
            .filter_map(|i| all.get(i).cloned())
            .collect(),
        None => all,
    };
    crate::memory::check(config)?;
    let members = config.finetune.lrs.values()?.len() * config.grid.seeds.len();
    let n_train = crate::task::finetune_train_len(config)?;
    let member_steps = cells
        .iter()
        .try_fold(0usize, |sum, c| {
            sum.checked_add(members.checked_mul(c.checked_steps(n_train)?)?)
        })
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the study's member-steps (finetune.epochs × task.n_finetune_train / \
                 finetune.batch_size × learning rates × seeds, summed over cells) exceed {}",
                config.name,
                usize::MAX
            )
        })?;
    Ok(Plan {
        cells,
        grid_cells,
        members,
        member_steps,
    })
}

/// Pre-trained base for `config`, trained now if missing or unusable.
fn base_for<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    opts: &RunOptions,
    events: &dyn RunEvents,
    warnings: &mut Vec<String>,
) -> anyhow::Result<M::Model> {
    let train_device = opts.device.device.clone().autodiff();
    if let Some(base) = crate::pretrain::checkpoint_base(config, &train_device) {
        return base;
    }
    let tuned = |base| config.model.for_finetuning(base, &train_device);
    match load_base(config, &opts.out, &train_device) {
        Ok((model, _)) => return Ok(tuned(model)),
        Err(e) if opts.shard.is_some() => {
            let config_arg = opts
                .config_path
                .as_ref()
                .map_or_else(|| "<file>".to_string(), |p| p.display().to_string());
            anyhow::bail!(
                "shard {}: {e:#}. Shards only load the base, pre-trained once before them: \
                 run `lrscape pretrain --config {config_arg} --out {}` (with `lrscape slurm`, \
                 the pretrain job) first",
                opts.shard.map(|s| s.to_string()).unwrap_or_default(),
                opts.out.display()
            );
        }
        Err(e) if crate::pretrain::base_dir(&opts.out, config).exists() => {
            warn(events, warnings, format!("{e:#}; pre-training it again"));
        }
        Err(_) => {}
    }
    let (model, record) = pretrain(config, &opts.out, &opts.device, events)?;
    events.note(&format!(
        "pre-trained base: val_acc {:.4} in {:.0}s",
        record.val_accuracy, record.seconds
    ));
    Ok(tuned(model))
}

/// Runs (or resumes) the experiment, and logs the run in `run_log.jsonl`.
pub fn run_experiment<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    opts: &RunOptions,
    events: &dyn RunEvents,
) -> anyhow::Result<RunSummary> {
    // The source tree as the run starts, as its records state it.
    let provenance = provenance(&opts.device);
    let summary = run_cells(config, opts, events)?;
    let log_file = match opts.shard {
        Some(shard) => shard.run_log_file(),
        None => crate::layout::RUN_LOG.to_string(),
    };
    append_run_log(
        &opts.out.join(log_file),
        &RunLogEntry {
            ended_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            seconds: summary.seconds,
            trained: summary.trained,
            skipped: summary.skipped,
            backend: provenance.backend,
            device: provenance.device,
            git_revision: provenance.git_revision,
            git_dirty: provenance.git_dirty,
            base_val_loss: summary.base_val_loss,
            warnings: summary.warnings.clone(),
            config: Some(
                toml::to_string(config)
                    .map_err(|e| anyhow::anyhow!("cannot write the config as TOML: {e}"))?,
            ),
        },
    )?;
    Ok(summary)
}

fn run_cells<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    opts: &RunOptions,
    events: &dyn RunEvents,
) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let mut warnings = Vec::new();
    // The run holds its lock (a shard's, or the directory's) to the end.
    let (_lock, mut store, elsewhere_done) = open_records(config, opts, events, &mut warnings)?;
    let outside = crate::grid::outside_count(config, store.trials());
    if let Some(note) = crate::grid::outside_note(outside, store.trials().len(), &opts.out) {
        warn(events, &mut warnings, note);
    }
    let (train, val) = finetune_data(config)?;
    for note in crate::task::data_notes(config)? {
        warn(events, &mut warnings, note);
    }
    let questions = crate::task::questions(config)?;
    let lrs = config.finetune.lrs.values()?;
    let cells = plan(config, opts.shard)?.cells;
    events.cells_started(cells.len() as u64);
    let provenance = provenance(&opts.device);
    let mut summary = RunSummary::default();
    let mut populations_run = 0;
    if opts.shard.is_none() {
        write_derived(config, &opts.out, store.trials())?;
    }
    let workers = config.run.workers(opts.device.is_gpu()).max(1);
    let pools = WorkerPools::new(workers);
    if let Some(w) = pools.warning() {
        warn(events, &mut warnings, w.to_string());
    }
    let left = work_left(config, &cells, &lrs, &store, &elsewhere_done, train.len());
    // The base only when there is something to train on it.
    let base = if left.trials > 0 {
        Some(base_for(config, opts, events, &mut warnings)?)
    } else {
        None
    };
    // What fine-tuning starts from, on the split it is scored on.
    summary.base_val_loss = base.as_ref().map(|base| {
        let device = opts.device.device.clone().autodiff();
        evaluate(base, &val, 512.min(val.len()).max(1), &device).loss[0]
    });
    if left.trials > 0 {
        let total = cells.len() * lrs.len() * config.grid.seeds.len();
        events.note(&work_ahead(&left, total, store.trials(), workers));
    }
    for cell in &cells {
        let schedule = Schedule {
            epochs: cell.epochs,
            batch_size: cell.batch_size,
            max_steps: None,
            budget: config.finetune.max_steps,
            lr: config.finetune.lr_schedule(),
        };
        let steps_per_member = cell.steps(train.len());
        let done = done_keys(&store, &elsewhere_done);
        let wanted = crate::grid::members(&lrs, &config.grid.seeds);
        let is_done = |&(lr, seed): &(f64, u64)| done.contains(&trial_key(config, cell, lr, seed));
        summary.skipped += wanted.iter().filter(|m| is_done(m)).count();
        let populations =
            split_into_populations(&wanted, config.run.max_population, workers, is_done);
        for group in populations.chunks(workers) {
            if opts
                .max_populations
                .is_some_and(|max| populations_run >= max)
            {
                summary.seconds = started.elapsed().as_secs_f64();
                summary.warnings = warnings;
                summary.trials = store.trials().to_vec();
                events.finished();
                return Ok(summary);
            }
            events.populations_started(
                &cell.label(config),
                group.iter().map(|c| c.len()).sum::<usize>(),
                (steps_per_member * group.len()) as u64,
            );
            let base = base
                .as_ref()
                .context("a population to train, but no trial was left to train")?;
            let job = |members| PopulationJob {
                config,
                cell,
                members,
                base,
                train: &train,
                val: &val,
                questions: questions.as_ref(),
                schedule,
                device: &opts.device,
                adapters: crate::adapters::saves(config, cell).then(|| {
                    (
                        crate::adapters::cell_dir(&opts.out, config, cell),
                        crate::adapters::base_name(config, &opts.out),
                    )
                }),
            };
            let results = train_side_by_side(group, &job, &pools, events);
            for records in results {
                let records: Vec<TrialRecord> = records?
                    .into_iter()
                    .filter(|r| !done.contains(&r.key()))
                    .map(|mut r| {
                        r.provenance = provenance.clone();
                        r
                    })
                    .collect();
                summary.trained += records.len();
                store.append(records)?;
                populations_run += 1;
            }
            if opts.shard.is_none() {
                write_derived(config, &opts.out, store.trials())?;
            }
        }
        events.cell_finished();
        finish_cell(config, cell, &opts.out, store.trials(), events)?;
        let left = work_left(config, &cells, &lrs, &store, &elsewhere_done, train.len());
        if left.trials > 0
            && let Some(eta) = eta_seconds(store.trials(), left.member_examples, workers)
        {
            events.note(&format!(
                "{} trials left; ETA {}",
                left.trials,
                format_duration(eta)
            ));
        }
    }
    events.finished();
    summary.seconds = started.elapsed().as_secs_f64();
    summary.warnings = warnings;
    summary.trials = crate::grid::within_grid(config, store.trials()).0;
    Ok(summary)
}

/// The run's opening line: the trials left of `total` and, from the
/// recorded trials' speed, when they will be done.
fn work_ahead(left: &WorkLeft, total: usize, recorded: &[TrialRecord], workers: usize) -> String {
    match eta_seconds(recorded, left.member_examples, workers) {
        Some(eta) => format!(
            "{} of {total} trials to train; ETA {} (from the {} recorded trials' speed)",
            left.trials,
            format_duration(eta),
            recorded.len()
        ),
        None => format!(
            "{} of {total} trials to train; the ETA follows the first cell",
            left.trials
        ),
    }
}

/// After a cell's last population: its news, and with `save_adapters =
/// "best"` only its best learning rate's adapters kept.
fn finish_cell<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    cell: &Cell,
    out: &std::path::Path,
    trials: &[TrialRecord],
    events: &dyn RunEvents,
) -> anyhow::Result<()> {
    for line in cell_news(config, cell, trials) {
        events.note(&line);
    }
    let dir = crate::adapters::cell_dir(out, config, cell);
    if let Some(lr) = crate::adapters::keep_best(config, cell, &dir, trials)? {
        events.note(&format!(
            "{}: adapters of lr {lr:.3e} in {}",
            cell.label(config),
            dir.display()
        ));
    }
    Ok(())
}

/// Tells `events` of a warning and keeps it for the run's summary.
fn warn(events: &dyn RunEvents, warnings: &mut Vec<String>, message: String) {
    events.warning(&message);
    warnings.push(message);
}

/// Opens the records file of this run (a shard: under its lock) and reads
/// what other records files of `out` hold (a shard skips those trials);
/// records of another setup are refused.
fn open_records<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    opts: &RunOptions,
    events: &dyn RunEvents,
    warnings: &mut Vec<String>,
) -> anyhow::Result<(Lock, TrialStore, HashSet<TrialKey>)> {
    let mut warn = |message: String| warn(events, warnings, message);
    let lock = match opts.shard {
        Some(shard) => crate::shard::acquire_lock(&opts.out, shard)?,
        None => {
            let lock = Lock::acquire(&opts.out.join(crate::layout::LOCK), "lrscape run")?;
            if let Some((shard, holder)) = crate::shard::running_shards(&opts.out)?.first() {
                anyhow::bail!(
                    "shard {shard} is running in {} ({holder}): a plain run beside it would \
                     train its trials too; wait for the shards, then `lrscape merge`",
                    opts.out.display()
                );
            }
            lock
        }
    };
    let store_path = opts.records_path();
    let (store, opened) = TrialStore::open(&store_path)?;
    opened.into_iter().for_each(&mut warn);
    let mut elsewhere: Vec<TrialRecord> = Vec::new();
    if opts.shard.is_none() && !crate::store::shard_files(&opts.out)?.is_empty() {
        warn(format!(
            "{} holds shard records (trials.shard-I-of-N.jsonl) this run does not read: \
             run `lrscape merge` first, or their trials are trained again",
            opts.out.display()
        ));
    }
    // A shard also skips trials recorded elsewhere in the directory (the
    // merged trials.jsonl, shard files of another N); it only reads them.
    if opts.shard.is_some() {
        for path in crate::store::record_files(&opts.out)? {
            if path != store_path {
                let (trials, _, read) = crate::store::read_trials(&path)?;
                read.into_iter().for_each(&mut warn);
                elsewhere.extend(trials);
            }
        }
    }
    let results_hash = config.results_hash();
    if let Some(other) = store
        .trials()
        .iter()
        .chain(&elsewhere)
        .find(|t| t.config_hash != results_hash)
    {
        anyhow::bail!(
            "{} holds trials of another setup (hash {}, this config's is {results_hash}): \
             task, model, pre-training or fine-tuning settings changed; use another --out",
            store_path.display(),
            other.config_hash
        );
    }
    let elsewhere_done = elsewhere.iter().map(TrialRecord::key).collect();
    Ok((lock, store, elsewhere_done))
}

/// Splits a cell's members into populations: at most `max_population`
/// members each, and at least one per worker when there are enough; the
/// populations whose members are all done are left out. The split is of
/// the whole cell, whatever is recorded already, so a resumed cell trains
/// the very populations an uninterrupted run trains (bit-identical
/// results); a population with some members recorded trains again and only
/// its missing members are recorded.
fn split_into_populations(
    wanted: &[(f64, u64)],
    max_population: usize,
    workers: usize,
    is_done: impl Fn(&(f64, u64)) -> bool,
) -> Vec<&[(f64, u64)]> {
    if wanted.is_empty() {
        return Vec::new();
    }
    let parts = wanted
        .len()
        .div_ceil(max_population.max(1))
        .max(workers.min(wanted.len()));
    wanted
        .chunks(wanted.len().div_ceil(parts))
        .filter(|population| !population.iter().all(&is_done))
        .collect()
}

/// Trains `group`'s populations at once, each on a thread of its own pool;
/// one result per population, a panicked thread's as an error naming it.
fn train_side_by_side<'a, M: ModelConfig>(
    group: &[&'a [(f64, u64)]],
    job: &(dyn Fn(&'a [(f64, u64)]) -> PopulationJob<'a, M> + Sync),
    pools: &WorkerPools,
    events: &dyn RunEvents,
) -> Vec<anyhow::Result<Vec<TrialRecord>>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = group
            .iter()
            .enumerate()
            .map(|(worker, &members)| {
                let job = job(members);
                scope.spawn(move || {
                    pools.install(worker, group.len(), || train_population_of(&job, events))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| Err(thread_panicked(panic))))
            .collect()
    })
}

/// Keys of the trials recorded in `store` or read from other records files.
fn done_keys(store: &TrialStore, elsewhere: &HashSet<TrialKey>) -> HashSet<TrialKey> {
    let mut done = store.done();
    done.extend(elsewhere.iter().cloned());
    done
}

/// Work of the grid not yet recorded (in the store or elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WorkLeft {
    trials: usize,
    /// Examples the left trials will step through (steps × batch size,
    /// summed): what wall time is proportional to across budgets.
    member_examples: usize,
}

fn work_left<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    cells: &[Cell],
    lrs: &[f64],
    store: &TrialStore,
    elsewhere: &HashSet<TrialKey>,
    n_train: usize,
) -> WorkLeft {
    let done = done_keys(store, elsewhere);
    let mut left = WorkLeft {
        trials: 0,
        member_examples: 0,
    };
    for cell in cells {
        for (lr, seed) in crate::grid::members(lrs, &config.grid.seeds) {
            if !done.contains(&trial_key(config, cell, lr, seed)) {
                left.trials += 1;
                left.member_examples += cell.steps(n_train) * cell.batch_size;
            }
        }
    }
    left
}

/// Wall seconds to train `member_examples` more, at the speed of the
/// recorded trials (each holds its population's wall time divided by its
/// size, and `workers` populations train at once); `None` without timed
/// records.
pub(crate) fn eta_seconds(
    trials: &[TrialRecord],
    member_examples: usize,
    workers: usize,
) -> Option<f64> {
    let (seconds, examples) = trials
        .iter()
        .filter(|t| t.steps > 0 && t.seconds.is_finite() && t.seconds > 0.0)
        .fold((0.0, 0usize), |(s, n), t| {
            (s + t.seconds, n + t.steps * t.batch_size.max(1))
        });
    (examples > 0)
        .then(|| seconds / examples as f64 * member_examples as f64 / workers.max(1) as f64)
}

/// `1h 05m`, `12m 30s`, `45s`.
pub(crate) fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m {sec:02}s"),
        (h, m, _) => format!("{h}h {m:02}m"),
    }
}

/// One population of a cell: its members' (lr, seed) and what they train on.
struct PopulationJob<'a, M: ModelConfig> {
    config: &'a ExperimentConfig<M>,
    cell: &'a Cell,
    members: &'a [(f64, u64)],
    base: &'a M::Model,
    train: &'a SequenceDataset,
    val: &'a SequenceDataset,
    /// Scoring by generation: each member's accuracy is its exact-match
    /// share on these.
    questions: Option<&'a crate::task::Questions>,
    schedule: Schedule,
    device: &'a SelectedDevice,
    /// Where the members' adapters go (`[run] save_adapters`), and the
    /// base's name for their `adapter_config.json`.
    adapters: Option<(PathBuf, String)>,
}

/// The error of a training thread that panicked, with its message.
fn thread_panicked(panic: Box<dyn std::any::Any + Send>) -> anyhow::Error {
    anyhow::anyhow!(
        "a training thread panicked: {}",
        train::panic_message(panic.as_ref())
    )
}

/// Trains one population and returns its members' records (provenance
/// left to the caller).
fn train_population_of<M: ModelConfig>(
    job: &PopulationJob<'_, M>,
    events: &dyn RunEvents,
) -> anyhow::Result<Vec<TrialRecord>> {
    let PopulationJob {
        config,
        cell,
        members,
        ..
    } = *job;
    let started = Instant::now();
    let device = job.device.device.clone().autodiff();
    let seeds: Vec<u64> = members.iter().map(|&(_, seed)| seed).collect();
    let lora = cell.fine_tune();
    let gradients = crate::adapters::init_gradients(
        job.base,
        &lora,
        (job.train, job.schedule.batch_size),
        &device,
    )
    .map_err(|e| anyhow::anyhow!("cell {}: {e:#}", cell.label(config)))?;
    let model = PeftModel::with_gradients(job.base.clone(), &lora, &seeds, &gradients)
        .map_err(|e| anyhow::anyhow!("cell {}: {e}", cell.label(config)))?;
    let population = crate::grid::population(config, members);
    let outcome = train_population(
        model,
        job.train,
        &population,
        job.schedule,
        crate::grid::adamw(config.finetune.weight_decay),
        &device,
        &|| events.step(),
    );
    let val = job.val;
    let mut eval = evaluate(&outcome.model, val, 512.min(val.len()).max(1), &device);
    if let Some(questions) = job.questions {
        eval.accuracy = crate::eval::exact_match(&outcome.model, questions, &device)?;
    }
    if let Some((dir, base_name)) = &job.adapters {
        crate::adapters::save_population(
            cell,
            (dir, base_name),
            &outcome.model,
            (job.base, &gradients),
            members,
            &outcome.diverged,
        )?;
    }
    let per_member = started.elapsed().as_secs_f64() / members.len() as f64;
    Ok(members
        .iter()
        .enumerate()
        .map(|(i, &(lr, seed))| {
            let mut record = trial_stub(config, cell, lr, seed);
            record.train_loss = outcome.epoch_loss[i].clone();
            record.val_accuracy = eval.accuracy[i];
            record.val_loss = eval.loss[i];
            record.steps = outcome.steps;
            record.seconds = per_member;
            record.diverged = outcome.diverged[i];
            record
        })
        .collect())
}

/// A finished cell's best LR (and best perplexity for a language model).
fn cell_news<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    cell: &Cell,
    trials: &[TrialRecord],
) -> Vec<String> {
    let mut news = Vec::new();
    let own = crate::grid::cell_trials(config, cell, trials);
    if let Some(curve) = cell_curves(&own).first()
        && let Some((best, lr)) = best_of_lr(curve)
    {
        news.push(format!(
            "{}: {}: best val_acc {best:.4} at lr {lr:.3e}",
            config.name,
            cell.label(config)
        ));
    }
    let perplexity = records::Metric::Perplexity;
    if config.task.kind.is_language_model()
        && let Some(curve) = records::cell_curves_of(&own, perplexity).first()
        && let Some((best, lr)) = records::best_of_lr_by(curve, perplexity)
    {
        news.push(format!(
            "{}: {}: best val perplexity {best:.4} at lr {lr:.3e}",
            config.name,
            cell.label(config)
        ));
    }
    news
}

/// Progress of an experiment from its records alone: per cell, trials
/// recorded out of those the grid asks for, and the best accuracy (the
/// lowest perplexity for a language model) so far.
pub fn status_table<M: ModelConfig>(
    config: &ExperimentConfig<M>,
    trials: &[TrialRecord],
) -> String {
    let lrs = config.finetune.lrs.values().unwrap_or_default();
    let cells = config.cells();
    let labels: Vec<String> = cells.iter().map(|c| c.label(config)).collect();
    let width = labels.iter().map(String::len).max().unwrap_or(0).max(4);
    let metric = config.metric();
    let heading = match metric {
        records::Metric::Accuracy => "best_acc",
        records::Metric::Perplexity => "best_ppl",
    };
    let mut out = format!("{:<width$} {:>9} {:>9}\n", "cell", "done", heading);
    let (mut done_all, mut wanted_all) = (0, 0);
    for (cell, label) in cells.iter().zip(&labels) {
        let keys: Vec<_> = crate::grid::members(&lrs, &config.grid.seeds)
            .into_iter()
            .map(|(lr, seed)| trial_key(config, cell, lr, seed))
            .collect();
        let recorded: Vec<&TrialRecord> =
            trials.iter().filter(|t| keys.contains(&t.key())).collect();
        // The best single trial so far (NaN where none is finite).
        let best = recorded
            .iter()
            .map(|t| metric.of(t))
            .filter(|v| v.is_finite())
            .reduce(|a, b| if metric.better(b, a) { b } else { a })
            .unwrap_or(f64::NAN);
        done_all += recorded.len();
        wanted_all += keys.len();
        out.push_str(&format!(
            "{label:<width$} {:>4}/{:<4} {:>9}\n",
            recorded.len(),
            keys.len(),
            if best.is_nan() {
                "-".to_string()
            } else {
                format!("{best:.4}")
            }
        ));
    }
    out.push_str(&format!("{done_all}/{wanted_all} trials recorded\n"));
    out
}

/// The end-of-run table: best accuracy and its learning rate per method × rank.
pub fn summary_table(trials: &[TrialRecord]) -> String {
    let mut out = format!(
        "{:<24} {:>5} {:>9} {:>10} {:>6}\n",
        "method", "rank", "best_acc", "best_lr", "seeds"
    );
    for curve in cell_curves(trials) {
        if let Some((best, lr)) = best_of_lr(&curve) {
            let seeds = curve.seeds.iter().max().copied().unwrap_or(0);
            out.push_str(&format!(
                "{:<24} {:>5} {:>9.4} {:>10.3e} {:>6}\n",
                curve.kind, curve.rank, best, lr, seeds
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CONFIG;
    use tinyformer::TinyformerConfig;

    #[test]
    fn eta_scales_recorded_speed_by_work_left_and_workers() {
        let config =
            ExperimentConfig::<TinyformerConfig>::from_toml_str(DEFAULT_CONFIG, "default.toml")
                .unwrap();
        let cell = &config.cells()[0];
        let mut a = trial_stub(&config, cell, 1e-3, 0);
        (a.seconds, a.steps, a.batch_size) = (10.0, 50, 10);
        let mut b = trial_stub(&config, cell, 1e-4, 0);
        (b.seconds, b.steps, b.batch_size) = (30.0, 25, 20);
        // 40 s over 1000 member-examples: 0.04 s each; 1000 left on 2 workers.
        let eta = eta_seconds(&[a.clone(), b], 1000, 2).unwrap();
        assert!((eta - 20.0).abs() < 1e-9, "{eta}");
        a.steps = 0;
        assert_eq!(eta_seconds(&[a], 1000, 2), None);
        assert_eq!(eta_seconds(&[], 1000, 2), None);
    }

    #[test]
    fn cells_split_into_populations_by_size_and_workers_skipping_done_ones() {
        let wanted = crate::grid::members(&[1e-3, 1e-2, 1e-1], &[0, 1, 2, 3]);
        let none_done = |_: &(f64, u64)| false;
        let sizes = |p: &[&[(f64, u64)]]| p.iter().map(|m| m.len()).collect::<Vec<_>>();
        // 12 members, at most 5 each: 3 populations of 4.
        assert_eq!(
            sizes(&split_into_populations(&wanted, 5, 1, none_done)),
            [4, 4, 4]
        );
        // One per worker when there are enough members: 4 workers, 4 of 3.
        assert_eq!(
            sizes(&split_into_populations(&wanted, 64, 4, none_done)),
            [3, 3, 3, 3]
        );
        // A population whose members are all recorded is left out; one with
        // a member missing trains again whole.
        let lr_done = |&(lr, _): &(f64, u64)| lr == 1e-2;
        let left = split_into_populations(&wanted, 4, 1, lr_done);
        assert_eq!(sizes(&left), [4, 4]);
        assert!(left.iter().all(|p| p.iter().all(|&(lr, _)| lr != 1e-2)));
        assert!(split_into_populations(&[], 4, 2, none_done).is_empty());
    }

    #[test]
    fn durations_read_as_hours_minutes_seconds() {
        assert_eq!(format_duration(45.2), "45s");
        assert_eq!(format_duration(750.0), "12m 30s");
        assert_eq!(format_duration(3900.0), "1h 05m");
    }

    #[test]
    fn work_left_counts_only_the_grid() {
        let config =
            ExperimentConfig::<TinyformerConfig>::from_toml_str(DEFAULT_CONFIG, "default.toml")
                .unwrap();
        let cells = config.cells();
        let lrs = config.finetune.lrs.values().unwrap();
        let dir = std::env::temp_dir().join(format!("lrscape-left-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trials.jsonl");
        let _ = std::fs::remove_file(&path);
        let (mut store, _) = TrialStore::open(&path).unwrap();
        let all = cells.len() * lrs.len() * config.grid.seeds.len();
        let none = HashSet::new();
        let n = config.task.n_finetune_train;
        let per_trial = config.cells()[0].steps(n) * config.cells()[0].batch_size;
        assert_eq!(
            work_left(&config, &cells, &lrs, &store, &none, n),
            WorkLeft {
                trials: all,
                member_examples: all * per_trial
            }
        );
        let mut inside = trial_stub(&config, &cells[0], lrs[0], config.grid.seeds[0]);
        let mut outside = trial_stub(&config, &cells[0], 0.5, 99);
        (inside.val_accuracy, outside.val_accuracy) = (0.5, 0.5);
        store.append(vec![inside, outside]).unwrap();
        assert_eq!(
            work_left(&config, &cells, &lrs, &store, &none, n).trials,
            all - 1
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
