//! One test per diagnostic: the exact text `bkc check` (or `bkc import`) prints, no colour and
//! 80 columns wide, for a small input with that one mistake. A change to any message is a
//! reviewed snapshot diff, and a code that no case gives fails `every_code_has_a_case`.

use bkc::analyze::compile;
use bkc::diag::{Code, Diagnostic, render};
use bkc::import::{Config, rsyncdirector};

/// A minimal valid topology that each case below breaks in one place.
const BASE: &str = r#"host "desktop" address="desktop.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiH"; }
host "backup_a" address="backup-a.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGPmKn9c+ok429EC"; }
"#;

fn rendered(diagnostics: &[Diagnostic]) -> (String, Vec<&'static str>) {
    let codes = diagnostics.iter().map(|d| d.code.as_str()).collect();
    (render(diagnostics, false, 80), codes)
}

fn check(src: &str) -> (String, Vec<&'static str>) {
    rendered(&compile("bkc.kdl", src).diagnostics)
}

/// `BASE` with `body` after it, as `bkc check` sees it.
fn kdl(body: &str) -> (String, Vec<&'static str>) {
    check(&format!("{BASE}{body}"))
}

/// One rsync-director config of host `desktop`, as `bkc import rsyncdirector` sees it.
fn yaml(text: &str) -> (String, Vec<&'static str>) {
    let config = Config {
        host: "desktop".into(),
        file: "desktop.yaml".into(),
        text: text.into(),
    };
    rendered(&rsyncdirector(&[config], &[]).diagnostics)
}

/// `cases! { name: kdl("…") => [codes]; }`: the input gives exactly these diagnostic codes, in
/// order, and its rendered text matches the snapshot `diagnostics__name.snap`. `CASES` keeps
/// every case's codes for `every_code_has_a_case`.
macro_rules! cases {
    ($($name:ident: $input:ident($src:expr) => [$($code:literal),* $(,)?];)*) => {
        $(
            #[test]
            fn $name() {
                let (text, codes) = $input($src);
                assert_eq!(codes, vec![$($code),*] as Vec<&str>, "{text}");
                assert_snapshot!(stringify!($name), text);
            }
        )*

        const CASES: &[(&str, &[&str])] = &[$((stringify!($name), &[$($code),*])),*];
    };
}

