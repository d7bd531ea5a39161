//! `lrscape bench`: the FLOP model against hand counts, the BENCH.md table
//! from fixed measurements, and smoke runs on the quick model (no timing
//! assertions: only that throughput comes out positive and finite).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use backends::select_device;
use bench::{
    BenchOptions, BenchReport, Case, CaseResult, GEMM_MAX_SIZE, GEMM_MIN_SECONDS, GEMM_SIZE,
    GemmResult, Machine, Memory, Settings, TorchDevice, TorchResult, TorchTiming, Workload,
    matmul_flops, matmul_step_flops, render_markdown, rows, run_bench, run_torch, step_flops,
};
use nn::ModuleId;
use peft::Compute;
use sweep::ExperimentConfig;
use tinyformer::adaptable::{MODULES, V};
use tinyformer::{PosInit, TinyformerConfig};
use train::SelectedDevice;

const EXE: &str = env!("CARGO_BIN_EXE_lrscape");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn quick() -> ExperimentConfig<TinyformerConfig> {
    ExperimentConfig::<TinyformerConfig>::from_toml_file(&repo().join("configs/quick.toml"))
        .unwrap()
}

fn all() -> BTreeSet<ModuleId> {
    MODULES.into_iter().collect()
}

#[test]
fn one_linear_is_two_m_k_n_per_pass() {
    let (m, k, n) = (64 * 32, 128, 256);
    assert_eq!(matmul_flops(m, k, n), (2 * m * k * n) as f64);
    // Forward only; + input gradient; + weight gradient (the ×3 rule).
    assert_eq!(
        matmul_step_flops(m, k, n, false, false),
        (2 * m * k * n) as f64
    );
    assert_eq!(
        matmul_step_flops(m, k, n, true, false),
        (4 * m * k * n) as f64
    );
    assert_eq!(
        matmul_step_flops(m, k, n, true, true),
        (6 * m * k * n) as f64
    );
}

/// vocab 4, seq 2, d 4, one layer of one head, d_ff 8, batch 1 (N = 2 tokens).
fn tiny() -> TinyformerConfig {
    TinyformerConfig {
        vocab: 4,
        seq_len: 2,
        d_model: 4,
        n_layers: 1,
        n_heads: 1,
        d_ff: 8,
        pos_init: PosInit::Zeros,
        causal: false,
    }
}

#[test]
fn full_fine_tuning_is_forward_times_three() {
    // The one block is the last: q, o and the MLP see the last position
    // only (1 row), k and v both positions (2 rows). Forward by hand: q and
    // o 2·1·4·4 = 32 each, k and v 2·2·4·4 = 64 each; up and down
    // 2·1·4·8 = 64 each; attention q kᵀ and p v 2·1·2·4 = 16 each; head on
    // the last position 2·1·4·4 = 32. Everything trained: ×3.
    let f = step_flops(&tiny(), 1, Workload::Full, &all(), true);
    assert_eq!(f.linears, 3.0 * (2.0 * 32.0 + 2.0 * 64.0 + 2.0 * 64.0));
    assert_eq!(f.attention, 3.0 * 32.0);
    assert_eq!(f.head, 3.0 * 32.0);
    assert_eq!(f.adapters, 0.0);
    assert_eq!(f.total(), 1152.0);
    // A block before the last runs on every position: q, k, v, o 64 each,
    // up and down 2·2·4·8 = 128 each, attention 32 each.
    let two = TinyformerConfig {
        n_layers: 2,
        ..tiny()
    };
    let f = step_flops(&two, 1, Workload::Full, &all(), true);
    assert_eq!(f.linears, 3.0 * (4.0 * 64.0 + 2.0 * 128.0) + 3.0 * 320.0);
    assert_eq!(f.attention, 3.0 * 64.0 + 3.0 * 32.0);
    assert_eq!(f.total(), 2880.0);
}

