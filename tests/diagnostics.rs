//! One test per diagnostic: the exact text `bkc check` prints (no colour, 80 columns) for a
//! small topology with that one mistake. A change to any message is a reviewed snapshot diff.

use bkc::analyze::compile;
use bkc::diag::render;

/// A minimal valid topology that each case below breaks in one place.
const BASE: &str = r#"host "desktop" address="desktop.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiH"; }
host "backup_a" address="backup-a.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGPmKn9c+ok429EC"; }
"#;

fn check(src: &str) -> (String, Vec<&'static str>) {
    let c = compile("bkc.kdl", src);
    let codes = c.diagnostics.iter().map(|d| d.code.as_str()).collect();
    (render(&c.diagnostics, false, 80), codes)
}

/// `case!(name, "kdl", [codes])`: the file gives exactly these diagnostic codes, in order, and
/// its rendered text matches the snapshot `diagnostics__name.snap`.
macro_rules! case {
    ($name:ident, $src:expr, [$($code:literal),* $(,)?]) => {
        #[test]
        fn $name() {
            let src = format!("{BASE}{}", $src);
            let (text, codes) = check(&src);
            assert_eq!(codes, vec![$($code),*], "{text}");
            insta::assert_snapshot!(stringify!($name), text);
        }
    };
}

case!(
    syntax_error,
    "job \"x\" on=\"desktop\" {\n    nice 1.\n}\n",
    ["bkc::syntax"]
);
case!(unknown_top_node, "hots \"c\"\n", ["bkc::unknown_node"]);
case!(
    unknown_job_node,
    "job \"x\" on=\"desktop\" {\n    shedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::unknown_node"]
);
case!(
    unknown_property,
    "host \"c\" adress=\"c.lan\"\n",
    ["bkc::unknown_property"]
);
case!(
    missing_on,
    "job \"x\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::missing_value"]
);
case!(
    missing_sync_dest,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\"\n}\n",
    ["bkc::missing_value"]
);
case!(wrong_type, "host \"c\" port=\"22\"\n", ["bkc::wrong_type"]);
case!(
    duplicate_host,
    "host \"desktop\" address=\"other.lan\"\n",
    ["bkc::duplicate_host"]
);
case!(
    duplicate_job,
    "job \"x\" on=\"desktop\" {\n    sync \"/a/\" \"backup_a:/b/\"\n}\njob \"x\" on=\"backup_a\" {\n    sync \"/c/\" \"desktop:/d/\"\n}\n",
    ["bkc::duplicate_job"]
);
case!(
    duplicate_setting,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    nice 5\n    nice 10\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::duplicate_setting"]
);
case!(
    unknown_host_on,
    "job \"x\" on=\"dekstop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::unknown_host"]
);
case!(
    unknown_host_in_path,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_b:/b/\"\n}\n",
    ["bkc::unknown_host"]
);
case!(
    unknown_host_in_hook,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    hook \"before\" \"pg_dumpall -f /var/backups/db.sql\" host=\"db\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::unknown_host"]
);
case!(
    unknown_host_in_lock,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    lock-file \"/run/x.lock\" host=\"backup-a\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::unknown_host"]
);
case!(
    unknown_job,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    blocks-on \"a-to-c\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::unknown_job"]
);
case!(invalid_host_name, "host \"-bad\"\n", ["bkc::invalid_name"]);
case!(
    invalid_job_name,
    "job \"my job\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::invalid_name"]
);
case!(
    relative_path,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"home/alice/\" \"backup_a:/b/\"\n}\n",
    ["bkc::invalid_path"]
);
case!(
    relative_remote_path,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:srv/b/\"\n}\n",
    ["bkc::invalid_path"]
);
case!(
    both_remote,
    "host \"c\"\njob \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"backup_a:/a/\" \"c:/b/\"\n}\n",
    ["bkc::both_remote"]
);
case!(
    sync_to_itself,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/srv/a/\" \"desktop:/srv/a\"\n}\n",
    ["bkc::sync_to_itself"]
);
case!(
    sync_inside_source,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/srv/\" \"/srv/backup/\"\n}\n",
    ["bkc::sync_overlap"]
);
case!(
    invalid_cron,
    "job \"x\" on=\"desktop\" {\n    cron \"0 25 * * *\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::invalid_cron"]
);
case!(
    invalid_calendar,
    "job \"x\" on=\"desktop\" {\n    schedule \"dayly\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::invalid_calendar"]
);
case!(
    invalid_duration,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    timeout \"6 hours and a bit\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::invalid_duration"]
);
case!(
    invalid_size,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    bwlimit \"fast\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::invalid_size"]
);
case!(
    self_wait,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    blocks-on \"x\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::self_wait"]
);
case!(
    wait_cycle,
    "job \"a\" on=\"desktop\" {\n    schedule \"daily\"\n    blocks-on \"b\"\n    sync \"/a/\" \"backup_a:/a/\"\n}\njob \"b\" on=\"desktop\" {\n    schedule \"daily\"\n    blocks-on \"c\"\n    sync \"/b/\" \"backup_a:/b/\"\n}\njob \"c\" on=\"desktop\" {\n    schedule \"daily\"\n    blocks-on \"a\"\n    sync \"/c/\" \"backup_a:/c/\"\n}\n",
    ["bkc::wait_cycle"]
);
/// Jobs that all block on each other are a group that never overlaps, not a circle.
#[test]
fn a_group_blocking_on_each_other_is_not_a_circle() {
    let job = |n: &str, others: [&str; 2]| {
        format!(
            "job \"{n}\" on=\"desktop\" {{\n    schedule \"daily\"\n    blocks-on \"{}\"\n    blocks-on \"{}\"\n    sync \"/{n}/\" \"backup_a:/{n}/\"\n}}\n",
            others[0], others[1]
        )
    };
    let src = format!(
        "{BASE}{}{}{}",
        job("a", ["b", "c"]),
        job("b", ["a", "c"]),
        job("c", ["a", "b"])
    );
    let (text, codes) = check(&src);
    assert!(codes.is_empty(), "{text}");
}

