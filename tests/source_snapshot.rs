//! `source-snapshot "btrfs"` on a real btrfs file system: a loop-mounted image in a namespace
//! host, the job's push to another host through real sshd and rsync (tests/harness). The sync
//! copies the source as it was when the job's locks were held, whatever is written meanwhile;
//! the snapshot is gone after the run, and after a killed run by the next.

use crate::common;
use crate::harness::site::Site;
use crate::harness::{self, Live};

use std::path::Path;
use std::time::Duration;

const MIB: usize = 1 << 20;

/// The snapshot the runner takes of the source for sync 0 of job `home`.
const FROZEN: &str = "/srv/vol/home/.bkc-snapshots/home.0";

/// Whether `path` exists as `host` sees it.
fn exists(site: &Site, host: &str, path: &str) -> bool {
    site.net
        .sh(site.h(host), &format!("test -e {path}"))
        .status
        .success()
}

/// The bytes of the copy on backup_a, counted by value: (count of `A`, count of `B`).
fn copy_bytes(site: &Site) -> (usize, usize) {
    let got = std::fs::read(site.srv("backup_a", "backup/home/big.bin")).unwrap();
    assert_eq!(got.len(), 8 * MIB);
    let a = got.iter().filter(|b| **b == b'A').count();
    (a, got.len() - a)
}

/// `pid` and every process under it, parents first.
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        let children =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        all.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
        i += 1;
    }
    all
}

/// The runner of `home` on desktop, started; returns once its snapshot exists.
fn start_and_wait_for_the_snapshot(site: &Site) -> Live {
    let cmd = site.net.cmd(
        site.h("desktop"),
        &[harness::runner(), "/etc/bkc/jobs/home.json"],
    );
    let live = Live::new(site.net.spawn(cmd));
    assert!(
        harness::poll(Duration::from_secs(20), Duration::from_millis(5), || {
            exists(site, "desktop", FROZEN)
        }),
        "no snapshot appeared"
    );
    live
}

