//! What the suites that run other programs share (`cli`, `stores`):
//! finding a program, running it as a timed child process with its peak
//! RSS polled, and a scratch directory removed at the end.
//!
//! A child's peak RSS is its `VmHWM`, polled from `/proc/<pid>/status`
//! while it runs (a high-water mark, so polling misses only growth in the
//! last poll interval before the child exits).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a child's `VmHWM` is read.
pub(crate) const POLL: Duration = Duration::from_millis(5);

/// A directory removed with everything in it when dropped.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// `$TMPDIR/weir-bench-<name>-<pid>`, created.
    pub(crate) fn new(name: &str) -> Result<TempDir, String> {
        let dir = std::env::temp_dir().join(format!("weir-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("weir-bench: cannot remove {}: {e}", self.0.display());
        }
    }
}

/// A finished child process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildRun {
    pub(crate) seconds: f64,
    /// The highest `VmHWM` seen; `None` if the child ended before a read.
    pub(crate) peak_rss_kb: Option<u64>,
}

/// What a successful child wrote to stderr (`weir run --quiet` writes its
/// final report there).
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub(crate) run: ChildRun,
    pub(crate) stderr: String,
}

/// `VmHWM` of a running process, in kB.
fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `cmd` (its stdout already set) to the end, timing it and polling
/// its peak RSS. A failure's error holds the child's stderr and stdout
/// verbatim.
pub(crate) fn run_child(what: &str, cmd: &mut Command) -> Result<Finished, String> {
    let start = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let pid = child.id();
    let done = AtomicBool::new(false);
    let (output, seconds, peak) = std::thread::scope(|s| {
        let poller = s.spawn(|| {
            let mut peak = None;
            while !done.load(Ordering::Relaxed) {
                if let Some(kb) = vm_hwm_kb(pid) {
                    peak = Some(peak.map_or(kb, |p: u64| p.max(kb)));
                }
                std::thread::sleep(POLL);
            }
            peak
        });
        let output = child.wait_with_output();
        let seconds = start.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        (output, seconds, poller.join().unwrap_or(None))
    });
    let output = output.map_err(|e| format!("cannot wait for {what}: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        return Err(format!(
            "{what} failed ({})\n--- its stderr ---\n{}--- its stdout ---\n{}--- end ---",
            output.status, stderr, stdout
        ));
    }
    Ok(Finished {
        run: ChildRun {
            seconds,
            peak_rss_kb: peak,
        },
        stderr: stderr.into_owned(),
    })
}

/// [`run_child`], showing what the child wrote to stderr the first time
/// only (`shown` remembers), prefixed with the suite's name.
pub(crate) fn run_shown(
    suite: &str,
    what: &str,
    cmd: &mut Command,
    shown: &mut bool,
) -> Result<ChildRun, String> {
    let Finished { run, stderr } = run_child(what, cmd)?;
    if !*shown && !stderr.trim().is_empty() {
        *shown = true;
        eprintln!(
            "{suite}: {what} wrote to stderr (shown once):\n{}",
            stderr.trim_end()
        );
    }
    Ok(run)
}

/// The first `name` on `PATH` that is a file.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// What `program --version` prints, or why it printed nothing.
pub(crate) fn version(program: &Path) -> String {
    match Command::new(program).arg("--version").output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Err(e) => format!("of unknown version ({e})"),
    }
}

/// The `weir` binary next to this executable (`target/release/weir` for
/// `target/release/weir-bench`). `None`, said on stderr, when it is
/// missing; an error instead when `CI=true`, where the binary is built
/// first and a missing one is a failure, not rows to skip.
pub(crate) fn weir_binary(suite: &str) -> Result<Option<PathBuf>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let weir = exe
        .parent()
        .map(|dir| dir.join(format!("weir{}", std::env::consts::EXE_SUFFIX)))
        .ok_or("this executable has no parent directory")?;
    if weir.is_file() {
        return Ok(Some(weir));
    }
    let e = format!(
        "{} not found: build it first with `cargo build --release -p weir-cli`",
        weir.display()
    );
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        return Err(format!("{e} (CI=true: the weir rows cannot be skipped)"));
    }
    eprintln!("{suite}: {e}; the weir rows are skipped");
    Ok(None)
}

/// `path` as a TOML basic string (a JSON string is one).
pub(crate) fn toml_string(path: &Path) -> Result<String, String> {
    let s = path
        .to_str()
        .ok_or_else(|| format!("not a UTF-8 path: {}", path.display()))?;
    serde_json::to_string(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_child_reports_its_output_verbatim() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo to-out; echo 'boom: bad config' >&2; exit 3"])
            .stdout(Stdio::piped());
        let e = run_child("sh", &mut cmd).unwrap_err();
        assert!(
            e.contains("boom: bad config") && e.contains("to-out") && e.contains('3'),
            "{e}"
        );
    }

    #[test]
    fn a_child_s_peak_rss_is_polled() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 0.1"]).stdout(Stdio::null());
        let run = run_child("sh", &mut cmd).unwrap().run;
        assert!(run.peak_rss_kb.is_some_and(|kb| kb > 0), "{run:?}");
        assert!(run.seconds >= 0.1);
    }
}
