//! `bkc import rsyncdirector`: the bundled configs import into a topology that passes `bkc check`
//! and runs the same rsync command lines the old daemon ran; every mistake in a config is
//! reported with its file and line; no input makes the importer panic.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use bkc::analyze::compile;
use bkc::import::{Config, Imported, rsyncdirector};
use bkc::schedule::parse_size;
use common::{Rng, bkc, stderr};
use saphyr::{LoadableYamlNode, Yaml};

const DESKTOP: &str = "examples/rsyncdirector/desktop.yaml";
const BACKUP_A: &str = "examples/rsyncdirector/backup_a.yaml";

fn config(host: &str, file: &str, text: &str) -> Config {
    Config {
        host: host.into(),
        file: file.into(),
        text: text.into(),
    }
}

fn examples() -> Vec<Config> {
    [("desktop", DESKTOP), ("backup_a", BACKUP_A)]
        .iter()
        .map(|(h, f)| config(h, f, &std::fs::read_to_string(f).unwrap()))
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    common::scratch("import", name)
}

fn codes(i: &Imported) -> Vec<&'static str> {
    i.diagnostics.iter().map(|d| d.code.as_str()).collect()
}

/// The words bash passes to a program for `line`, as the old daemon's shell did.
fn bash_words(line: &str) -> Vec<String> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("printf '%s\\0' {line}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "bash failed on {line}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_terminator('\0').map(String::from).collect()
}

/// What one rsync run is, whoever runs it: options in order, excludes in order, the bandwidth
/// limit in KiB/s, the ssh port, the source and `user@address:dest`.
#[derive(Debug, PartialEq)]
struct Run {
    opts: Vec<String>,
    exclude: Vec<String>,
    bwlimit: Option<String>,
    port: u16,
    source: String,
    dest: String,
}

/// The old daemon's rsync argv for every sync of a config, built as it built them: the options
/// joined with spaces, `-e 'ssh -p PORT'` after them when a port is set, then the source and
/// `user@host:dest`, all through bash.
fn old_runs(text: &str) -> Vec<Run> {
    let doc = &Yaml::load_from_str(text).unwrap()[0];
    let mut runs = Vec::new();
    for job in doc["jobs"].as_vec().unwrap() {
        let user = job["user"].as_str().unwrap();
        let host = job["host"].as_str().unwrap();
        let port = job.as_mapping_get("port").and_then(Yaml::as_integer);
        for sync in job["syncs"].as_vec().unwrap() {
            let mut options: Vec<String> = sync["opts"]
                .as_vec()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_string())
                .collect();
            if let Some(p) = port {
                options.extend(["-e".to_string(), format!("'ssh -p {p}'")]);
            }
            let line = format!(
                "{} {} {user}@{host}:{}",
                options.join(" "),
                sync["source"].as_str().unwrap(),
                sync["dest"].as_str().unwrap()
            );
            runs.push(parse_argv(&bash_words(&line)));
        }
    }
    runs
}

fn parse_argv(argv: &[String]) -> Run {
    let (options, paths) = argv.split_at(argv.len() - 2);
    let mut run = Run {
        opts: Vec::new(),
        exclude: Vec::new(),
        bwlimit: None,
        port: 22,
        source: paths[0].clone(),
        dest: paths[1].clone(),
    };
    let mut it = options.iter();
    while let Some(o) = it.next() {
        if o == "-e" {
            let ssh = it.next().unwrap();
            run.port = ssh.strip_prefix("ssh -p ").unwrap().parse().unwrap();
        } else if o == "--exclude" {
            run.exclude.push(it.next().unwrap().clone());
        } else if let Some(e) = o.strip_prefix("--exclude=") {
            run.exclude.push(e.to_string());
        } else if let Some(b) = o.strip_prefix("--bwlimit=") {
            run.bwlimit = Some(parse_size(b).unwrap());
        } else {
            run.opts.push(o.clone());
        }
    }
    run
}