case!(
    derived_exclusion,
    "job \"a\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/home/a/\" \"backup_a:/srv/backup/\"\n}\njob \"b\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/home/b/\" \"backup_a:/srv/backup/\"\n}\n",
    ["bkc::derived_exclusion"]
);
case!(
    reserved_option,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\" {\n        opts \"-a\" \"-e\" \"ssh -p 2222\"\n    }\n}\n",
    ["bkc::conflicting_option", "bkc::invalid_option"]
);
case!(
    invalid_port,
    "host \"c\" port=70000\n",
    ["bkc::invalid_port"]
);
case!(
    invalid_host_key,
    "host \"c\" {\n    host-key \"ssh-ed2559 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiHVL3zFL6h\"\n}\n",
    ["bkc::invalid_host_key"]
);
case!(
    invalid_hook_policy,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    hook \"before\" \"true\" on-failure=\"stop\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::invalid_hook"]
);
case!(
    invalid_nice,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    nice 40\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::invalid_nice"]
);
case!(
    conflicting_schedule,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    every \"4d\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::conflicting_schedule"]
);
case!(
    derived_from_hook_writes,
    "job \"dump\" on=\"desktop\" {\n    schedule \"daily\"\n    hook \"before\" \"tar -cf /srv/data/etc.tar /etc\" writes=\"/srv/data\"\n}\njob \"copy\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/srv/data/\" \"backup_a:/srv/copy/\"\n}\n",
    ["bkc::derived_exclusion"]
);
case!(
    double_slash_path,
    "job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/srv//out/\" \"backup_a:/b/\"\n}\n",
    ["bkc::invalid_path"]
);
case!(
    description_trailing_backslash,
    "job \"x\" on=\"desktop\" {\n    description #\"backup of C:\\\"#\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::invalid_description"]
);
case!(
    never_fires,
    "job \"x\" on=\"desktop\" {\n    schedule \"*-02-30\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::never_fires"]
);
case!(
    identity_with_quote,
    "defaults {\n    identity \"/etc/bkc/alice's key\"\n}\n",
    ["bkc::invalid_path"]
);
case!(
    no_host_key,
    "host \"c\" address=\"c.lan\" port=2200\njob \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"c:/b/\"\n}\n",
    ["bkc::no_host_key"]
);
case!(
    no_schedule,
    "job \"x\" on=\"desktop\" {\n    sync \"/a/\" \"backup_a:/b/\"\n}\n",
    ["bkc::no_schedule"]
);
case!(
    too_deep,
    "job \"x\" on=\"desktop\" /-{ a /-{ b /-{ c /-{ d /-{ e /-{ f /-{ g } } } } } } }\n",
    ["bkc::nesting"]
);

/// Every mistake of a file comes out in one run, in file order.
#[test]
fn all_errors_at_once() {
    let src = format!(
        "{BASE}job \"x\" on=\"nowhere\" {{\n    schedule \"daily\"\n    nice 99\n    sync \"rel/\" \"backup_a:/b/\"\n}}\njob \"y\" on=\"desktop\" {{\n    cron \"61 * * * *\"\n    blocks-on \"zz\"\n    sync \"/a/\" \"backup_a:/c/\"\n}}\n"
    );
    let (text, codes) = check(&src);
    assert_eq!(
        codes,
        [
            "bkc::unknown_host",
            "bkc::invalid_nice",
            "bkc::invalid_cron",
            "bkc::unknown_job"
        ],
        "{text}"
    );
}

/// The examples compile without a single diagnostic.
#[test]
fn examples_are_clean() {
    for entry in std::fs::read_dir("examples").unwrap() {
        let path = entry.unwrap().path();
        // examples/rsyncdirector/ holds YAML for `bkc import`.
        if path.extension().is_none_or(|x| x != "kdl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let c = compile(&path.display().to_string(), &text);
        assert!(
            c.diagnostics.is_empty(),
            "{}",
            render(&c.diagnostics, false, 80)
        );
    }
}

/// Input that once hung or crashed KDL parsers gives an error quickly instead.
#[test]
fn hostile_input_is_bounded() {
    let mut deep = String::new();
    for _ in 0..100_000 {
        deep.push_str("a {");
    }
    let (_, codes) = check(&deep);
    assert_eq!(codes, ["bkc::nesting"]);
    let slashdash = format!("a {}{}", "/-{ ".repeat(40), "} ".repeat(40));
    let (_, codes) = check(&slashdash);
    assert_eq!(codes, ["bkc::nesting"]);
    let big = "x".repeat(bkc::syntax::MAX_BYTES + 1);
    let (_, codes) = check(&big);
    assert_eq!(codes, ["bkc::file_too_large"]);
}
