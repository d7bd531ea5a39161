//! One rayon pool per training thread.
//!
//! Burn's CPU backends run their parallel kernels on rayon's global pool.
//! When `lrscape run` trains one population per core, every product and
//! element-wise kernel of each population would still be split over all
//! cores, and each training thread waits at every kernel's join for threads
//! busy with the other population. A pool per training thread, of its share
//! of the cores (one thread each for two populations on two cores), keeps
//! each population on its own cores with nothing to wait for: LoRA r16 ×16,
//! two populations at once, 15–20% less time per member-step on 2 cores
//! (`lrscape bench`, README "Speed"). The kernels compute the same numbers
//! on any number of threads (products split rows, not sums), so results do
//! not change.

use rayon::{ThreadPool, ThreadPoolBuilder};

/// The pools of `workers` training threads; empty (every thread on the
/// global pool) for one worker, which then has every core.
pub struct WorkerPools {
    pools: Vec<ThreadPool>,
}

impl WorkerPools {
    /// `workers` pools of `threads_each(workers, cores)` threads each. If the
    /// system refuses a thread, the workers share the global pool (slower,
    /// same results) and a warning says so.
    pub fn new(workers: usize) -> Self {
        if workers <= 1 {
            return Self { pools: Vec::new() };
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = threads_each(workers, cores);
        let pools: Result<Vec<ThreadPool>, _> = (0..workers)
            .map(|w| {
                ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(move |i| format!("lrscape-w{w}-{i}"))
                    .build()
            })
            .collect();
        match pools {
            Ok(pools) => Self { pools },
            Err(e) => {
                eprintln!(
                    "warning: no thread pool per training thread ({e}); \
                     the {workers} populations share the global pool"
                );
                Self { pools: Vec::new() }
            }
        }
    }

    /// Threads of each worker's pool; `None` when workers share the global pool.
    pub fn threads_each(&self) -> Option<usize> {
        self.pools.first().map(|p| p.current_num_threads())
    }

    /// Runs `f` for worker `worker` of the `active` ones training now: on the
    /// worker's pool (the calling thread waits) when more than one trains,
    /// else on the calling thread, whose kernels then have the global pool
    /// and every core.
    pub fn install<R: Send>(
        &self,
        worker: usize,
        active: usize,
        f: impl FnOnce() -> R + Send,
    ) -> R {
        match self.pools.get(worker) {
            Some(pool) if active > 1 => pool.install(f),
            _ => f(),
        }
    }
}

/// Each worker's share of `cores`: at least one thread.
pub fn threads_each(workers: usize, cores: usize) -> usize {
    (cores / workers.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_are_shared_out_with_at_least_one_thread_each() {
        assert_eq!(threads_each(2, 2), 1);
        assert_eq!(threads_each(2, 16), 8);
        assert_eq!(threads_each(3, 16), 5);
        assert_eq!(threads_each(4, 2), 1);
        assert_eq!(threads_each(0, 4), 4);
    }

    #[test]
    fn each_worker_runs_on_its_own_pool() {
        let pools = WorkerPools::new(2);
        let threads = pools.threads_each().expect("two workers get pools");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(threads, threads_each(2, cores));
        for w in 0..2 {
            let (name, n) = pools.install(w, 2, || {
                (
                    std::thread::current().name().map(str::to_owned),
                    rayon::current_num_threads(),
                )
            });
            assert_eq!(n, threads);
            let name = name.expect("pool threads are named");
            assert!(name.starts_with(&format!("lrscape-w{w}-")), "{name}");
        }
    }

    #[test]
    fn one_worker_keeps_the_global_pool() {
        let pools = WorkerPools::new(1);
        assert_eq!(pools.threads_each(), None);
        let caller = std::thread::current().id();
        assert_eq!(pools.install(0, 1, || std::thread::current().id()), caller);
    }

    #[test]
    fn a_worker_training_alone_keeps_the_global_pool() {
        let pools = WorkerPools::new(2);
        let caller = std::thread::current().id();
        assert_eq!(pools.install(1, 1, || std::thread::current().id()), caller);
        assert_ne!(pools.install(1, 2, || std::thread::current().id()), caller);
    }
}