/// What bkc-run runs for every sync of the jobs on `host`, from the compiled job specs.
fn bkc_runs(kdl: &str, host: &str) -> Vec<Run> {
    let c = compile("imported.kdl", kdl);
    let t = c.topology.expect("the import compiles");
    let mut runs = Vec::new();
    for job in t.jobs.values().filter(|j| j.host == host) {
        for s in &job.spec.syncs {
            let remote = &job.spec.hosts[&s.dest.host];
            let mut argv = s.opts.clone();
            argv.extend(s.bwlimit.iter().map(|b| format!("--bwlimit={b}")));
            argv.extend(s.exclude.iter().map(|e| format!("--exclude={e}")));
            argv.extend(["-e".to_string(), format!("ssh -p {}", remote.port)]);
            argv.push(s.source.path.clone());
            argv.push(format!(
                "{}@{}:{}",
                remote.user, remote.address, s.dest.path
            ));
            runs.push(parse_argv(&argv));
        }
    }
    runs
}

#[test]
fn examples_import_and_pass_check() {
    let configs = examples();
    let i = rsyncdirector(&configs, &[]);
    assert_eq!(
        codes(&i),
        ["bkc::import_waits_on_job", "bkc::import_waits_on_job"]
    );
    let kdl = i.kdl.unwrap();
    let c = compile("imported.kdl", &kdl);
    assert_eq!(c.errors(), 0);
    let t = c.topology.unwrap();
    assert_eq!(
        t.hosts.keys().collect::<Vec<_>>(),
        ["backup-b", "backup_a", "desktop"]
    );
    // Lock files and waits keep their exact paths, on the right hosts.
    let d = &t.jobs["desktop_to_backup_a"].spec;
    assert_eq!(d.lock_files[0].host, "backup_a");
    assert_eq!(d.lock_files[0].path, "/srv/backup/.desktop-sync.lock");
    assert_eq!(d.wait_files[0].at.path, "/srv/backup/.a-to-b.lock");
    assert_eq!(d.wait_files[0].timeout_secs, 43200);
    let a = &t.jobs["backup_a_to_b"].spec;
    assert_eq!(a.wait_files[0].at.host, "backup_a");
    assert!(kdl.contains("cron \"0 3 */4 * *\""));
    assert!(kdl.contains("`blocks-on \"desktop_to_backup_a\"` says the same"));
}

#[test]
#[ignore = "needs bash"]
fn rsync_command_lines_are_the_old_ones() {
    if !common::require_tool("bash") {
        return;
    }
    let configs = examples();
    let kdl = rsyncdirector(&configs, &[]).kdl.unwrap();
    for c in &configs {
        let old = old_runs(&c.text);
        assert!(
            old.iter()
                .any(|r| !r.exclude.is_empty() && !r.opts.is_empty())
        );
        assert_eq!(bkc_runs(&kdl, &c.host), old, "{}", c.file);
    }
}

/// bkc's splitting of option strings agrees with bash's on quoting of every kind.
#[test]
#[ignore = "needs bash"]
fn options_split_like_bash() {
    if !common::require_tool("bash") {
        return;
    }
    for line in [
        "-av --delete",
        "--exclude '.cache'",
        "--exclude \"My Music\" --exclude=a\\ b",
        "--exclude 'it'\\''s' --exclude \"x\\\"y\\\\z\\q\"",
        "--exclude=''",
        "-a\t--exclude   'two  spaces'",
        "--filter='- *.tmp'",
        "--exclude=a#b --exclude=c~",
    ] {
        let ours: Vec<String> = bkc::import::shell::split(line)
            .unwrap()
            .into_iter()
            .map(|(w, _)| w)
            .collect();
        assert_eq!(ours, bash_words(line), "{line}");
    }
}

#[test]
fn address_option_names_a_host() {
    let yaml = "cron_schedule: '@daily'\njobs:\n  - id: a\n    user: root\n    host: 10.0.0.5\n    syncs:\n      - source: /x/\n        dest: /y/\n        opts: ['-a']\n";
    let c = [config("desktop", "d.yaml", yaml)];
    let plain = rsyncdirector(&c, &[]).kdl.unwrap();
    assert!(plain.contains("host \"10.0.0.5\" address=\"10.0.0.5\" user=\"root\""));
    let named = rsyncdirector(&c, &[("nas".into(), "10.0.0.5".into())])
        .kdl
        .unwrap();
    assert!(named.contains("host \"nas\" address=\"10.0.0.5\" user=\"root\""));
    assert!(named.contains("\"nas:/y/\""));
}

