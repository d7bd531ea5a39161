//! How training threads run on a CPU: one rayon pool per training thread
//! ([`WorkerPools`]), and subnormal floats flushed to zero
//! ([`flush_subnormals`]).
//!
//! Burn's CPU backends run their parallel kernels on rayon's global pool.
//! When `lrscape run` trains one population per core, every product and
//! element-wise kernel of each population would still be split over all
//! cores, and each training thread waits at every kernel's join for threads
//! busy with the other population. A pool per training thread, of its share
//! of the cores (one thread each for two populations on two cores), keeps
//! each population on its own cores with nothing to wait for (measured in
//! docs/benchmarks/history.md). The kernels compute the same numbers
//! on any number of threads (products split rows, not sums), so results do
//! not change.

use rayon::{ThreadPool, ThreadPoolBuilder};

/// Sets this thread's SSE control register to flush subnormal results to
/// zero and to read subnormal inputs as zero (FTZ and DAZ; x86-64 only,
/// elsewhere nothing). Threads created afterwards inherit it, so `lrscape`
/// calls it first thing in `main`, and the worker pools' threads set it
/// again.
///
/// x86 handles subnormal floats (|x| < 1.18e-38) in microcode, far slower
/// than normal ones, and the small-LR members of SVD-initialised cells
/// drift into that range (docs/benchmarks/history.md). Values that small
/// cannot change a training result; GPUs flush them in their fast paths
/// too.
pub fn flush_subnormals() {
    #[cfg(target_arch = "x86_64")]
    {
        const FTZ: u32 = 1 << 15;
        const DAZ: u32 = 1 << 6;
        let mut csr: u32 = 0;
        // SAFETY: `stmxcsr` stores the 32-bit MXCSR into `csr`; `ldmxcsr`
        // loads it back with the FTZ and DAZ bits set, both defined on every
        // x86-64 CPU; neither touches other memory or the stack.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
            csr |= FTZ | DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly, preserves_flags));
        }
    }
}

/// The pools of `workers` training threads; empty (every thread on the
/// global pool) for one worker, which then has every core.
pub struct WorkerPools {
    pools: Vec<ThreadPool>,
    warning: Option<String>,
}

impl WorkerPools {
    /// `workers` pools of `threads_each(workers, cores)` threads each. If the
    /// system refuses a thread, the workers share the global pool (slower,
    /// same results) and [`WorkerPools::warning`] says so.
    pub fn new(workers: usize) -> Self {
        if workers <= 1 {
            return Self {
                pools: Vec::new(),
                warning: None,
            };
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = threads_each(workers, cores);
        let pools: Result<Vec<ThreadPool>, _> = (0..workers)
            .map(|w| {
                ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(move |i| format!("lrscape-w{w}-{i}"))
                    .start_handler(|_| flush_subnormals())
                    .build()
            })
            .collect();
        match pools {
            Ok(pools) => Self {
                pools,
                warning: None,
            },
            Err(e) => Self {
                pools: Vec::new(),
                warning: Some(format!(
                    "no thread pool per training thread ({e}); \
                     the {workers} populations share the global pool"
                )),
            },
        }
    }

    /// Why the workers share the global pool, when they do against the
    /// caller's wish.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
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

/// The message a panicked training thread left (`join`'s error), so the
/// error that replaces the panic says what went wrong.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
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

    /// Half the smallest normal f32, computed at run time: subnormal
    /// normally, zero once flushed.
    fn half_min_positive() -> f32 {
        std::hint::black_box(f32::MIN_POSITIVE) * std::hint::black_box(0.5)
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn subnormals_flush_to_zero_on_worker_threads() {
        // A fresh thread of the test harness: the default environment.
        std::thread::spawn(|| {
            assert!(half_min_positive() > 0.0, "subnormals kept by default");
            flush_subnormals();
            assert_eq!(half_min_positive(), 0.0);
            // Inherited by threads created afterwards.
            let child = std::thread::spawn(half_min_positive).join().unwrap();
            assert_eq!(child, 0.0);
        })
        .join()
        .unwrap();
        let pools = WorkerPools::new(2);
        assert_eq!(pools.install(0, 2, half_min_positive), 0.0);
    }

    #[test]
    fn a_panicked_thread_says_why() {
        let payload = std::thread::spawn(|| panic!("member {} diverged", 3))
            .join()
            .unwrap_err();
        assert_eq!(panic_message(payload.as_ref()), "member 3 diverged");
        let payload = std::thread::spawn(|| panic!("plain")).join().unwrap_err();
        assert_eq!(panic_message(payload.as_ref()), "plain");
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
