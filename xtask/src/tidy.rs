//! `cargo xtask tidy`: the crate graph keeps the arrows ARCHITECTURE.md
//! draws.
//!
//! The allowed workspace edges are read from ARCHITECTURE.md's `arrows`
//! block (one line per crate: `crate -> dep, dep`), so the document and the
//! check cannot drift apart; the rules on outside crates are below. Only
//! normal dependencies count: a test may reach for any crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Outside crates only some workspace crates may use.
const ONLY: [(&str, &[&str]); 4] = [
    // The command line and its progress bars live in the binary.
    ("clap", &["lrscape", "xtask"]),
    ("indicatif", &["lrscape"]),
    ("plotters", &["figs"]),
    // Backend crates are reached through `backends` alone.
    ("burn-flex", &["backends"]),
];

/// Crates that never reach Burn, not even through another workspace crate:
/// results can be read and re-plotted without the training stack.
const NO_BURN: [&str; 3] = ["records", "figs", "slurm"];

/// Model families, and the only crates that may reach one (even through
/// another crate): the binary maps `[model] family` to a family, and `bench`
/// times tinyformer against its PyTorch mirror. Everything else is generic
/// over `nn`'s traits, so a new family plugs in without touching it.
const FAMILIES: [&str; 4] = ["tinyformer", "gpt2", "llama", "bert"];
const FAMILY_USERS: [&str; 2] = ["lrscape", "bench"];

/// Libraries below the orchestration report errors with thiserror types.
const NO_ANYHOW: [&str; 7] = [
    "nn",
    "tinyformer",
    "peft",
    "train",
    "synth-data",
    "records",
    "figs",
];

/// Burn backend features: only `backends` turns them on.
const BACKEND_FEATURES: [&str; 7] = ["flex", "ndarray", "wgpu", "vulkan", "metal", "cuda", "tch"];

struct Package {
    /// Normal dependencies by name, with the features asked of each.
    deps: BTreeMap<String, Vec<String>>,
    /// The package's own features and what each turns on.
    features: BTreeMap<String, Vec<String>>,
}

fn workspace(root: &Path) -> anyhow::Result<BTreeMap<String, Package>> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata printed no JSON")?;
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut packages = BTreeMap::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default().to_string();
        let deps = p["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null())
            .map(|d| {
                (
                    d["name"].as_str().unwrap_or_default().to_string(),
                    strings(&d["features"]),
                )
            })
            .collect();
        let features = p["features"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), strings(v)))
            .collect();
        packages.insert(name, Package { deps, features });
    }
    Ok(packages)
}