#[test]
#[ignore = "needs root, sshd, rsync, btrfs-progs and a loop device (namespace hosts)"]
fn a_sync_copies_the_source_as_it_was_when_it_began() {
    let _g = harness::shared();
    if !common::require_tool("mkfs.btrfs") || !common::require_tool("btrfs") {
        return;
    }
    // The bandwidth limit makes the copy of 8 MiB last a few seconds, long enough to write into
    // the source while it runs.
    let jobs = r#"
job "home" on="desktop" {
    sync "/srv/vol/home/" "backup_a:/srv/backup/home/" {
        opts "-a" "--delete"
        bwlimit "2M"
        source-snapshot "btrfs"
    }
}
"#;
    let Some(site) = Site::new(&["desktop", "backup_a"], jobs) else {
        return;
    };
    let image = site.net.dir.join("btrfs.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(160 * MIB as u64)
        .unwrap();
    site.sh_ok(
        "desktop",
        &format!(
            "mkfs.btrfs -q {} && mkdir -p /srv/vol && mount -o loop {} /srv/vol && \
             btrfs -q subvolume create /srv/vol/home",
            image.display(),
            image.display()
        ),
    );
    // Unmounted when the test ends, pass or fail, before the host goes.
    struct Mounted<'a>(&'a Site);
    impl Drop for Mounted<'_> {
        fn drop(&mut self) {
            let _ = self.0.net.sh(self.0.h("desktop"), "umount -l /srv/vol");
        }
    }
    let _m = Mounted(&site);
    let big = "/srv/vol/home/big.bin";
    site.sh_ok(
        "desktop",
        // An old time: the rewrite below changes it, however soon it comes (rsync's quick check
        // compares whole seconds).
        &format!(
            "head -c {} /dev/zero | tr '\\0' A > {big} && touch -d 2026-01-01 {big}",
            8 * MIB
        ),
    );

    // 1. Half the file is rewritten once the snapshot is taken: the copy is the file before.
    let live = start_and_wait_for_the_snapshot(&site);
    site.sh_ok(
        "desktop",
        &format!(
            "head -c {} /dev/zero | tr '\\0' B | dd of={big} conv=notrunc status=none",
            4 * MIB
        ),
    );
    let ran = live.finish(60);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        copy_bytes(&site),
        (8 * MIB, 0),
        "a half-written file was copied"
    );
    assert!(
        !exists(&site, "desktop", FROZEN),
        "the snapshot outlived its run"
    );
    assert!(
        !site.srv("backup_a", "backup/home/.bkc-snapshots").exists(),
        "bkc's snapshot directory was copied as data"
    );

    // 2. A run killed in the middle leaves its snapshot; the next run removes it, takes its own
    //    of the source as it is now, and removes that one too.
    // Killed as systemd kills a unit's processes: the runner and all it started at once.
    let live = start_and_wait_for_the_snapshot(&site);
    let tree = descendants(live.pid() as u32);
    for pid in &tree {
        harness::signal(*pid as i32, libc::SIGKILL);
    }
    let _ = live.finish(30);
    assert!(
        harness::poll(Duration::from_secs(10), Duration::from_millis(20), || {
            tree.iter()
                .all(|p| !Path::new(&format!("/proc/{p}")).exists())
        }),
        "the killed run's processes are gone"
    );
    assert!(
        exists(&site, "desktop", FROZEN),
        "the killed run's snapshot"
    );
    let cmd = site.net.cmd(
        site.h("desktop"),
        &[harness::runner(), "/etc/bkc/jobs/home.json"],
    );
    let ran = harness::collect(site.net.spawn(cmd));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(copy_bytes(&site), (4 * MIB, 4 * MIB));
    assert!(!exists(&site, "desktop", FROZEN));

    // 3. What the unit runs outside the sandbox removes a snapshot the sandboxed run could not.
    site.sh_ok(
        "desktop",
        &format!("btrfs -q subvolume snapshot -r /srv/vol/home {FROZEN}"),
    );
    let o = site
        .net
        .cmd(
            site.h("desktop"),
            &[
                harness::runner(),
                "drop-source-snapshots",
                "/etc/bkc/jobs/home.json",
            ],
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!exists(&site, "desktop", FROZEN));
    assert!(Path::new(&image).exists());

    // 4. A subvolume nested in the source would be an empty directory in the snapshot, and the
    //    deleting sync would then empty it in the copy: the sync is refused, the copy untouched.
    site.sh_ok(
        "desktop",
        "btrfs -q subvolume create /srv/vol/home/nested && echo keep > /srv/vol/home/nested/f",
    );
    let cmd = site.net.cmd(
        site.h("desktop"),
        &[harness::runner(), "/etc/bkc/jobs/home.json"],
    );
    let ran = harness::collect(site.net.spawn(cmd));
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(
            "/srv/vol/home/nested inside /srv/vol/home is a subvolume or mount of its own"
        ),
        "{}",
        ran.stderr
    );
    assert_eq!(
        copy_bytes(&site),
        (4 * MIB, 4 * MIB),
        "the copy was changed"
    );
    assert!(!exists(&site, "desktop", FROZEN));
}

#[test]
#[ignore = "needs root, sshd and rsync (namespace hosts)"]
fn a_source_that_is_no_subvolume_fails_the_sync_and_says_so() {
    let _g = harness::shared();
    let jobs = r#"
job "home" on="desktop" {
    sync "/srv/plain/" "backup_a:/srv/backup/home/" {
        source-snapshot "btrfs"
    }
}
"#;
    let Some(site) = Site::new(&["desktop", "backup_a"], jobs) else {
        return;
    };
    site.sh_ok("desktop", "mkdir -p /srv/plain && echo x > /srv/plain/f");
    let cmd = site.net.cmd(
        site.h("desktop"),
        &[harness::runner(), "/etc/bkc/jobs/home.json"],
    );
    let ran = harness::collect(site.net.spawn(cmd));
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("/srv/plain is not the root of a btrfs subvolume"),
        "{}",
        ran.stderr
    );
    assert!(!site.srv("backup_a", "backup/home/f").exists());
}

