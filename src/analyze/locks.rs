//! Locks and waits: resolve `blocks-on`, refuse cycles, derive the exclusions the file left out,
//! and give every job its list of locks in the one global order.
//!
//! The protocol (docs/LOCKS.md): a job holds `<lock-dir>/<job>.lock` exclusively on every host
//! its data touches, and for each job it blocks on, that job's lock *shared* on a host both
//! reach. So the job it blocks on cannot start meanwhile, jobs blocking on the same job can
//! still run side by side, and taking all locks sorted by (host, path) rules out deadlock.

use std::collections::{BTreeMap, BTreeSet};

use miette::SourceSpan;

use super::jobs::{Draft, endpoint};
use super::{Ctx, Settings, paths};
use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::spec::{Location, Lock, LockMode};
use crate::syntax::ast;
use crate::topology::{Derived, Host, Job, Relation};

struct Edge {
    to: String,
    wait: u64,
    timeout: u64,
    span: Option<SourceSpan>,
}

pub(crate) fn derive(
    cx: &mut Ctx,
    asts: &[ast::Job],
    mut drafts: BTreeMap<String, Draft>,
    hosts: &BTreeMap<String, Host>,
    s: &Settings,
) -> (BTreeMap<String, Job>, Vec<Derived>, Vec<Vec<String>>) {
    let mut edges = written_edges(cx, asts, &drafts, s);
    let cycles = cycles(cx, &edges);
    let derived = exclusions(cx, &drafts, &mut edges, s);

    let touched: BTreeMap<String, BTreeSet<String>> = drafts
        .iter()
        .map(|(name, d)| {
            let mut t = BTreeSet::from([d.job.host.clone()]);
            for sy in &d.job.spec.syncs {
                t.insert(sy.source.host.clone());
                t.insert(sy.dest.host.clone());
            }
            (name.clone(), t)
        })
        .collect();
    let homes: BTreeMap<String, String> = drafts
        .iter()
        .map(|(n, d)| (n.clone(), d.job.host.clone()))
        .collect();
    let places = Places {
        hosts,
        touched: &touched,
        homes: &homes,
    };
    for (name, draft) in drafts.iter_mut() {
        let mut locks = places.own_locks(name, s);
        for e in &edges[name] {
            locks.push(places.shared_lock(&draft.job.host, name, e));
            draft.job.blocks_on.push(Relation {
                job: e.to.clone(),
                derived: e.span.is_none(),
            });
        }
        locks.sort_by(|a, b| a.at.cmp(&b.at));
        for l in &locks {
            if l.at.host != draft.job.host && !draft.job.spec.hosts.contains_key(&l.at.host) {
                let h = &hosts[&l.at.host];
                draft
                    .job
                    .spec
                    .hosts
                    .insert(h.name.clone(), endpoint(h, &s.runner));
            }
        }
        draft.job.spec.locks = locks;
    }
    let jobs = drafts.into_iter().map(|(k, d)| (k, d.job)).collect();
    (jobs, derived, cycles)
}

/// Each job's `blocks-on`, resolved and checked.
fn written_edges(
    cx: &mut Ctx,
    asts: &[ast::Job],
    drafts: &BTreeMap<String, Draft>,
    s: &Settings,
) -> BTreeMap<String, Vec<Edge>> {
    let written: BTreeSet<&str> = asts.iter().map(|j| j.name.value.as_str()).collect();
    let mut edges = BTreeMap::new();
    for (name, draft) in drafts {
        let mut out: Vec<Edge> = Vec::new();
        for b in &asts[draft.ast].blocks_on {
            if let Some(e) = edge(cx, name, b, &out, drafts, &written, s) {
                out.push(e);
            }
        }
        edges.insert(name.clone(), out);
    }
    edges
}

/// One `blocks-on` of job `name`, unless it names the job itself, no job, or a job `earlier`
/// already names.
fn edge(
    cx: &mut Ctx,
    name: &str,
    b: &ast::BlocksOn,
    earlier: &[Edge],
    drafts: &BTreeMap<String, Draft>,
    written: &BTreeSet<&str>,
    s: &Settings,
) -> Option<Edge> {
    let target = &b.job.value;
    if target == name {
        cx.push(
            Diagnostic::error(Code::SelfWait, format!("job `{name}` waits on itself"))
                .label(b.job.span, "this is the job's own name")
                .help("a job never overlaps itself (its own lock sees to that); remove this blocks-on"),
        );
        return None;
    }
    if !drafts.contains_key(target) {
        // A job that is written but had errors of its own was reported already.
        if !written.contains(target.as_str()) {
            let diag = Diagnostic::error(
                Code::UnknownJob,
                format!("blocks-on names job `{target}`, which is not defined"),
            )
            .label(b.job.span, "unknown job");
            cx.push(
                match did_you_mean(target, drafts.keys().map(String::as_str)) {
                    Some(m) => diag.help(format!("did you mean `{m}`?")),
                    None => diag.help("name a job defined in this file"),
                },
            );
        }
        return None;
    }
    if let Some(prev) = earlier.iter().find(|e| &e.to == target) {
        let mut diag = Diagnostic::error(
            Code::DuplicateSetting,
            format!("blocks-on \"{target}\" is given twice"),
        )
        .label(b.span, "given again here");
        if let Some(p) = prev.span {
            diag = diag.also(p, "first given here");
        }
        cx.push(diag.help("keep one"));
        return None;
    }
    let wait = b
        .wait
        .as_ref()
        .and_then(|v| cx.duration(v, false))
        .unwrap_or(s.lock_wait);
    let timeout = b
        .timeout
        .as_ref()
        .and_then(|v| cx.duration(v, false))
        .unwrap_or(s.lock_timeout);
    Some(Edge {
        to: target.clone(),
        wait,
        timeout,
        span: Some(b.job.span),
    })
}