#[test]
fn a_causal_model_runs_every_row_and_the_head_on_every_position() {
    // Causal, one block: every linear over both positions (2 rows): q, k, v,
    // o 2·2·4·4 = 64 each, up and down 2·2·4·8 = 128 each; attention
    // 2·2·4·2 = 32 each; the head on both positions 2·2·4·4 = 64. ×3.
    let causal = TinyformerConfig {
        causal: true,
        ..tiny()
    };
    let f = step_flops(&causal, 1, Workload::Full, &all(), true);
    assert_eq!(f.linears, 3.0 * (4.0 * 64.0 + 2.0 * 128.0));
    assert_eq!(f.attention, 3.0 * 64.0);
    assert_eq!(f.head, 3.0 * 64.0);
    assert_eq!(f.total(), 1920.0);
}

#[test]
fn lora_counts_only_the_gradients_it_needs() {
    let act = Workload::Lora {
        rank: 1,
        compute: Compute::ActivationSpace,
    };
    let f = step_flops(&tiny(), 1, act, &all(), true);
    // Base products (rows as in the full fine-tuning test): q, k, v read
    // the frozen embedding (forward only: 32, 64, 64); o, up, down have a
    // tracked input (×2).
    assert_eq!(
        f.linears,
        32.0 + 2.0 * 64.0 + 2.0 * 32.0 + 2.0 * 64.0 + 2.0 * 64.0
    );
    // x A and (x A) B, ×3, but x A of q, k, v has no input gradient (×2).
    // q (1 row): x A 2·1·4·1 = 8, (x A) B 8; k, v (2 rows): 16 and 16;
    // o: 8 and 8; up: 8 and 2·1·1·8 = 16; down: 2·1·8·1 = 16 and 8.
    let q = 2.0 * 8.0 + 3.0 * 8.0;
    let kv = 2.0 * (2.0 * 16.0 + 3.0 * 16.0);
    let o = 3.0 * 8.0 + 3.0 * 8.0;
    let up = 3.0 * 8.0 + 3.0 * 16.0;
    let down = 3.0 * 16.0 + 3.0 * 8.0;
    assert_eq!(f.adapters, q + kv + o + up + down);
    assert_eq!(f.attention, 3.0 * 32.0);
    assert_eq!(f.head, 3.0 * 32.0);
    assert_eq!(f.total(), 1064.0);
    // Weight space: A B is 2·4·1·4 = 32 (64 for the MLP), ×3; the merged
    // weight is tracked, so every product gets its weight gradient.
    let weight = Workload::Lora {
        rank: 1,
        compute: Compute::WeightSpace,
    };
    let w = step_flops(&tiny(), 1, weight, &all(), true);
    assert_eq!(w.adapters, 3.0 * (4.0 * 32.0 + 2.0 * 64.0));
    assert_eq!(
        w.linears,
        2.0 * 32.0 + 2.0 * 2.0 * 64.0 + 3.0 * 32.0 + 2.0 * 3.0 * 64.0
    );
    // Head frozen and no adapters on q: q's base stays forward-only and the
    // head loses its weight gradient.
    let only_v: BTreeSet<ModuleId> = [V].into_iter().collect();
    let f = step_flops(&tiny(), 1, act, &only_v, false);
    assert_eq!(f.head, 2.0 * 32.0);
}

fn case(workload: Workload, population: usize, distinct_data: bool) -> Case {
    Case {
        workload,
        population,
        distinct_data,
        workers: 1,
    }
}

#[test]
fn populations_at_once_count_every_worker_s_member_steps() {
    let act = Workload::Lora {
        rank: 16,
        compute: Compute::ActivationSpace,
    };
    let at_once = Case {
        workers: 2,
        ..case(act, 16, false)
    };
    assert_eq!(
        at_once.label(),
        "LoRA r16 activation-space ×16, 2 populations at once"
    );
    assert_eq!(at_once.reference(), case(act, 1, false));
    // 3 steps of 2 populations of 16 in 1.2 s: 96 member-steps.
    let r = result(at_once, 3, 1.2, 1e9, Some(64));
    assert_eq!(r.member_steps(), 96);
    assert!((r.ms_per_member_step() - 12.5).abs() < 1e-9);
    assert_eq!(r.peak_mib_per_member(), Some(2.0));
}