/// The `arrows` block of ARCHITECTURE.md: crate -> its allowed workspace
/// dependencies.
fn arrows(architecture: &str) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let block = architecture
        .split("```arrows\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .context("ARCHITECTURE.md has no ```arrows block")?;
    let mut allowed = BTreeMap::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let (name, deps) = line
            .split_once("->")
            .with_context(|| format!("arrows line {line:?}: expected `crate -> dep, dep`"))?;
        let deps = deps
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty() && *d != "(none)")
            .map(String::from)
            .collect();
        allowed.insert(name.trim().to_string(), deps);
    }
    Ok(allowed)
}

/// Every way the workspace's crate graph breaks the rules.
fn violations(
    packages: &BTreeMap<String, Package>,
    allowed: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut found = Vec::new();
    let local = |d: &str| packages.contains_key(d);
    for (name, package) in packages {
        let Some(ok) = allowed.get(name) else {
            found.push(format!(
                "{name}: not in ARCHITECTURE.md's arrows; add its line"
            ));
            continue;
        };
        for dep in package.deps.keys().filter(|d| local(d)) {
            if !ok.contains(dep) {
                found.push(format!(
                    "{name} -> {dep}: not an arrow of ARCHITECTURE.md (allowed: {})",
                    ok.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        for (outside, users) in ONLY {
            if package.deps.contains_key(outside) && !users.contains(&name.as_str()) {
                found.push(format!(
                    "{name} -> {outside}: only {} may use {outside}",
                    users.join(", ")
                ));
            }
        }
        if NO_ANYHOW.contains(&name.as_str()) && package.deps.contains_key("anyhow") {
            found.push(format!(
                "{name} -> anyhow: a library below sweep uses thiserror"
            ));
        }
        if name != "backends" {
            // Features asked of `burn` directly, or turned on by one of the
            // package's own features (`burn/flex`).
            let asked = package
                .deps
                .iter()
                .filter(|(d, _)| *d == "burn")
                .flat_map(|(_, f)| f.iter().cloned());
            let forwarded = package
                .features
                .values()
                .flatten()
                .filter_map(|f| f.strip_prefix("burn/").map(String::from));
            let turned_on = asked
                .chain(forwarded)
                .filter(|f| BACKEND_FEATURES.contains(&f.as_str()));
            for feature in turned_on {
                found.push(format!(
                    "{name}: turns on Burn's backend {feature:?}; only `backends` does"
                ));
            }
        }
    }
    for (name, _) in packages
        .iter()
        .filter(|(n, _)| !FAMILY_USERS.contains(&n.as_str()) && !FAMILIES.contains(&n.as_str()))
    {
        for family in FAMILIES {
            if let Some(via) = reaches(packages, name, family) {
                found.push(format!(
                    "{name} reaches the model family {family} through {via}; only {} may",
                    FAMILY_USERS.join(", ")
                ));
            }
        }
    }
    for name in NO_BURN {
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(next) = todo.pop() {
            if !seen.insert(next.clone()) {
                continue;
            }
            let Some(package) = packages.get(&next) else {
                continue;
            };
            if package.deps.contains_key("burn") {
                found.push(format!(
                    "{name} reaches Burn through {next}; results must be readable without it"
                ));
            }
            todo.extend(package.deps.keys().filter(|d| local(d)).cloned());
        }
    }
    found
}

/// The workspace crate through which `from` depends on `target` (directly
/// or not), if it does.
fn reaches(packages: &BTreeMap<String, Package>, from: &str, target: &str) -> Option<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(next) = todo.pop() {
        if !seen.insert(next.clone()) {
            continue;
        }
        let package = packages.get(&next)?;
        if package.deps.contains_key(target) {
            return Some(next);
        }
        todo.extend(
            package
                .deps
                .keys()
                .filter(|d| packages.contains_key(*d))
                .cloned(),
        );
    }
    None
}

/// Fails, naming every broken rule, when the crate graph leaves the arrows.
pub fn tidy() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let packages = workspace(&root)?;
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md"))
        .context("cannot read ARCHITECTURE.md")?;
    let found = violations(&packages, &arrows(&architecture)?);
    if found.is_empty() {
        eprintln!("tidy: {} crates keep their arrows", packages.len());
        return Ok(());
    }
    for v in &found {
        eprintln!("tidy: {v}");
    }
    bail!("{} crate-graph rule(s) broken (above)", found.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(deps: &[(&str, &[&str])]) -> Package {
        Package {
            deps: deps
                .iter()
                .map(|(d, f)| (d.to_string(), f.iter().map(|s| s.to_string()).collect()))
                .collect(),
            features: BTreeMap::new(),
        }
    }

    #[test]
    fn each_kind_of_broken_rule_is_named() {
        let allowed =
            arrows("x\n```arrows\nrecords -> (none)\nsweep -> records\npeft -> records\n```\n")
                .unwrap();
        let mut packages = BTreeMap::new();
        packages.insert("records".to_string(), package(&[("serde", &[])]));
        packages.insert(
            "sweep".to_string(),
            package(&[("records", &[]), ("clap", &[])]),
        );
        packages.insert(
            "peft".to_string(),
            package(&[("sweep", &[]), ("burn", &["flex"]), ("anyhow", &[])]),
        );
        let found = violations(&packages, &allowed);
        assert!(
            found
                .iter()
                .any(|v| v == "sweep -> clap: only lrscape, xtask may use clap")
        );
        assert!(
            found
                .iter()
                .any(|v| v.starts_with("peft -> sweep: not an arrow"))
        );
        assert!(
            found
                .iter()
                .any(|v| v.contains("peft: turns on Burn's backend \"flex\""))
        );
        assert!(found.iter().any(|v| v.starts_with("peft -> anyhow")));
        assert_eq!(found.len(), 4, "{found:?}");
        packages.insert("figs".to_string(), package(&[("peft", &[])]));
        let found = violations(&packages, &allowed);
        assert!(
            found
                .iter()
                .any(|v| v.starts_with("figs: not in ARCHITECTURE.md"))
        );
        assert!(found.iter().any(|v| v == "figs reaches Burn through peft; results must be readable without it"));
    }

    #[test]
    fn only_the_binary_and_bench_reach_a_model_family() {
        let allowed = arrows(
            "```arrows\ntinyformer -> (none)\ntrain -> (none)\nsweep -> train\nlrscape -> sweep, tinyformer\n```",
        )
        .unwrap();
        let mut packages = BTreeMap::new();
        packages.insert("tinyformer".to_string(), package(&[]));
        packages.insert("train".to_string(), package(&[]));
        packages.insert("sweep".to_string(), package(&[("train", &[])]));
        packages.insert(
            "lrscape".to_string(),
            package(&[("sweep", &[]), ("tinyformer", &[])]),
        );
        assert_eq!(violations(&packages, &allowed), Vec::<String>::new());
        packages.insert("train".to_string(), package(&[("tinyformer", &[])]));
        let found = violations(&packages, &allowed);
        assert!(
            found.contains(
                &"sweep reaches the model family tinyformer through train; only lrscape, bench may"
                    .to_string()
            ),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|v| v.starts_with("train -> tinyformer: not an arrow"))
        );
    }

    #[test]
    fn the_workspace_keeps_its_arrows() {
        tidy().unwrap();
    }
}
