//! `cargo xtask bench` (issue 7): the scenarios (scenarios.rs), the baselines they are held
//! against (baseline.rs), and the helpers: repeated timings with median/min/max, snapshots of
//! a directory to tell which files a step wrote, and the report's shapes.
pub mod baseline;
pub mod scenarios;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

/// One figure: the median of `runs` timed runs (after one untimed warm-up), with min and max.
#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub runs: usize,
}

impl Stat {
    pub fn show(&self) -> String {
        format!(
            "{:>8.3} s  [{:.3} .. {:.3}]",
            self.median_s, self.min_s, self.max_s
        )
    }
}

/// Time `run` `runs` times after one warm-up; `setup` runs untimed before each (and before the
/// warm-up), to put the state back (an empty store, a snapshot).
pub fn measure(
    runs: usize,
    mut setup: impl FnMut() -> anyhow::Result<()>,
    mut run: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Stat> {
    setup()?;
    run().context("warm-up run")?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        setup()?;
        let t = Instant::now();
        run()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(Stat::of(times))
}

impl Stat {
    /// Median, min and max of some timings (at least one).
    pub fn of(mut times: Vec<f64>) -> Stat {
        times.sort_by(f64::total_cmp);
        let n = times.len();
        let median = if n % 2 == 1 {
            times[n / 2]
        } else {
            (times[n / 2 - 1] + times[n / 2]) / 2.0
        };
        Stat {
            median_s: median,
            min_s: times[0],
            max_s: times[n - 1],
            runs: n,
        }
    }
}

/// Time `a` and `b` alternately, `runs` times each after one warm-up of each: on a shared
/// machine whose load drifts, both figures see the same conditions.
pub fn measure_pair(
    runs: usize,
    mut a: impl FnMut() -> anyhow::Result<()>,
    mut b: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(Stat, Stat)> {
    a().context("warm-up run")?;
    b().context("warm-up run")?;
    let (mut ta, mut tb) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        let t = Instant::now();
        a()?;
        ta.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        b()?;
        tb.push(t.elapsed().as_secs_f64());
    }
    Ok((Stat::of(ta), Stat::of(tb)))
}

/// A ratio of medians, and the goal it is held against (`ratio <= goal` is met).
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub ratio: f64,
    pub goal: Option<f64>,
    pub met: Option<bool>,
}

impl Ratio {
    pub fn of(ours: &Stat, theirs: &Stat, goal: Option<f64>) -> Ratio {
        let ratio = ours.median_s / theirs.median_s;
        Ratio {
            ratio,
            goal,
            met: goal.map(|g| ratio <= g),
        }
    }

    pub fn show(&self) -> String {
        match (self.goal, self.met) {
            (Some(g), Some(met)) => format!(
                "{:.2} (goal <= {g}: {})",
                self.ratio,
                if met { "met" } else { "NOT met" }
            ),
            _ => format!("{:.2}", self.ratio),
        }
    }
}

/// Every file under `dir` (relative path -> inode, size, mtime in ns): what a step wrote is
/// what differs between two snapshots (a rename gives a new inode even with the same mtime).
pub type Snapshot = BTreeMap<PathBuf, (u64, u64, i128)>;

pub fn snapshot(dir: &Path) -> anyhow::Result<Snapshot> {
    let mut out = Snapshot::new();
    if dir.exists() {
        walk(dir, dir, &mut out)?;
    }
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Snapshot) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let m = std::fs::symlink_metadata(&path)?;
        if m.is_dir() {
            walk(root, &path, out)?;
        } else {
            let mtime = m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128;
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            out.insert(rel, (m.ino(), m.len(), mtime));
        }
    }
    Ok(())
}

/// Paths added, changed or removed between two snapshots.
pub fn written(before: &Snapshot, after: &Snapshot) -> Vec<PathBuf> {
    let mut w: Vec<PathBuf> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v))
        .map(|(p, _)| p.clone())
        .collect();
    w.extend(before.keys().filter(|p| !after.contains_key(*p)).cloned());
    w.sort();
    w
}

/// Copy a directory tree (the images dir) to `dest`, replacing it, as `cp -a` would: mtimes
/// kept, files hard-linked to each other inside `from` linked the same way in the copy, and
/// symlinks copied as links. The step under test then sees the state the last step left.
pub fn copy_dir(from: &Path, dest: &Path) -> anyhow::Result<()> {
    remove_dir(dest)?;
    let mut linked = BTreeMap::new();
    copy_tree(from, dest, &mut linked)
}

fn copy_tree(
    from: &Path,
    dest: &Path,
    linked: &mut BTreeMap<(u64, u64), PathBuf>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), dest.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&src)?;
        if meta.is_dir() {
            copy_tree(&src, &dst, linked)?;
        } else if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if let Some(first) = linked.get(&(meta.dev(), meta.ino())) {
            std::fs::hard_link(first, &dst)?;
        } else {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
            let f = std::fs::File::options().write(true).open(&dst)?;
            f.set_modified(meta.modified()?)?;
            if meta.nlink() > 1 {
                linked.insert((meta.dev(), meta.ino()), dst);
            }
        }
    }
    Ok(())
}

pub fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The machine the figures come from (they mean little without it).
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub mem_gib: f64,
    pub load_avg_1m: Option<f64>,
}

impl Machine {
    pub fn probe() -> Machine {
        let mem_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        let load = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()));
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_gib: mem_kib / (1024.0 * 1024.0),
            load_avg_1m: load,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max_and_setup_before_each_run() {
        let mut setups = 0;
        let mut n = 0u64;
        let s = measure(
            5,
            || {
                setups += 1;
                Ok(())
            },
            || {
                n += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!((setups, n, s.runs), (6, 6, 5));
        assert!(s.min_s <= s.median_s && s.median_s <= s.max_s);
    }

    #[test]
    fn snapshots_see_rewrites_even_with_equal_content() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), b"1").unwrap();
        std::fs::write(d.path().join("b"), b"1").unwrap();
        let before = snapshot(d.path()).unwrap();
        crate::atomic::write(&d.path().join("a"), b"1").unwrap();
        let after = snapshot(d.path()).unwrap();
        assert_eq!(written(&before, &after), [PathBuf::from("a")]);
    }
}