/// Where the jobs' locks can go: the hosts each job's data touches, and each job's own host.
struct Places<'a> {
    hosts: &'a BTreeMap<String, Host>,
    touched: &'a BTreeMap<String, BTreeSet<String>>,
    homes: &'a BTreeMap<String, String>,
}

impl Places<'_> {
    fn lock_path(&self, host: &str, job: &str) -> String {
        format!("{}/{job}.lock", self.hosts[host].lock_dir)
    }

    /// The job's own lock, exclusive, on every host its data touches.
    fn own_locks(&self, job: &str, s: &Settings) -> Vec<Lock> {
        self.touched[job]
            .iter()
            .map(|h| Lock {
                at: Location {
                    host: h.clone(),
                    path: self.lock_path(h, job),
                },
                mode: LockMode::Exclusive,
                owner: job.to_string(),
                wait_secs: s.lock_wait,
                timeout_secs: s.lock_timeout,
            })
            .collect()
    }

    /// The lock of the job `e` leads to, shared, on a host where that job holds it.
    fn shared_lock(&self, home: &str, job: &str, e: &Edge) -> Lock {
        let theirs = &self.touched[&e.to];
        // Prefer our own host (a local lock wakes its waiter at once), then any host both
        // touch, then the other job's own host, which it always locks.
        let host = if theirs.contains(home) {
            home.to_string()
        } else {
            self.touched[job]
                .intersection(theirs)
                .next()
                .cloned()
                .unwrap_or_else(|| self.homes[&e.to].clone())
        };
        Lock {
            at: Location {
                path: self.lock_path(&host, &e.to),
                host,
            },
            mode: LockMode::Shared,
            owner: e.to.clone(),
            wait_secs: e.wait,
            timeout_secs: e.timeout,
        }
    }
}

/// Refuse chains of one-way waits that close on themselves. Two jobs that block on each other
/// are the normal way to say "never at the same time", and so is a group of jobs that all block
/// on each other; only edges without their reverse make a circle a mistake (a waits on b, b on
/// c, c on a: each one-way, so what was meant is unclear). A circle of one-way edges has at least
/// three jobs, since a self-wait is refused before and a two-job circle is a mutual pair.
/// Returns each circle reported, its jobs in waiting order.
fn cycles(cx: &mut Ctx, edges: &BTreeMap<String, Vec<Edge>>) -> Vec<Vec<String>> {
    let one_way = |from: &str, to: &str| !edges[to].iter().any(|e| e.to == from);
    let mut found = Vec::new();
    for start in edges.keys() {
        // Depth-first from `start` through jobs that sort after it (so each circle is found
        // once, from its smallest member), each visited at most once: a job from which
        // `start` could not be reached before cannot reach it now.
        let mut visited: BTreeSet<&str> = BTreeSet::new();
        let mut path: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        while let Some((node, next)) = path.last_mut() {
            let node: &str = node;
            let out = &edges[node];
            if *next >= out.len() {
                path.pop();
                continue;
            }
            let to = out[*next].to.as_str();
            *next += 1;
            if !one_way(node, to) {
                continue;
            }
            if to == start {
                let ring: Vec<&str> = path.iter().map(|(n, _)| *n).collect();
                report_cycle(cx, edges, &ring);
                found.push(ring.iter().map(|n| n.to_string()).collect());
                break;
            }
            if to > start.as_str() && visited.insert(to) {
                path.push((to, 0));
            }
        }
    }
    found
}