#[test]
fn jobs_of_one_host_stay_apart_and_names_are_made_valid() {
    let yaml = "cron_schedule: '0 2 * * *'\njobs:\n  - id: my job\n    user: root\n    host: b.example.com\n    syncs: [{source: /x/, dest: /x/, opts: []}]\n  - id: my/job\n    user: root\n    host: b.example.com\n    syncs: [{source: /y/, dest: /y/, opts: ['-a']}]\n";
    let i = rsyncdirector(&[config("a", "a.yaml", yaml)], &[]);
    assert_eq!(codes(&i), ["bkc::import_renamed", "bkc::import_renamed"]);
    let kdl = i.kdl.unwrap();
    assert!(kdl.contains("job \"my-job\" on=\"a\""), "{kdl}");
    assert!(kdl.contains("job \"my-job-2\" on=\"a\""), "{kdl}");
    assert!(kdl.contains("    blocks-on \"my-job\"\n"), "{kdl}");
    // No options at all stays no options (bkc's default would add -a).
    assert!(kdl.contains("        opts\n"), "{kdl}");
    let c = compile("x.kdl", &kdl);
    assert_eq!(c.errors(), 0);
    let t = c.topology.unwrap();
    assert!(t.jobs["my-job"].spec.syncs[0].opts.is_empty());
}

