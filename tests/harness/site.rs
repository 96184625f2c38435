//! A topology on the namespaced hosts of [`super::Net`], as the operator sees it: each
//! topology host is one of the harness's, with the files `bkc build` wrote for it in its own
//! /etc/bkc and the test's key as the jobs' key; `bkc` runs from the bridge's namespace.
//! For the restore tests and benchmarks.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::Net;

/// What bkc printed and how it ended.
pub struct Said {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl Said {
    pub fn of(o: Output) -> Said {
        Said {
            code: o.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&o.stdout).into_owned(),
            err: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.out, self.err
        )
    }
}

/// A topology on namespaced hosts: each topology host is one of the harness's, with the files
/// `bkc build` wrote for it in its /etc/bkc.
pub struct Site {
    pub net: Net,
    /// Topology name -> harness host.
    pub names: Vec<(&'static str, String)>,
    pub file: PathBuf,
}

impl Site {
    /// `hosts` are the topology's host names in order; `jobs` is the rest of the topology.
    pub fn new(hosts: &[&'static str], jobs: &str) -> Option<Site> {
        Site::new_with(hosts, "", jobs)
    }

    /// [`Site::new`], with `defaults` lines added to the topology's `defaults`.
    pub fn new_with(hosts: &[&'static str], defaults: &str, jobs: &str) -> Option<Site> {
        let net = Net::new(hosts.len())?;
        let names: Vec<(&'static str, String)> = hosts
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, format!("h{}", i + 1)))
            .collect();
        let mut kdl = format!(
            "defaults {{\n    ssh-keys \"operator\"\n    identity \"/etc/bkc/id_ed25519\"\n    lock-dir \"/srv/bkc/locks\"\n    state-dir \"/srv/bkc/state\"\n    runner \"{}\"\n    lock-wait \"1s\"\n{defaults}}}\n",
            super::runner()
        );
        for (name, h) in &names {
            let key = std::fs::read_to_string(net.host(h).dir.join("host_key.pub")).unwrap();
            let key: Vec<&str> = key.split_whitespace().take(2).collect();
            kdl.push_str(&format!(
                "host \"{name}\" address=\"{}\" {{\n    host-key \"{}\"\n}}\n",
                net.host(h).addr,
                key.join(" ")
            ));
        }
        kdl.push_str(jobs);
        let file = net.dir.join("site.kdl");
        std::fs::write(&file, kdl).unwrap();
        let out = net.dir.join("out");
        super::run_ok(
            Command::new(crate::common::bin("bkc"))
                .arg("build")
                .arg(&file)
                .arg("-o")
                .arg(&out),
        );
        for (name, h) in &names {
            let etc = out.join(name).join("etc/bkc");
            let key = net.dir.join("client_key");
            let script = format!(
                "mkdir -p /etc/bkc && cp -a {}/. /etc/bkc/ && cp {} /etc/bkc/id_ed25519 && chmod 600 /etc/bkc/id_ed25519",
                etc.display(),
                key.display()
            );
            let o = net.sh(h, &script);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        Some(Site { net, names, file })
    }

    pub fn h(&self, name: &str) -> &str {
        &self.names.iter().find(|(n, _)| *n == name).unwrap().1
    }

    /// The real path of `/srv/<rel>` on topology host `name`.
    pub fn srv(&self, name: &str, rel: &str) -> PathBuf {
        self.net.srv(self.h(name)).join(rel)
    }

    /// stdout of a shell script run in topology host `name`, trimmed; it must succeed.
    pub fn sh_ok(&self, name: &str, script: &str) -> String {
        let o = self.net.sh(self.h(name), script);
        assert!(
            o.status.success(),
            "{name}: {script}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Run `job` on its host `on` as if it were `day`.
    pub fn run_job(&self, job: &str, on: &str, day: &str) {
        let spec = format!("/etc/bkc/jobs/{job}.json");
        let o = self
            .net
            .cmd(self.h(on), &[super::runner(), &spec])
            .env("BKC_RUN_NOW", day)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{job} on {day}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// `bkc ARGS` as the operator runs it: from the bridge's namespace, with the operator's key,
    /// standard input not a terminal.
    pub fn bkc_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.net.ctl])
            .arg(crate::common::bin("bkc"))
            .args(args)
            .arg("--ssh-option")
            .arg(format!(
                "IdentityFile={}",
                self.net.dir.join("client_key").display()
            ))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    pub fn bkc(&self, args: &[&str]) -> Said {
        Said::of(self.bkc_cmd(args).output().unwrap())
    }

    /// `bkc ARGS` on a terminal (`script` gives it one), with `answer` typed into it.
    pub fn bkc_tty(&self, args: &[&str], answer: &str) -> Said {
        let c = self.bkc_cmd(args);
        let line: Vec<String> = std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| bkc::deploy::quote(a.to_str().unwrap()))
            .collect();
        let mut tty = Command::new("script");
        tty.args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = tty.spawn().unwrap();
        use std::io::Write as _;
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        Said::of(child.wait_with_output().unwrap())
    }

    pub fn file(&self) -> String {
        self.file.display().to_string()
    }
}