cases! {
    syntax_error: kdl("job \"x\" on=\"desktop\" {\n    nice 1.\n}\n") => ["bkc::syntax"];
    unknown_top_node: kdl("hots \"c\"\n") => ["bkc::unknown_node"];
    unknown_job_node: kdl("job \"x\" on=\"desktop\" {\n    shedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::unknown_node"];
    unknown_property: kdl("host \"c\" adress=\"c.lan\"\n") => ["bkc::unknown_property"];
    missing_on: kdl("job \"x\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::missing_value"];
    missing_sync_dest: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\"\n}\n") => ["bkc::missing_value"];
    wrong_type: kdl("host \"c\" port=\"22\"\n") => ["bkc::wrong_type"];
    duplicate_host: kdl("host \"desktop\" address=\"other.lan\"\n") => ["bkc::duplicate_host"];
    duplicate_job: kdl("job \"x\" on=\"desktop\" {\n    sync \"/a/\" \"backup_a:/b/\"\n}\njob \"x\" on=\"backup_a\" {\n    sync \"/c/\" \"desktop:/d/\"\n}\n") => ["bkc::duplicate_job"];
    duplicate_setting: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    nice 5\n    nice 10\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::duplicate_setting"];
    unknown_host_on: kdl("job \"x\" on=\"dekstop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::unknown_host"];
    unknown_host_in_path: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_b:/b/\"\n}\n") => ["bkc::unknown_host"];
    unknown_host_in_hook: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    hook \"before\" \"pg_dumpall -f /var/backups/db.sql\" host=\"db\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::unknown_host"];
    unknown_host_in_lock: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    lock-file \"/run/x.lock\" host=\"backup-a\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::unknown_host"];
    unknown_job: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    blocks-on \"a-to-c\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::unknown_job"];
    invalid_host_name: kdl("host \"-bad\"\n") => ["bkc::invalid_name"];
    invalid_job_name: kdl("job \"my job\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_name"];
    relative_path: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"home/alice/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_path"];
    relative_remote_path: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:srv/b/\"\n}\n") => ["bkc::invalid_path"];
    both_remote: kdl("host \"c\"\njob \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"backup_a:/a/\" \"c:/b/\"\n}\n") => ["bkc::both_remote"];
    sync_to_itself: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/srv/a/\" \"desktop:/srv/a\"\n}\n") => ["bkc::sync_to_itself"];
    sync_inside_source: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/srv/\" \"/srv/backup/\"\n}\n") => ["bkc::sync_overlap"];
    invalid_cron: kdl("job \"x\" on=\"desktop\" {\n    cron \"0 25 * * *\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_cron"];
    invalid_calendar: kdl("job \"x\" on=\"desktop\" {\n    schedule \"dayly\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_calendar"];
    invalid_duration: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    timeout \"6 hours and a bit\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_duration"];
    invalid_size: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    bwlimit \"fast\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_size"];
    self_wait: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    blocks-on \"x\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::self_wait"];
    wait_cycle: kdl("job \"a\" on=\"desktop\" {\n    schedule \"daily\"\n    blocks-on \"b\"\n    sync \"/a/\" \"backup_a:/a/\"\n}\njob \"b\" on=\"desktop\" {\n    schedule \"daily\"\n    blocks-on \"c\"\n    sync \"/b/\" \"backup_a:/b/\"\n}\njob \"c\" on=\"desktop\" {\n    schedule \"daily\"\n    blocks-on \"a\"\n    sync \"/c/\" \"backup_a:/c/\"\n}\n") => ["bkc::wait_cycle"];
    derived_exclusion: kdl("job \"a\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/home/a/\" \"backup_a:/srv/backup/\"\n}\njob \"b\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/home/b/\" \"backup_a:/srv/backup/\"\n}\n") => ["bkc::derived_exclusion"];
    reserved_option: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\" {\n        opts \"-a\" \"-e\" \"ssh -p 2222\"\n    }\n}\n") => ["bkc::conflicting_option", "bkc::invalid_option"];
    refused_option: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\" {\n        opts \"-avL\" \"--backup-dir=/tmp\"\n    }\n}\n") => ["bkc::refused_option", "bkc::refused_option"];
    invalid_port: kdl("host \"c\" port=70000\n") => ["bkc::invalid_port"];
    invalid_host_key: kdl("host \"c\" {\n    host-key \"ssh-ed2559 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiHVL3zFL6h\"\n}\n") => ["bkc::invalid_host_key"];
    invalid_notify_event: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    notify on=\"failure,recover\" \"/usr/local/bin/page-me\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_notify"];
    invalid_ping_url: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    ping \"hc-ping.com/abc\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_url"];
    unit_clash: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\njob \"fresh-x\" on=\"backup_a\" {\n    schedule \"daily\"\n    sync \"/d/\" \"/c/\"\n}\n") => ["bkc::unit_clash"];
    invalid_hook_policy: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    hook \"before\" \"true\" on-failure=\"stop\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_hook"];
    invalid_max_parallel: kdl("host \"c\" max-parallel=0\n") => ["bkc::invalid_max_parallel"];
    invalid_priority: kdl("host \"c\" max-parallel=2\njob \"x\" on=\"c\" {\n    schedule \"daily\"\n    priority 5000\n    sync \"/a/\" \"/b/\"\n}\n") => ["bkc::invalid_priority"];
    priority_without_slots: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    priority 10\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::unused_setting"];
    invalid_nice: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    nice 40\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_nice"];
    conflicting_schedule: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    every \"4d\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::conflicting_schedule"];
    derived_from_hook_writes: kdl("job \"dump\" on=\"desktop\" {\n    schedule \"daily\"\n    hook \"before\" \"tar -cf /srv/data/etc.tar /etc\" writes=\"/srv/data\"\n}\njob \"copy\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/srv/data/\" \"backup_a:/srv/copy/\"\n}\n") => ["bkc::derived_exclusion"];
    double_slash_path: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/srv//out/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_path"];
    description_trailing_backslash: kdl("job \"x\" on=\"desktop\" {\n    description #\"backup of C:\\\"#\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_description"];
    never_fires: kdl("job \"x\" on=\"desktop\" {\n    schedule \"*-02-30\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::never_fires"];
    identity_with_quote: kdl("defaults {\n    ssh-keys \"operator\"\n    identity \"/etc/bkc/alice's key\"\n}\n") => ["bkc::invalid_path"];
    invalid_ssh_keys: kdl("defaults {\n    ssh-keys \"restricetd\"\n}\n") => ["bkc::invalid_ssh_keys"];
    identity_with_restricted_keys: kdl("defaults {\n    identity \"/etc/bkc/id_ed25519\"\n}\n") => ["bkc::unused_setting"];
    job_key_with_operator_keys: kdl("defaults {\n    ssh-keys \"operator\"\n}\njob \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    key \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiH\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::unused_setting"];
    job_key_of_a_local_job: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    key \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiH\"\n    sync \"/a/\" \"/b/\"\n}\n") => ["bkc::unused_setting"];
    invalid_job_key: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    key \"ssh-ed2519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiH\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_job_key"];
    security_key_as_job_key: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    key \"sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_job_key"];
    job_key_pinned_twice: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    key \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiH\"\n    sync \"/a/\" \"backup_a:/a/\"\n}\njob \"y\" on=\"desktop\" {\n    schedule \"daily\"\n    key \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiH\"\n    sync \"/b/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_job_key"];
    user_that_names_no_file: kdl("host \"c\" user=\"svc/backup\"\n") => ["bkc::invalid_user"];
    identity_with_token: kdl("defaults {\n    ssh-keys \"operator\"\n    identity \"/etc/bkc/%u/key\"\n}\n") => ["bkc::invalid_path"];
    no_host_key: kdl("host \"c\" address=\"c.lan\" port=2200\njob \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"c:/b/\"\n}\n") => ["bkc::no_host_key"];
    no_schedule: kdl("job \"x\" on=\"desktop\" {\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::no_schedule"];
    too_deep: kdl("job \"x\" on=\"desktop\" /-{ a /-{ b /-{ c /-{ d /-{ e /-{ f /-{ g } } } } } } }\n") => ["bkc::nesting"];
    invalid_address: kdl("host \"c\" address=\"-oProxyCommand=sh\"\n") => ["bkc::invalid_address"];
    address_with_slash: kdl("host \"c\" address=\"tmp/x\"\n") => ["bkc::invalid_address"];
    invalid_user: kdl("host \"c\" user=\"al ice\"\n") => ["bkc::invalid_user"];
    unexpected_argument: kdl("host \"c\" \"d\"\n") => ["bkc::unexpected_argument"];
    unexpected_children: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    nice 5 {\n        io-class \"idle\"\n    }\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::unexpected_children"];
    invalid_io_class: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    io-class \"idel\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_io_class"];
    lock_file_at_the_top: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    lock-file \"/j.lock\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::unsafe_writable_path"];
    state_dir_over_staging: kdl("defaults {\n    state-dir \"/var/lib/bkc\"\n}\n") => ["bkc::unsafe_writable_path"];
    restore_to_etc: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"backup_a:/srv/b/\" \"/srv/a/\"\n    restore-to \"/etc\" host=\"backup_a\"\n}\n") => ["bkc::unsafe_writable_path"];
    restore_to_own_host: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"backup_a:/srv/b/\" \"/srv/a/\"\n    restore-to \"/srv/a\"\n}\n") => ["bkc::unused_setting"];
    verify_bad_calendar: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n    verify \"weakly\"\n}\n") => ["bkc::invalid_calendar"];
    verify_never_fires: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n    verify \"*-02-30\"\n}\n") => ["bkc::never_fires"];
    verify_twice: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n    verify \"weekly\"\n    verify \"monthly\" checksum=#true\n}\n") => ["bkc::duplicate_setting"];
    verify_checksum_not_a_flag: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\"\n    verify \"weekly\" checksum=\"yes\"\n}\n") => ["bkc::wrong_type"];
    verify_without_sync: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    hook \"before\" \"true\"\n    verify \"weekly\"\n}\n") => ["bkc::unused_setting"];
    restore_to_unknown_host: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"backup_a:/srv/b/\" \"/srv/a/\"\n    restore-to \"/srv/b\" host=\"backup_c\"\n}\n") => ["bkc::unknown_host"];
    restore_to_relative: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"backup_a:/srv/b/\" \"/srv/a/\"\n    restore-to \"srv/b\" host=\"backup_a\"\n}\n") => ["bkc::invalid_path"];
    source_snapshot_of_a_pull: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"backup_a:/srv/b/\" \"/srv/a/\" {\n        source-snapshot \"btrfs\"\n    }\n}\n") => ["bkc::invalid_source_snapshot"];
    source_snapshot_without_slash: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/home/alice\" \"backup_a:/srv/b/\" {\n        source-snapshot \"btrfs\"\n    }\n}\n") => ["bkc::invalid_source_snapshot"];
    source_snapshot_zfs: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/home/\" \"backup_a:/srv/b/\" {\n        source-snapshot \"zfs\"\n    }\n}\n") => ["bkc::invalid_source_snapshot"];
    source_snapshot_lvm_bad_size: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/home/\" \"backup_a:/srv/b/\" {\n        source-snapshot \"lvm\" volume=\"vg0/home\" size=\"lots\"\n    }\n}\n") => ["bkc::invalid_source_snapshot"];
    source_snapshot_dataset_for_btrfs: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/home/\" \"backup_a:/srv/b/\" {\n        source-snapshot \"btrfs\" dataset=\"tank/home\"\n    }\n}\n") => ["bkc::invalid_source_snapshot"];
    sync_into_etc: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"backup_a:/srv/etc/\" \"/etc\"\n}\n") => ["bkc::unsafe_writable_path"];
    invalid_retries: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    retries 500 delay=\"1m\"\n    sync \"/a/\" \"backup_a:/b/\"\n}\n") => ["bkc::invalid_retries"];
    invalid_retention: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\" {\n        snapshot keep-daily=0 keep-weekly=4\n    }\n}\n") => ["bkc::invalid_retention"];
    no_retention: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    sync \"/a/\" \"backup_a:/b/\" {\n        snapshot\n    }\n}\n") => ["bkc::no_retention"];
    empty_job: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n}\n") => ["bkc::empty_job"];
    file_too_large: kdl(&"x".repeat(bkc::syntax::MAX_BYTES)) => ["bkc::file_too_large"];
    watch_on_another_host: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    watch \"backup_a:/srv/b\"\n    sync \"backup_a:/srv/b/\" \"/srv/a/\"\n}\n") => ["bkc::invalid_watch"];
    watch_where_the_job_writes: kdl("job \"x\" on=\"desktop\" {\n    schedule \"daily\"\n    watch \"/srv\"\n    sync \"backup_a:/srv/b/\" \"/srv/a/\"\n}\n") => ["bkc::invalid_watch"];
    watch_quiet_too_long: kdl("job \"x\" on=\"desktop\" {\n    watch \"/home/\" quiet=\"2d\"\n    sync \"/home/\" \"backup_a:/srv/home/\"\n}\n") => ["bkc::invalid_watch"];
    watch_quiet_zero: kdl("job \"x\" on=\"desktop\" {\n    watch \"/home/\" quiet=0\n    sync \"/home/\" \"backup_a:/srv/home/\"\n}\n") => ["bkc::invalid_duration"];
    watch_two_quiet_times: kdl("job \"x\" on=\"desktop\" {\n    watch \"/home/alice\" quiet=\"5m\"\n    watch \"/home/bob\" quiet=\"1m\"\n    sync \"/home/\" \"backup_a:/srv/home/\"\n}\n") => ["bkc::invalid_watch"];
    watch_relative_path: kdl("job \"x\" on=\"desktop\" {\n    watch \"home/alice\"\n    sync \"/home/\" \"backup_a:/srv/home/\"\n}\n") => ["bkc::invalid_path"];
    watch_outside_source: kdl("job \"x\" on=\"desktop\" {\n    watch \"/var/mail\"\n    sync \"/home/\" \"backup_a:/srv/home/\"\n}\n") => ["bkc::watch_outside_source"];

    yaml_syntax: yaml("cron_schedule: '0 2 * * *'\njobs: [\n") => ["bkc::yaml_syntax"];
    yaml_unknown_key: yaml("cron_schedule: '0 2 * * *'\njobs: []\nretries: 3\n") => ["bkc::yaml_unknown_key"];
    yaml_number_expected: yaml("cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: bk\n    port: twenty\n    host: backup-a.lan\n    syncs: []\n") => ["bkc::yaml_wrong_type"];
    yaml_wrong_type: yaml("cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: 22\n    host: backup-a.lan\n    syncs: []\n") => ["bkc::yaml_wrong_type"];
    yaml_missing_key: yaml("cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    host: backup-a.lan\n    syncs: []\n") => ["bkc::yaml_missing_key"];
    yaml_out_of_range: yaml("cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: root\n    host: backup-a.lan\n    port: 70000\n    syncs: []\n") => ["bkc::yaml_out_of_range"];
    import_shell: yaml("cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: root\n    host: backup-a.lan\n    syncs:\n      - source: /x/\n        dest: /y/\n        opts: ['--exclude *.tmp']\n") => ["bkc::import_shell"];
    import_option: yaml("cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: root\n    host: backup-a.lan\n    syncs:\n      - source: /x/\n        dest: /y/\n        opts: ['-a', \"-e 'ssh -p 2'\"]\n") => ["bkc::import_option"];
    import_value: yaml("cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: -oProxyCommand=sh\n    host: backup-a.lan\n    syncs: []\n") => ["bkc::import_value"];
    import_address: yaml("cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: root\n    host: backup-a.lan\n    lock_files:\n      - type: remote\n        host: desktop.lan\n        path: /run/a.lock\n      - type: remote\n        host: desktop.example.com\n        path: /run/b.lock\n    syncs: []\n") => ["bkc::import_address"];
    import_conflict: yaml("cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: root\n    host: backup-a.lan\n    syncs: []\n  - id: b\n    user: backup\n    host: backup-a.lan\n    syncs: []\n") => ["bkc::import_conflict"];
    import_renamed: yaml("cron_schedule: '0 2 * * *'\njobs:\n  - id: my job\n    user: root\n    host: backup-a.lan\n    syncs: []\n") => ["bkc::import_renamed"];
    import_waits_on_job: yaml("cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: root\n    host: backup-a.lan\n    lock_files:\n      - type: local\n        path: /run/a.lock\n    syncs: []\n  - id: b\n    user: root\n    host: backup-a.lan\n    blocks_on:\n      - type: local\n        lock_file_path: /run/a.lock\n        wait_time: 60\n        timeout: 3600\n    syncs: []\n") => ["bkc::import_waits_on_job"];
    import_no_timeout: yaml("cron_schedule: '0 2 * * *'\njobs:\n  - id: a\n    user: root\n    host: backup-a.lan\n    blocks_on:\n      - type: remote\n        host: nas.lan\n        lock_file_path: /run/backup.lock\n        wait_time: 60\n    syncs: []\n") => ["bkc::import_no_timeout"];
}

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

/// Each code in `Code::ALL` is given by at least one case above, so a new code cannot ship
/// without its exact text under test.
#[test]
fn every_code_has_a_case() {
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !CASES.iter().any(|(_, codes)| codes.contains(c)))
        .collect();
    assert!(
        missing.is_empty(),
        "no case in tests/diagnostics.rs gives {missing:?}: add one to `cases!`"
    );
}

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