/// Each mistake is an error naming the file, line and column, and nothing is written.
#[test]
fn mistakes_name_file_and_line() {
    let d = scratch("mistakes");
    let cases: &[(&str, &str, &str)] = &[
        (
            "cron_schedule: '0 2 * * *'\njobs: [\n",
            "bkc::yaml_syntax",
            ":3:1]",
        ),
        (
            "cron_schedule: '0 2 * * *'\njob: []\n",
            "bkc::yaml_unknown_key",
            ":2:1]",
        ),
        (
            "cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: root\n    host: b\n    port: twenty\n    syncs: []\n",
            "bkc::yaml_wrong_type",
            ":6:11]",
        ),
        (
            "cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: root\n    host: b\n    syncs:\n      - source: /x/\n        dest: /y/\n        opts: ['-a', \"-e 'ssh -p 2'\"]\n",
            "bkc::import_option",
            ":9:22]",
        ),
        (
            "cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: root\n    host: b\n    syncs:\n      - source: /x/\n        dest: /y/\n        opts: ['--exclude *.tmp']\n",
            "bkc::import_shell",
            ":9:27]",
        ),
        (
            "cron_schedule: '0 2 * * 8'\njobs: []\n",
            "bkc::invalid_cron",
            ":1:16]",
        ),
        (
            "cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: root\n    host: b\n    syncs:\n      - source: relative/x\n        dest: /y/\n",
            "bkc::invalid_path",
            ":7:17]",
        ),
    ];
    for (k, (yaml, code, at)) in cases.iter().enumerate() {
        let f = d.join(format!("c{k}.yaml"));
        std::fs::write(&f, yaml).unwrap();
        let out = d.join(format!("c{k}.kdl"));
        let o = bkc(&[
            "import",
            "rsyncdirector",
            &format!("h={}", f.display()),
            "-o",
            out.to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(code), "{code}: {err}");
        assert!(err.contains(&format!("c{k}.yaml{at}")), "{at}: {err}");
        assert!(!out.exists(), "a failed import writes nothing");
    }
}

#[test]
fn cli_writes_once_and_refuses_to_overwrite() {
    let d = scratch("cli");
    let out = d.join("bkc.kdl");
    let args = |force: bool| {
        let mut a = vec![
            "import".to_string(),
            "rsyncdirector".into(),
            format!("desktop={DESKTOP}"),
            format!("backup_a={BACKUP_A}"),
            "-q".into(),
            "-o".into(),
            out.display().to_string(),
        ];
        if force {
            a.push("--force".into());
        }
        a
    };
    let run = |a: Vec<String>| bkc(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let o = run(args(false));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "-q prints nothing but errors");
    let o = bkc(&["check", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(args(false));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already exists"));
    assert_eq!(run(args(true)).status.code(), Some(0));
    // The import is already in bkc's canonical layout.
    let o = bkc(&["fmt", "--check", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

const PIECES: &[&str] = &[
    "\n",
    "\n  ",
    "\n    ",
    "- ",
    ": ",
    "'",
    "\"",
    "\\",
    "[",
    "]",
    "{",
    "}",
    ",",
    "#",
    "&a ",
    "*a",
    "!!str ",
    "---\n",
    "...\n",
    "id",
    "user",
    "host",
    "port",
    "syncs",
    "opts",
    "source",
    "dest",
    "blocks_on",
    "lock_files",
    "type",
    "remote",
    "local",
    "path",
    "lock_file_path",
    "wait_time",
    "timeout",
    "cron_schedule",
    "jobs",
    "0",
    "-1",
    "65536",
    "99999999999999999999",
    "/x/",
    "é",
    "--exclude '",
    "-e",
    "$",
    "~",
    "\t",
    "null",
    "true",
    "\u{0}",
];

/// Random YAML-ish text and mutations of the examples: the importer answers with diagnostics
/// whose labels lie inside the file, or a topology, and never panics.
#[test]
fn junk_never_panics() {
    let base: Vec<String> = examples().into_iter().map(|c| c.text).collect();
    let mut rng = Rng(0x5EED_0000_0BAD_CAFE);
    for round in 0..1500 {
        let text = if round % 2 == 0 {
            (0..rng.below(40))
                .map(|_| PIECES[rng.below(PIECES.len())])
                .collect::<String>()
        } else {
            let mut t: Vec<char> = base[rng.below(base.len())].chars().collect();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(t.len() + 1);
                match rng.below(3) {
                    0 if at < t.len() => {
                        t.remove(at);
                    }
                    _ => {
                        let p = PIECES[rng.below(PIECES.len())];
                        for (k, c) in p.chars().enumerate() {
                            t.insert(at + k, c);
                        }
                    }
                }
            }
            t.into_iter().collect()
        };
        let i = rsyncdirector(&[config("h", "junk.yaml", &text)], &[]);
        for d in &i.diagnostics {
            for l in &d.labels {
                assert!(l.offset() + l.len() <= text.len(), "{text:?}: {d:?}");
                assert!(text.is_char_boundary(l.offset()), "{text:?}: {d:?}");
            }
        }
        if let Some(kdl) = i.kdl {
            // What passes the import but not the check (a sync onto itself through a host
            // that is the job's own) is caught by `bkc import`, which compiles its output.
            compile("junk.kdl", &kdl);
        }
    }
    // Deep nesting is refused before the parser sees it.
    let deep = "[".repeat(100_000);
    let i = rsyncdirector(&[config("h", "deep.yaml", &deep)], &[]);
    assert_eq!(codes(&i), ["bkc::yaml_syntax"]);
}

/// Found by the `import` fuzz target: a job id holding a form feed (or any other character KDL
/// reads as a line break) was written raw into a `//` comment, so the rest of the comment became
/// nodes and the topology did not compile. Every such character in a config reaches the written
/// topology and the terminal escaped.
#[test]
fn line_breaks_in_config_text_stay_in_their_comment() {
    for brk in ["\x0c", "\u{85}", "\u{2028}", "\u{2029}", "\x0b"] {
        let text = std::fs::read_to_string(BACKUP_A)
            .unwrap()
            .replacen("id: backup_a_to_b", &format!("id: backup_{brk}_to_b"), 1)
            .replacen(
                "pid_file_dir: ",
                &format!("pid_file_dir: /var/run/x{brk}y/"),
                1,
            );
        assert!(text.contains(brk), "the example changed: {BACKUP_A}");
        let i = rsyncdirector(&[config("backup_a", "backup_a.yaml", &text)], &[]);
        let kdl = i
            .kdl
            .as_deref()
            .unwrap_or_else(|| panic!("{brk:?}: {:?}", codes(&i)));
        let c = compile("imported.kdl", kdl);
        assert_eq!(c.errors(), 0, "{brk:?}:\n{kdl}");
        assert!(!kdl.contains(brk), "{brk:?} written raw:\n{kdl}");
        let shown = bkc::diag::render(&i.diagnostics, false, 80);
        assert!(
            !shown.contains(brk),
            "{brk:?} reached the terminal:\n{shown}"
        );
    }
}