fn report_cycle(cx: &mut Ctx, edges: &BTreeMap<String, Vec<Edge>>, members: &[&str]) {
    let mut ring: Vec<&str> = members.to_vec();
    ring.push(members[0]);
    let mut diag = Diagnostic::error(
        Code::WaitCycle,
        format!(
            "these jobs wait on each other in a circle: {}",
            ring.join(" → ")
        ),
    );
    for (i, pair) in ring.windows(2).enumerate() {
        let span = edges[pair[0]]
            .iter()
            .find(|e| e.to == pair[1])
            .and_then(|e| e.span);
        if let Some(span) = span {
            let text = format!("`{}` waits on `{}`", pair[0], pair[1]);
            diag = if i == 0 {
                diag.label(span, text)
            } else {
                diag.also(span, text)
            };
        }
    }
    cx.push(diag.help(
        "a circle of waits is a mistake about what waits for what; remove one blocks-on from it (two jobs that must never overlap may block on each other)",
    ));
}

/// A place one job's sync or hook reads or writes.
struct Touch<'a> {
    job: &'a str,
    at: &'a Location,
    write: bool,
    span: SourceSpan,
}

/// Two jobs that touch overlapping paths on one host, one of them writing, must not run at
/// once. Where the file relates them in neither direction, make one wait on the other.
fn exclusions(
    cx: &mut Ctx,
    drafts: &BTreeMap<String, Draft>,
    edges: &mut BTreeMap<String, Vec<Edge>>,
    s: &Settings,
) -> Vec<Derived> {
    let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut derived = Vec::new();
    for touches in touches_by_host(drafts).values_mut() {
        for (a, b) in conflicts(touches) {
            let related = edges[a.job].iter().any(|e| e.to == b.job)
                || edges[b.job].iter().any(|e| e.to == a.job);
            if related || !seen.insert((a.job, b.job)) {
                continue;
            }
            cx.push(derived_exclusion(a, b));
            derived.push(Derived {
                job: a.job.to_string(),
                blocks_on: b.job.to_string(),
                overlap: place(a),
            });
        }
    }
    for d in &derived {
        if let Some(list) = edges.get_mut(&d.job) {
            list.push(Edge {
                to: d.blocks_on.clone(),
                wait: s.lock_wait,
                timeout: s.lock_timeout,
                span: None,
            });
        }
    }
    derived.sort_by(|x, y| (&x.job, &x.blocks_on).cmp(&(&y.job, &y.blocks_on)));
    derived
}

fn touches_by_host(drafts: &BTreeMap<String, Draft>) -> BTreeMap<&str, Vec<Touch<'_>>> {
    let mut by_host: BTreeMap<&str, Vec<Touch>> = BTreeMap::new();
    for (name, d) in drafts {
        for (list, write) in [(&d.reads, false), (&d.writes, true)] {
            for (at, span) in list {
                by_host.entry(at.host.as_str()).or_default().push(Touch {
                    job: name,
                    at,
                    write,
                    span: *span,
                });
            }
        }
    }
    by_host
}

/// Pairs of touches of one host by two jobs, on paths one inside the other, at least one of
/// them writing: the one that is to wait first.
fn conflicts<'t, 'a>(touches: &'t mut [Touch<'a>]) -> Vec<(&'t Touch<'a>, &'t Touch<'a>)> {
    // Sorted by path components, a directory comes right before everything inside it, so
    // the stack below always holds exactly the ancestors of the current path.
    touches.sort_by(|a, b| {
        let ka = a.at.path.split('/').filter(|c| !c.is_empty());
        let kb = b.at.path.split('/').filter(|c| !c.is_empty());
        ka.cmp(kb)
    });
    let mut pairs = Vec::new();
    let mut stack: Vec<&Touch> = Vec::new();
    for t in touches.iter() {
        while stack
            .last()
            .is_some_and(|top| !paths::is_ancestor_or_same(&top.at.path, &t.at.path))
        {
            stack.pop();
        }
        for other in &stack {
            if other.job == t.job || !(other.write || t.write) {
                continue;
            }
            // The writer waits on the other; of two writers, the later name waits.
            pairs.push(match (t.write, other.write) {
                (true, false) => (t, *other),
                (false, true) => (*other, t),
                _ if t.job > other.job => (t, *other),
                _ => (*other, t),
            });
        }
        stack.push(t);
    }
    pairs
}

fn place(x: &Touch) -> String {
    format!("{}:{}", x.at.host, x.at.path)
}

/// `a` is to wait on `b`.
fn derived_exclusion(a: &Touch, b: &Touch) -> Diagnostic {
    let verb = |x: &Touch| if x.write { "writes" } else { "reads" };
    Diagnostic::warning(
        Code::DerivedExclusion,
        format!(
            "`{}` {} `{}` while `{}` {} `{}`, and neither blocks on the other",
            a.job,
            verb(a),
            place(a),
            b.job,
            verb(b),
            place(b)
        ),
    )
    .label(a.span, format!("`{}` {} here", a.job, verb(a)))
    .also(b.span, format!("`{}` {} here", b.job, verb(b)))
    .help(format!(
        "bkc adds blocks-on \"{}\" to job `{}` so they never run at once; write it there yourself to silence this warning",
        b.job, a.job
    ))
}