/// `source-snapshot "zfs"` or `"lvm"` on a volume made on a loop file by `setup` (which
/// mounts it at `$W/vol` with `f` holding "before"), the unit's steps run in its order:
/// drop the leftovers, take the snapshot under the job's locks, run the job, drop. A change
/// made after the snapshot was taken does not reach the copy; afterwards no mount and no
/// snapshot is left (`listed` prints the job's snapshots, which must print nothing).
fn a_mounted_snapshot_is_one_moment(kind: &str, setup: &str, listed: &str, teardown: &str) {
    let w = std::path::PathBuf::from(format!("/var/tmp/bkc-{kind}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&w);
    std::fs::create_dir_all(w.join("vol")).unwrap();
    let sh = |script: &str| {
        let o = std::process::Command::new("sh")
            .arg("-ec")
            .arg(script)
            .env("W", &w)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    struct Teardown<'a>(&'a dyn Fn(&str) -> String, &'a str);
    impl Drop for Teardown<'_> {
        fn drop(&mut self) {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.0)(self.1)));
        }
    }
    sh(setup);
    let _t = Teardown(&sh, teardown);
    let vol = w.join("vol");
    let line = sh("cat \"$W/snapshot-line\"");
    let kdl = format!(
        "defaults {{\n    lock-dir \"{w}/locks\"\n    state-dir \"{w}/state\"\n    runner \"{run}\"\n}}\nhost \"box\"\njob \"home\" on=\"box\" {{\n    sync \"{vol}/\" \"{w}/copy/\" {{\n        {line}\n    }}\n}}\n",
        w = w.display(),
        run = harness::runner(),
        vol = vol.display(),
    );
    std::fs::write(w.join("site.kdl"), kdl).unwrap();
    harness::run_ok(
        std::process::Command::new(common::bin("bkc"))
            .arg("build")
            .arg(w.join("site.kdl"))
            .arg("-o")
            .arg(w.join("out")),
    );
    let spec = w.join("out/box/etc/bkc/jobs/home.json");
    let step = |args: &[&str]| {
        let o = std::process::Command::new(harness::runner())
            .args(args)
            .arg(&spec)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let frozen = std::path::PathBuf::from(bkc_contract::names::mounted_snapshot_path("home", 0));
    step(&["drop-source-snapshots"]);
    step(&["take-source-snapshots"]);
    assert_eq!(
        std::fs::read_to_string(frozen.join("f")).unwrap(),
        "before\n"
    );
    std::fs::write(vol.join("f"), "after\n").unwrap();
    step(&[]);
    assert_eq!(
        std::fs::read_to_string(w.join("copy/f")).unwrap(),
        "before\n",
        "the live source was copied, not the snapshot"
    );
    assert!(!w.join("copy/.bkc-snapshots").exists());
    step(&["drop-source-snapshots"]);
    assert!(
        !frozen.exists(),
        "the snapshot's mount point outlived the run"
    );
    assert_eq!(sh(listed), "", "the snapshot outlived the run");
}

#[test]
#[ignore = "needs root and ZFS (the zfs kernel module and zfsutils-linux), which these machines cannot load"]
fn a_zfs_source_snapshot_is_one_moment() {
    if !common::require_root("ZFS") || !common::require_tool("zpool") {
        return;
    }
    let pool = format!("bkct{}", std::process::id());
    a_mounted_snapshot_is_one_moment(
        "zfs",
        &format!(
            "truncate -s 256M \"$W/zfs.img\"
             zpool create -m \"$W/vol\" {pool} \"$W/zfs.img\"
             echo before > \"$W/vol/f\"
             echo 'source-snapshot \"zfs\" dataset=\"{pool}\"' > \"$W/snapshot-line\""
        ),
        &format!("zfs list -H -t snapshot -o name -r {pool}"),
        &format!("zpool destroy -f {pool}"),
    );
}

#[test]
#[ignore = "needs root and LVM (device-mapper in the kernel, lvm2), which these machines lack"]
fn an_lvm_source_snapshot_is_one_moment() {
    if !common::require_root("LVM") || !common::require_tool("lvcreate") {
        return;
    }
    let vg = format!("bkct{}", std::process::id());
    a_mounted_snapshot_is_one_moment(
        "lvm",
        &format!(
            "truncate -s 256M \"$W/lvm.img\"
             dev=$(losetup -f --show \"$W/lvm.img\")
             echo \"$dev\" > \"$W/loop\"
             pvcreate -q \"$dev\" && vgcreate -q {vg} \"$dev\"
             lvcreate -q -L 96M -n home {vg}
             mkfs.ext4 -q /dev/{vg}/home && mount /dev/{vg}/home \"$W/vol\"
             echo before > \"$W/vol/f\"
             echo 'source-snapshot \"lvm\" volume=\"{vg}/home\" size=\"32M\"' > \"$W/snapshot-line\""
        ),
        &format!("lvs --noheadings -o lv_name {vg} | grep bkc- || true"),
        &format!(
            "umount \"$W/vol\"; vgremove -f -q {vg}; losetup -d \"$(cat \"$W/loop\")\""
        ),
    );
}
