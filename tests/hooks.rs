//! The database recipes of docs/HOOKS.md, run for real: a dump hook before the job's sync, with a
//! writer changing the database all the while, on namespace hosts with real sshd and rsync
//! (tests/harness). Each writer moves value from one row to another in one transaction after
//! another, so the sum of the rows is the same in every consistent copy and differs in a copy
//! made of pieces of different moments.

use crate::common;
use crate::harness::site::Site;

use std::process::{Child, Stdio};

/// The sum every consistent copy holds: two rows of 1,000,000 and 0 that the writer moves
/// value between.
const TOTAL: i64 = 1_000_000;

/// A background writer in a host, killed when dropped.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn writer(site: &Site, host: &str, script: &str) -> Writer {
    let c = site
        .net
        .cmd(site.h(host), &["sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Writer(c)
}

/// Run `job` on host `on` through its spec, as its timer would.
fn run(site: &Site, job: &str, on: &str) {
    let spec = format!("/etc/bkc/jobs/{job}.json");
    let o = site
        .net
        .cmd(site.h(on), &[crate::harness::runner(), &spec])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{job}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
#[ignore = "needs root, sshd, rsync and sqlite3 (namespace hosts)"]
fn sqlite_backup_before_a_push() {
    let _g = crate::harness::shared();
    if !common::require_tool("sqlite3") {
        return;
    }
    // docs/HOOKS.md's SQLite recipe, its paths under the hosts' own /srv.
    let jobs = r#"
job "notes" on="desktop" {
    hook "before" "rm -f /srv/dump/notes.db.new && sqlite3 -cmd '.timeout 60000' /srv/notes/notes.db \"VACUUM INTO '/srv/dump/notes.db.new'\" && mv /srv/dump/notes.db.new /srv/dump/notes.db" writes="/srv/dump"
    sync "/srv/dump/" "backup_a:/srv/backup/notes/"
}
"#;
    let Some(site) = Site::new(&["desktop", "backup_a"], jobs) else {
        return;
    };
    site.sh_ok(
        "desktop",
        &format!(
            // /srv/dump: the unit's ExecStartPre makes a hook's `writes` directory.
            "mkdir -p /srv/notes /srv/dump && sqlite3 /srv/notes/notes.db \
             'PRAGMA journal_mode=WAL; CREATE TABLE a(id INTEGER PRIMARY KEY, v INTEGER); \
              INSERT INTO a VALUES (1, {TOTAL}), (2, 0); \
              CREATE TABLE pad(x BLOB); \
              INSERT INTO pad SELECT randomblob(4096) FROM generate_series(1, 2000);'"
        ),
    );
    // Each transaction moves 1 from row 1 to row 2 and writes a page of padding between the
    // two updates, so a copy taken page by page in the middle would see one without the other.
    let _w = writer(
        &site,
        "desktop",
        "while :; do sqlite3 /srv/notes/notes.db 'BEGIN; UPDATE a SET v = v - 1 WHERE id = 1; \
         INSERT INTO pad VALUES (randomblob(4096)); UPDATE a SET v = v + 1 WHERE id = 2; COMMIT;' \
         2>/dev/null; done",
    );
    for _ in 0..3 {
        run(&site, "notes", "desktop");
        let copy = "/srv/backup/notes/notes.db";
        assert_eq!(
            site.sh_ok(
                "backup_a",
                &format!("sqlite3 {copy} 'PRAGMA integrity_check;'")
            ),
            "ok"
        );
        let sum: i64 = site
            .sh_ok(
                "backup_a",
                &format!("sqlite3 {copy} 'SELECT sum(v) FROM a;'"),
            )
            .parse()
            .unwrap();
        assert_eq!(sum, TOTAL, "the copy mixes two moments of the database");
    }
    // The writer was writing all along: the last copy is not the first state.
    let moved: i64 = site
        .sh_ok(
            "backup_a",
            "sqlite3 /srv/backup/notes/notes.db 'SELECT v FROM a WHERE id = 2;'",
        )
        .parse()
        .unwrap();
    assert!(moved > 0, "the writer never ran during the backups");
}

/// The directory of PostgreSQL's server programs (initdb, pg_ctl), newest version first.
fn pg_bin() -> Option<String> {
    let mut dirs: Vec<String> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin").display().to_string())
        .filter(|d| std::path::Path::new(d).join("pg_ctl").exists())
        .collect();
    dirs.sort_by_key(|d| {
        let v = d.trim_end_matches("/bin").rsplit('/').next().unwrap_or("");
        v.parse::<u32>().unwrap_or(0)
    });
    dirs.pop()
}

/// A PostgreSQL cluster of the test's own in a host's /srv, stopped when dropped.
struct Cluster<'a> {
    site: &'a Site,
    host: &'a str,
    bin: String,
}

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        let _ = self.site.net.sh(
            self.site.h(self.host),
            &format!(
                "runuser -u postgres -- {}/pg_ctl -D /srv/pg/data -m immediate stop",
                self.bin
            ),
        );
    }
}