fn result(case: Case, steps: usize, seconds: f64, flops: f64, mib: Option<u64>) -> CaseResult {
    CaseResult {
        label: case.label(),
        case,
        steps,
        seconds,
        flops_per_member_step: flops,
        trainable_per_member: 1000,
        memory: mib.map(|m| Memory {
            idle_kib: 100 * 1024,
            peak_kib: 100 * 1024 + m * 1024,
            isolated: true,
        }),
        losses_finite: true,
    }
}

fn fixed_report() -> BenchReport {
    let lora = Workload::Lora {
        rank: 16,
        compute: Compute::ActivationSpace,
    };
    BenchReport {
        machine: Machine {
            nproc: 2,
            cpu_model: "Test CPU 9000".into(),
            gpu: None,
            backend: "flex".into(),
            device: "Flex".into(),
            git_revision: "abc123".into(),
            date_utc: "2026-01-02 03:04 UTC".into(),
            load_before: Some([1.0, 2.0, 3.0]),
            load_after: None,
        },
        settings: Settings {
            config_name: "seed-notebook".into(),
            model: TinyformerConfig::default(),
            batch_size: 64,
            rank: 16,
            steps: 4,
            warmup: 2,
            populations: vec![1, 4],
        },
        // 2·1024³ FLOPs in 0.02 s (best of three): 107.37 GFLOP/s.
        gemm: GemmResult {
            n: 1024,
            seconds: vec![0.03, 0.02, 0.025],
        },
        cases: vec![
            // 4 member-steps in 0.4 s: 100 ms, 10/s, 1 GFLOP each -> 10 GFLOP/s.
            result(case(lora, 1, false), 4, 0.4, 1e9, Some(64)),
            // 16 member-steps in 0.8 s: 50 ms, 20/s (2× pop 1), 20 GFLOP/s.
            result(case(lora, 4, false), 4, 0.8, 1e9, Some(256)),
            // 4 member-steps in 1.0 s: 250 ms, 4/s; 2 GFLOP each -> 8 GFLOP/s.
            result(case(Workload::Full, 1, false), 4, 1.0, 2e9, None),
        ],
        torch: TorchResult {
            status: "ok".into(),
            version: Some("2.99".into()),
            timings: vec![
                TorchTiming {
                    mode: "lora".into(),
                    device: "cpu".into(),
                    threads: 2,
                    steps: 4,
                    ms_per_step: 80.0,
                },
                TorchTiming {
                    mode: "lora".into(),
                    device: "cpu".into(),
                    threads: 1,
                    steps: 4,
                    ms_per_step: 40.0,
                },
                TorchTiming {
                    mode: "full".into(),
                    device: "cpu".into(),
                    threads: 2,
                    steps: 4,
                    ms_per_step: 125.0,
                },
            ],
        },
        seconds: 12.0,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn the_table_recomputes_its_ratios() {
    let report = fixed_report();
    let peak = 2.0 * 1024f64.powi(3) / 0.02 / 1e9;
    assert!(close(report.gemm.gflops(), peak));
    let rows = rows(&report);
    assert_eq!(rows.len(), 3 + 3);
    let (p1, p4, full) = (&rows[0], &rows[1], &rows[2]);
    assert!(close(p1.ms_per_member_step, 100.0) && close(p1.member_steps_per_s, 10.0));
    assert!(close(p4.ms_per_member_step, 50.0) && close(p4.member_steps_per_s, 20.0));
    assert_eq!(p1.speedup_vs_population_1, Some(1.0));
    assert!(close(p4.speedup_vs_population_1.unwrap(), 2.0));
    assert!(close(full.speedup_vs_population_1.unwrap(), 1.0));
    assert!(close(p1.gflops, 10.0) && close(p4.gflops, 20.0) && close(full.gflops, 8.0));
    assert!(close(p4.percent_of_gemm_peak, 100.0 * 20.0 / peak));
    // Memory: (peak − idle) / population.
    assert!(close(p1.peak_mib_per_member.unwrap(), 64.0));
    assert!(close(p4.peak_mib_per_member.unwrap(), 64.0));
    assert_eq!(full.peak_mib_per_member, None);
    // Against PyTorch's faster thread count (LoRA: 40 ms at 1 thread).
    assert!(close(p1.lrscape_over_pytorch.unwrap(), 100.0 / 40.0));
    assert!(close(p4.lrscape_over_pytorch.unwrap(), 50.0 / 40.0));
    assert!(close(full.lrscape_over_pytorch.unwrap(), 250.0 / 125.0));
    // PyTorch rows carry the same FLOP model as lrscape's population 1.
    let torch_lora_1 = &rows[4];
    assert_eq!(
        torch_lora_1.configuration,
        "PyTorch eager LoRA r16 activation-space ×1, 1 thread"
    );
    assert!(close(torch_lora_1.gflops, 25.0));

    let md = render_markdown(&report);
    for needle in [
        "| CPU | Test CPU 9000 |",
        "| cores (`nproc`) | 2 |",
        "| backend / device | flex / `Flex` |",
        "`abc123`",
        "2026-01-02 03:04 UTC",
        "1.00 2.00 3.00 / unknown",
        "best of 3: 20.0 ms = **107.4 GFLOP/s**",
        "torch 2.99, eager",
        "| LoRA r16 activation-space ×1 | 100.0 | 10.00 | 1.00× | 10.00 | 9.3% | 64.0 | 2.50× |",
        "| LoRA r16 activation-space ×4 | 50.0 | 20.00 | 2.00× | 20.00 | 18.6% | 64.0 | 1.25× |",
        "| full fine-tuning ×1 | 250.0 | 4.00 | 1.00× | 8.00 | 7.5% | – | 2.00× |",
        "| PyTorch eager full fine-tuning ×1, 2 threads | 125.0 | 8.00 | – | 16.00 | 14.9% | – | – |",
    ] {
        assert!(md.contains(needle), "BENCH.md lacks {needle:?}:\n{md}");
    }
}

/// The fixed report plus a weight-space LoRA case at `population` (4 steps
/// in 0.48 s, `flops` per member-step) and PyTorch's weight-space step at
/// `torch_ms` (2 threads).
fn with_weight_space(population: usize, flops: f64, torch_ms: f64) -> BenchReport {
    let mut report = fixed_report();
    let weight_space = Workload::Lora {
        rank: 16,
        compute: Compute::WeightSpace,
    };
    report.cases.push(result(
        case(weight_space, population, false),
        4,
        0.48,
        flops,
        None,
    ));
    report.torch.timings.push(TorchTiming {
        mode: "lora_weight_space".into(),
        device: "cpu".into(),
        threads: 2,
        steps: 4,
        ms_per_step: torch_ms,
    });
    report
}

#[test]
fn weight_space_is_compared_with_pytorch_in_weight_space() {
    // 4 member-steps in 0.48 s: 120 ms.
    let rows = rows(&with_weight_space(1, 1e9, 30.0));
    let ws = rows
        .iter()
        .find(|r| r.configuration == "LoRA r16 weight-space ×1")
        .expect("a weight-space row");
    // Against PyTorch's weight-space 30 ms, not its activation-space 40 ms.
    assert!(close(ws.lrscape_over_pytorch.unwrap(), 120.0 / 30.0));
    assert!(close(rows[0].lrscape_over_pytorch.unwrap(), 100.0 / 40.0));
    let torch_ws = rows.last().unwrap();
    assert_eq!(
        torch_ws.configuration,
        "PyTorch eager LoRA r16 weight-space ×1, 2 threads"
    );
    // Its GFLOP/s use the weight-space FLOP model (1 GFLOP per member-step).
    assert!(close(torch_ws.gflops, 1000.0 / 30.0));
}

/// PyTorch's rows take the FLOPs of a member-step from a case of the same
/// workload at any population (the count is per member).
#[test]
fn pytorch_rows_count_flops_without_a_population_1_case() {
    let torch_ws = rows(&with_weight_space(16, 2e9, 40.0)).pop().unwrap();
    assert_eq!(
        torch_ws.configuration,
        "PyTorch eager LoRA r16 weight-space ×1, 2 threads"
    );
    assert!(close(torch_ws.gflops, 2.0 * 1000.0 / 40.0), "{torch_ws:?}");
}

#[test]
fn a_gpu_run_names_the_gpu_and_compares_with_pytorch_on_it() {
    let mut report = fixed_report();
    report.machine.gpu = Some("NVIDIA H200, 143771 MiB".into());
    report.machine.backend = "cuda".into();
    report.torch.timings = vec![TorchTiming {
        mode: "lora".into(),
        device: "cuda".into(),
        threads: 2,
        steps: 4,
        ms_per_step: 10.0,
    }];
    let rows = rows(&report);
    assert_eq!(
        rows.last().unwrap().configuration,
        "PyTorch eager LoRA r16 activation-space ×1, cuda"
    );
    // LoRA ×4: 50 ms per member-step against PyTorch's 10.
    assert!(close(rows[1].lrscape_over_pytorch.unwrap(), 5.0));
    let md = render_markdown(&report);
    assert!(
        md.contains("each configuration in a process of its own"),
        "{md}"
    );
    for needle in [
        "| GPU | NVIDIA H200, 143771 MiB |",
        "`tools/bench/torch_step.py`, on cuda |",
    ] {
        assert!(md.contains(needle), "BENCH.md lacks {needle:?}:\n{md}");
    }
    // PyTorch runs where lrscape does unless told otherwise.
    for (spec, backend, expected) in [
        ("cuda", "cuda", TorchDevice::Cuda),
        ("cuda:1", "cuda", TorchDevice::Cuda),
        ("tch:0", "tch", TorchDevice::Cuda),
        ("tch:cpu", "tch", TorchDevice::Cpu),
        ("tch", "tch", TorchDevice::Cpu),
        ("flex", "flex", TorchDevice::Cpu),
        ("wgpu", "wgpu", TorchDevice::Cpu),
    ] {
        let selected = SelectedDevice {
            name: spec.to_string(),
            backend,
            device: select_device("flex").unwrap().device,
        };
        assert_eq!(TorchDevice::for_device(&selected), expected, "{spec}");
    }
}

#[test]
fn smoke_in_process_on_the_quick_model() {
    let opts = BenchOptions {
        config: quick(),
        device: "flex".into(),
        steps: 1,
        warmup: 0,
        populations: vec![1, 2],
        rank: 2,
        workers: 2,
        child_exe: None,
        torch_script: None,
        torch_threads: vec![1],
        torch_device: TorchDevice::Cpu,
        gemm_reps: 1,
    };
    let mut lines = Vec::new();
    let selected = select_device(&opts.device).unwrap();
    let report = run_bench(&opts, &selected, &mut |l| lines.push(l.to_string())).unwrap();
    // LoRA (weight space) ×1, ×2, ×2 own batches, ×2 two at once;
    // activation space ×2, ×2 two at once; full fine-tuning.
    assert_eq!(report.cases.len(), 7, "{lines:?}");
    for c in &report.cases {
        assert_eq!(c.steps, 1, "{}", c.label);
        let t = c.member_steps_per_s();
        assert!(t.is_finite() && t > 0.0, "{}: {t}", c.label);
        assert!(c.gflops().is_finite() && c.gflops() > 0.0, "{}", c.label);
        assert!(c.losses_finite, "{}", c.label);
    }
    assert!(report.gemm.gflops().is_finite() && report.gemm.gflops() > 0.0);
    // The GEMM grows from 1024 only while a product is over too soon.
    let n = report.gemm.n;
    assert!(
        (GEMM_SIZE..=GEMM_MAX_SIZE).contains(&n) && (n / GEMM_SIZE).is_power_of_two(),
        "{n}"
    );
    assert!(
        report.gemm.best_seconds() >= GEMM_MIN_SECONDS || n == GEMM_MAX_SIZE,
        "{:?}",
        report.gemm
    );
    assert_eq!(report.torch.status, "not run (--no-torch)");
    let md = render_markdown(&report);
    assert!(md.contains("all in one process (`--in-process`)"), "{md}");
    assert!(md.contains("LoRA r2 weight-space ×2"), "{md}");
    assert!(
        md.contains("LoRA r2 activation-space ×2, 2 populations at once"),
        "{md}"
    );
}

#[test]
fn smoke_binary_with_child_processes() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(EXE)
        .args(["bench", "--config"])
        .arg(repo().join("configs/quick.toml"))
        .args([
            "--steps",
            "1",
            "--warmup",
            "1",
            "--populations",
            "1,2",
            "--rank",
            "2",
            "--workers",
            "1",
            "--no-torch",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let md = std::fs::read_to_string(out.path().join("BENCH.md")).unwrap();
    assert!(md.contains("| full fine-tuning ×1 |"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("bench.json")).unwrap())
            .unwrap();
    // Weight space ×1, ×2, ×2 own batches; activation space ×2; full.
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for row in rows {
        let t = row["member_steps_per_s"].as_f64().unwrap();
        assert!(t.is_finite() && t > 0.0, "{row}");
    }
    // Each configuration ran in its own process: memory was measured there.
    if cfg!(target_os = "linux") {
        for case in json["cases"].as_array().unwrap() {
            assert_eq!(case["memory"]["isolated"], true, "{case}");
        }
    }
}

#[test]
fn bad_flags_name_the_flag_and_what_is_allowed() {
    let run = |args: &[&str]| {
        let out = Command::new(EXE).arg("bench").args(args).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(&["--populations", "1,0", "--no-torch"]);
    assert!(
        err.contains("--populations 0: population sizes from 1 to 4096"),
        "{err}"
    );
    let err = run(&["--steps", "0"]);
    assert!(err.contains("--steps 0: at least 1"), "{err}");
    let err = run(&["--rank", "500"]);
    assert!(
        err.contains("--rank 500") && err.contains("at most"),
        "{err}"
    );
    let err = run(&["--device", "tpu"]);
    assert!(err.contains("--device \"tpu\""), "{err}");
    let err = run(&["--workers", "0", "--no-torch"]);
    assert!(err.contains("--workers 0: from 1 to 64"), "{err}");
    let err = run(&["--torch-device", "tpu"]);
    assert!(
        err.contains("'tpu'") && err.contains("--torch-device") && err.contains("cpu, cuda"),
        "{err}"
    );
}

/// Needs `python3` with torch: `cargo xtask ci` runs it where torch
/// imports and says so where it does not (a test that returned early
/// without torch would pass without testing anything).
#[test]
#[ignore = "needs python3 with torch; cargo xtask ci runs it where torch imports"]
fn pytorch_reference_runs_when_torch_is_there() {
    let config = quick();
    let settings = Settings {
        config_name: config.name.clone(),
        model: config.model.clone(),
        batch_size: 8,
        rank: 2,
        steps: 1,
        warmup: 0,
        populations: vec![1],
    };
    let torch = run_torch(
        &repo().join("tools/bench/torch_step.py"),
        &settings,
        &[1],
        TorchDevice::Cpu,
    );
    assert_eq!(torch.status, "ok", "{torch:?}");
    let modes: Vec<&str> = torch.timings.iter().map(|t| t.mode.as_str()).collect();
    assert_eq!(modes, ["lora", "lora_weight_space", "full"]);
    assert!(torch.timings.iter().all(|t| t.threads == 1
        && t.device == "cpu"
        && t.ms_per_step.is_finite()
        && t.ms_per_step > 0.0));
}
