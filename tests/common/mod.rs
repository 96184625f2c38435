//! Helpers shared by the integration tests.
//!
//! Some tests compare bkc with real tools (systemd-analyze, rsync, croniter) or need root. Each
//! such test is `#[ignore = "needs ..."]`, so that a plain `cargo test` counts it as ignored
//! instead of passing it unseen. Run with `--include-ignored`, it still checks what it needs at
//! its top: on a developer machine without it, it prints why and returns; on CI (`CI=true`) a
//! missing tool is a broken test environment, so the test fails instead.
//!
//! Use it at the top of such a test: `if !common::require_tool("systemd-analyze") { return; }`.

use std::path::Path;

/// True if `name` (a program on PATH, or a path) can be run. Otherwise skip: print a message
/// and return false, or panic when running on CI.
///
/// PATH is where `Command::new(name)` looks too, so a tool found here is a tool the test can run.
pub fn require_tool(name: &str) -> bool {
    let found = if name.contains('/') {
        is_executable(Path::new(name))
    } else {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(name)))
        })
    };
    found || skip(&format!("`{name}` is not installed"))
}

/// True if the test runs as root. Otherwise skip (or panic on CI) like [`require_tool`], saying
/// that `what` needs it.
pub fn require_root(what: &str) -> bool {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    euid == 0 || skip(&format!("{what} needs root"))
}

/// Report that a test cannot run here: returns false, or panics when the env var CI is "true".
pub fn skip(reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason} (required on CI)");
    }
    eprintln!("skipping: {reason}");
    false
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The path of a binary of the workspace, built by cargo for the integration tests.
pub fn bin(name: &str) -> std::path::PathBuf {
    match name {
        "bkc" => env!("CARGO_BIN_EXE_bkc").into(),
        "bkc-run" => bkc_run().to_path_buf(),
        other => panic!("no binary {other}"),
    }
}

/// bkc-run, built next to bkc, which is where `bkc apply` looks for it too.
///
/// It is a binary of another crate of the workspace, so cargo neither names it to these tests
/// (`CARGO_BIN_EXE_*` covers a crate's own binaries only, and artifact dependencies are
/// unstable) nor builds it for `cargo test --test NAME`. So the first call builds it, in the
/// profile and target directory bkc was built in: a no-op when it is up to date, and never a
/// stale runner from an earlier build.
pub fn bkc_run() -> &'static Path {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let bkc = Path::new(env!("CARGO_BIN_EXE_bkc"));
        let profile_dir = bkc.parent().expect("bkc is in a profile directory");
        let mut cargo =
            std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cargo
            .args(["build", "--quiet", "-p", "bkc-runner", "--bin", "bkc-run"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("--target-dir")
            .arg(
                profile_dir
                    .parent()
                    .expect("a profile directory is in a target directory"),
            );
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some(profile) => {
                cargo.args(["--profile", profile]);
            }
            None => panic!("bkc is at {}, not in a profile directory", bkc.display()),
        }
        let status = cargo.status().expect("run cargo to build bkc-run");
        assert!(status.success(), "building bkc-run failed: {cargo:?}");
        let runner = bkc.with_file_name("bkc-run");
        assert!(
            runner.exists(),
            "{cargo:?} did not make {}",
            runner.display()
        );
        runner
    })
}

/// What `systemd-analyze calendar` printed for one expression.
#[derive(Debug, Default)]
pub struct Analyzed {
    pub normalized: String,
    /// "YYYY-MM-DD HH:MM:SS", in UTC.
    pub elapses: Vec<String>,
}

/// systemd's own calendar engine on all `exprs` at once, in UTC, from `base` (exclusive):
/// the normalized form and the next `iterations` elapses of each. All must be valid.
pub fn systemd_calendar(exprs: &[String], base: &str, iterations: usize) -> Vec<Analyzed> {
    let out = std::process::Command::new("systemd-analyze")
        .arg("calendar")
        .arg(format!("--iterations={iterations}"))
        .arg(format!("--base-time={base} UTC"))
        .arg("--")
        .args(exprs)
        .env("TZ", "UTC")
        .env("SYSTEMD_COLORS", "0")
        .output()
        .expect("run systemd-analyze");
    assert!(
        out.status.success(),
        "systemd-analyze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let blocks = parse_analyze_output(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(blocks.len(), exprs.len(), "one answer per expression");
    blocks
}

/// Split the output into one block per expression, in order. A block starts with "Original
/// form:" (printed only when it differs from the normalized form) or with "Normalized form:".
fn parse_analyze_output(stdout: &str) -> Vec<Analyzed> {
    let mut blocks: Vec<Analyzed> = Vec::new();
    let mut after_original = false;
    for line in stdout.lines() {
        let line = line.trim_start();
        if line.starts_with("Original form: ") {
            blocks.push(Analyzed::default());
            after_original = true;
            continue;
        }
        if let Some(n) = line.strip_prefix("Normalized form: ") {
            if !after_original {
                blocks.push(Analyzed::default());
            }
            blocks.last_mut().unwrap().normalized = n.to_string();
        } else if let Some((label, when)) = line.split_once(": ")
            && (label == "Next elapse" || label.starts_with("Iter. #"))
            && when != "never"
        {
            // "Thu 2026-01-01 02:15:00 UTC" -> "2026-01-01 02:15:00"
            let parts: Vec<&str> = when.split(' ').collect();
            assert_eq!(parts.len(), 4, "unexpected time {when:?}");
            let block = blocks.last_mut().expect("a block");
            block.elapses.push(format!("{} {}", parts[1], parts[2]));
        }
        after_original = false;
    }
    blocks
}

/// bkc's calendar engine: the next `iterations` elapses of `cal` after `base`, in UTC, in the
/// format of [`Analyzed::elapses`].
pub fn our_elapses(cal: &bkc::schedule::Calendar, base: &str, iterations: usize) -> Vec<String> {
    let mut t: jiff::Timestamp = format!("{}Z", base.replace(' ', "T")).parse().unwrap();
    let mut out = Vec::new();
    while out.len() < iterations {
        let Some(next) = cal.next_after(t, &jiff::tz::TimeZone::UTC) else {
            break;
        };
        assert!(next > t, "next elapse must move forward");
        out.push(next.strftime("%Y-%m-%d %H:%M:%S").to_string());
        t = next;
    }
    out
}

/// Run `bkc` with `args`, without colours, and wait for it.
pub fn bkc(args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin("bkc"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh, empty directory `bkc-<tag>-<pid>-<name>` under the temporary directory.
pub fn scratch(tag: &str, name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("bkc-{tag}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Remove a scratch directory, also when a test left a directory in it that its owner may not
/// enter: root may anyway, so only a run as a user would fail here.
pub fn remove_scratch(dir: &Path) {
    fn open_up(dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                open_up(&entry.path());
            }
        }
    }
    open_up(dir);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The bundled examples (examples/*.kdl), each as its name and text, sorted by name.
pub fn examples() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir("examples")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "kdl"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// xorshift64*: small, seeded and deterministic, so a failure can be reproduced.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}