#[test]
#[ignore = "needs root, sshd, rsync and PostgreSQL (namespace hosts)"]
fn postgres_dump_before_a_pull() {
    let _g = crate::harness::shared();
    let Some(bin) = pg_bin() else {
        // Fails under CI=true, like every missing tool.
        common::require_tool("/usr/lib/postgresql/VERSION/bin/pg_ctl");
        return;
    };
    if !common::require_tool("pg_dump") || !common::require_tool("runuser") {
        return;
    }
    // docs/HOOKS.md's PostgreSQL recipe, its paths under the hosts' own /srv, and the server's
    // socket in /srv/pg (the test's own cluster, not the machine's).
    let jobs = r#"
job "pull-db" on="vault" {
    hook "before" "runuser -u postgres -- pg_dump --host=/srv/pg --format=custom --file=/srv/dump/app.dump app" host="db"
    hook "before" "runuser -u postgres -- pg_dumpall --host=/srv/pg --globals-only --file=/srv/dump/globals.sql" host="db"
    sync "db:/srv/dump/" "/srv/snapshots/db/postgres/" {
        opts "-a" "--delete"
        snapshot keep-daily=14
    }
}
"#;
    let Some(site) = Site::new(&["vault", "db"], jobs) else {
        return;
    };
    site.sh_ok(
        "db",
        &format!(
            "install -d -o postgres -g postgres -m 0700 /srv/pg /srv/dump && \
             runuser -u postgres -- {bin}/initdb -D /srv/pg/data -A trust -U postgres >/dev/null"
        ),
    );
    site.sh_ok(
        "db",
        &format!(
            "runuser -u postgres -- {bin}/pg_ctl -D /srv/pg/data -w -l /srv/pg/log \
             -o \"-k /srv/pg -c listen_addresses=''\" start >/dev/null"
        ),
    );
    let _cluster = Cluster {
        site: &site,
        host: "db",
        bin: bin.clone(),
    };
    let psql = |db: &str, sql: &str| {
        site.sh_ok("db",
            &format!(
                "runuser -u postgres -- psql -h /srv/pg -d {db} -Atq -v ON_ERROR_STOP=1 -c \"{sql}\""
            ),
        )
    };
    psql("postgres", "CREATE DATABASE app");
    psql(
        "app",
        &format!(
            "CREATE TABLE a(id int PRIMARY KEY, v bigint); INSERT INTO a VALUES (1, {TOTAL}), (2, 0); \
             CREATE TABLE pad AS SELECT g AS n, md5(g::text) AS t FROM generate_series(1, 200000) g"
        ),
    );
    let _w = writer(
        &site,
        "db",
        "while :; do runuser -u postgres -- psql -h /srv/pg -d app -q -c \
         'BEGIN; UPDATE a SET v = v - 1 WHERE id = 1; INSERT INTO pad VALUES (0, md5(random()::text)); \
          UPDATE a SET v = v + 1 WHERE id = 2; COMMIT;' >/dev/null 2>&1; done",
    );
    for _ in 0..2 {
        run(&site, "pull-db", "vault");
    }
    // Back from the latest snapshot on vault into a new database of the cluster, as a restore
    // would put it.
    let dump = site.srv("vault", "snapshots/db/postgres/latest/app.dump");
    let back = site.srv("db", "pg/restored.dump");
    std::fs::copy(&dump, &back).unwrap();
    assert!(
        site.srv("vault", "snapshots/db/postgres/latest/globals.sql")
            .exists()
    );
    site.sh_ok("db", "chown postgres /srv/pg/restored.dump");
    psql("postgres", "CREATE DATABASE app_restored");
    site.sh_ok(
        "db",
        "runuser -u postgres -- pg_restore --host=/srv/pg --dbname=app_restored \
         --exit-on-error /srv/pg/restored.dump",
    );
    let sum: i64 = psql("app", "SELECT sum(v) FROM a").parse().unwrap();
    assert_eq!(sum, TOTAL, "the live database");
    let restored: i64 = psql("app_restored", "SELECT sum(v) FROM a")
        .parse()
        .unwrap();
    assert_eq!(
        restored, TOTAL,
        "the dump mixes two moments of the database"
    );
}

/// Every recipe in docs/HOOKS.md compiles without a warning (but the hosts' unpinned keys), on
/// hosts named as there (a bare `hook` line inside a job of its host).
#[test]
fn the_recipes_compile() {
    let doc = std::fs::read_to_string("docs/HOOKS.md").unwrap();
    let hosts = "host \"vault\"\nhost \"db\"\nhost \"desktop\"\nhost \"backup_a\"\n";
    let mut blocks = 0;
    for block in doc.split("```kdl\n").skip(1) {
        let kdl = block.split("```").next().unwrap();
        let body = if kdl.starts_with("job ") {
            kdl.to_string()
        } else {
            format!(
                "job \"recipe\" on=\"vault\" {{\n    schedule \"daily\"\n{kdl}    sync \"db:/var/backups/mysql/\" \"/srv/mysql/\"\n}}\n"
            )
        };
        let c = bkc::analyze::compile("HOOKS.md", &format!("{hosts}{body}"));
        assert!(
            c.diagnostics
                .iter()
                .all(|d| d.code == bkc::diag::Code::NoHostKey),
            "{kdl}\n{}",
            bkc::diag::render(&c.diagnostics, false, 100)
        );
        blocks += 1;
    }
    assert_eq!(blocks, 3, "docs/HOOKS.md's recipes");
}
