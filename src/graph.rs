//! `bkc graph`: a picture of the chain, as Graphviz dot, Mermaid or a text tree.
//!
//! The layout answers two questions at once, "where does the data go" and "who waits for
//! whom", without mixing them up:
//!
//! - each host is a box (a dot cluster, a Mermaid subgraph) holding a cylinder for its data,
//!   labelled with the paths bkc moves there, and a node for every job that runs on it;
//! - each job's data moves are solid arrows from the data of the host that holds the source to
//!   the data of the host that receives it, labelled with the job and its schedule, so data
//!   flows along the arrows whether the job pushes or pulls (which one it is shows by the box
//!   the job sits in);
//! - `blocks-on` relations are dashed arrows between job nodes, from the job that waits to the
//!   one it waits on (one arrow with two heads when both block on each other); exclusions bkc
//!   derived are dotted and say so; a circle of waits (only drawn with `--allow-errors`) is red.
//!
//! Data arrows and job arrows never share an end, so the data chain reads left to right and
//! the waits stay between the jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::spec::Sync;
use crate::topology::{Host, Job, Topology};

/// At most this many paths are listed in a host's data node; the rest are counted.
const MAX_PATHS: usize = 6;

/// What to draw: built once from the topology, then written in any format.
pub struct Picture<'t> {
    hosts: Vec<HostView<'t>>,
    flows: Vec<Flow<'t>>,
    waits: Vec<Wait<'t>>,
    cycles: Vec<Vec<String>>,
}

struct HostView<'t> {
    host: &'t Host,
    /// The outermost paths on this host that the drawn syncs read or write.
    data: Vec<String>,
    jobs: Vec<&'t Job>,
}

/// The syncs of one job from one host to another: one arrow.
struct Flow<'t> {
    job: &'t Job,
    from: &'t str,
    to: &'t str,
    syncs: Vec<&'t Sync>,
}

/// `waiter` blocks on `on`.
struct Wait<'t> {
    waiter: &'t str,
    on: &'t str,
    /// `on` blocks on `waiter` too, and this arrow stands for both.
    both: bool,
    /// Where the two jobs meet, for an exclusion bkc derived.
    derived: Option<&'t str>,
    in_cycle: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error(
        "--format svg needs Graphviz's `dot` program, which is not installed: install graphviz (`apt install graphviz`, `dnf install graphviz`, `brew install graphviz`), or write --format dot and render it elsewhere"
    )]
    NoGraphviz,
    #[error("Graphviz's `dot` failed: {0}")]
    Graphviz(String),
}

impl<'t> Picture<'t> {
    /// The picture of `t`, or of the part that concerns the hosts in `only` (all when empty):
    /// those hosts, every job that runs on them or moves data to or from them, the other ends
    /// of those moves, and the jobs those jobs block on or are blocked by (drawn without their
    /// own data moves, to keep the picture about the named hosts). `cycles` are the circles of
    /// waits to draw in red. Names in `only` must be hosts of `t`.
    pub fn new(t: &'t Topology, cycles: &[Vec<String>], only: &[String]) -> Picture<'t> {
        let (main, shown) = jobs_shown(t, only);
        let flows = flows(t, &main);
        let hosts = host_views(t, only, &shown, &flows);
        let waits = waits(t, &shown, cycles);
        Picture {
            hosts,
            flows,
            waits,
            cycles: cycles.to_vec(),
        }
    }

    /// Graphviz dot source. Node names are the host and job names, so that Graphviz's SVG
    /// titles and tooltips read as the topology does.
    pub fn dot(&self) -> String {
        self.dot_styled(&|_| None)
    }

    /// [`Picture::dot`] with each job's box styled by `style` (its fill, its SVG class and a
    /// tooltip): how `bkc report` colours the chain by each job's state.
    pub fn dot_styled(&self, style: &dyn Fn(&Job) -> Option<JobStyle>) -> String {
        let mut s = String::new();
        s.push_str("// Made by `bkc graph`. Hosts are boxes holding their data (a cylinder) and the jobs that run there.\n");
        s.push_str("// Solid arrows: data a job moves. Dashed: blocks-on, from the job that waits. Dotted: derived by bkc. Red: a circle of waits.\n");
        s.push_str("digraph bkc {\n");
        s.push_str("    graph [rankdir=LR, fontname=\"Helvetica\", fontsize=12, nodesep=0.35, ranksep=0.9, newrank=true];\n");
        s.push_str("    node [fontname=\"Helvetica\", fontsize=10];\n");
        s.push_str("    edge [fontname=\"Helvetica\", fontsize=9];\n");
        for h in &self.hosts {
            dot_host(&mut s, h, style);
        }
        for f in &self.flows {
            let _ = writeln!(
                s,
                "    {} -> {} [penwidth=1.5, label={}, tooltip={}];",
                dot_str(&data_id(f.from)),
                dot_str(&data_id(f.to)),
                dot_str(&flow_label(f)),
                dot_str(&flow_paths(f))
            );
        }
        for w in &self.waits {
            let _ = writeln!(
                s,
                "    {} -> {} [{}];",
                dot_str(&job_id(w.waiter)),
                dot_str(&job_id(w.on)),
                dot_wait_attrs(w).join(", ")
            );
        }
        s.push_str("}\n");
        s
    }

    /// A Mermaid flowchart. Nodes get short generated ids (`h0`, `d0`, `j0`): Mermaid reads
    /// `-` and `.` in a bare id as parts of an arrow.
    pub fn mermaid(&self) -> String {
        let mut s = String::from("flowchart LR\n");
        let mut job_ids: BTreeMap<&str, String> = BTreeMap::new();
        let mut data_ids: BTreeMap<&str, String> = BTreeMap::new();
        for (i, h) in self.hosts.iter().enumerate() {
            data_ids.insert(&h.host.name, format!("d{i}"));
            let _ = writeln!(
                s,
                "    subgraph h{i}[{}]",
                mermaid_str(&format!("{}\n{}", h.host.name, address(h.host)))
            );
            let _ = writeln!(s, "        d{i}[({})]", mermaid_str(&data_label(&h.data)));
            for j in &h.jobs {
                let id = format!("j{}", job_ids.len());
                let _ = writeln!(s, "        {id}({})", mermaid_str(&j.name));
                job_ids.insert(&j.name, id);
            }
            s.push_str("    end\n");
        }
        let mut link = 0;
        let mut styles = Vec::new();
        for f in &self.flows {
            let _ = writeln!(
                s,
                "    {} -->|{}| {}",
                data_ids[f.from],
                mermaid_str(&flow_label(f)),
                data_ids[f.to]
            );
            link += 1;
        }
        for w in &self.waits {
            let arrow = if w.both { "<-.->" } else { "-.->" };
            let _ = writeln!(
                s,
                "    {} {arrow}|{}| {}",
                job_ids[w.waiter],
                mermaid_str(wait_label(w)),
                job_ids[w.on]
            );
            if w.in_cycle {
                styles.push(format!(
                    "    linkStyle {link} stroke:#c0392b,stroke-width:2px,color:#c0392b"
                ));
            } else if w.derived.is_some() {
                styles.push(format!("    linkStyle {link} stroke-dasharray:2 4"));
            }
            link += 1;
        }
        for line in styles {
            s.push_str(&line);
            s.push('\n');
        }
        s
    }

    /// A tree for the terminal: each host, the jobs that run there with their schedules, what
    /// each job moves and on whom it waits, and which other hosts' jobs read or write here.
    pub fn text(&self) -> String {
        let ix = Index::new(self);
        let mut s = String::new();
        for h in &self.hosts {
            let name = h.host.name.as_str();
            let _ = writeln!(s, "{name} ({})", address(h.host));
            let mut items: Vec<(String, Vec<String>)> = h
                .jobs
                .iter()
                .map(|j| {
                    let head = format!("{}: {}", j.name, j.schedule_words());
                    (head, ix.job_lines(j, name))
                })
                .collect();
            let mut visitors: Vec<String> = Vec::new();
            for f in ix.visitors_of.get(name).into_iter().flatten() {
                let verb = if f.to == name { "written" } else { "read" };
                let line = format!("{verb} by {}, which runs on {}", f.job.name, f.job.host);
                visitors.push(line);
            }
            visitors.dedup();
            if h.jobs.is_empty() {
                items.push(("runs no jobs".to_string(), Vec::new()));
            }
            items.extend(visitors.into_iter().map(|v| (v, Vec::new())));
            tree(&mut s, &items);
        }
        for ring in &self.cycles {
            let mut names: Vec<&str> = ring.iter().map(String::as_str).collect();
            if let Some(first) = ring.first() {
                names.push(first);
            }
            let _ = writeln!(s, "circle of waits: {}", names.join(" → "));
        }
        s
    }
}

/// The flows and waits of a picture by job and by host, so that a thousand hosts do not mean
/// a million comparisons.
struct Index<'p, 't> {
    flows_of: BTreeMap<&'t str, Vec<&'p Flow<'t>>>,
    /// Flows that read or write a host other than their job's own.
    visitors_of: BTreeMap<&'t str, Vec<&'p Flow<'t>>>,
    waits_of: BTreeMap<&'t str, Vec<&'p Wait<'t>>>,
}

impl<'p, 't> Index<'p, 't> {
    fn new(p: &'p Picture<'t>) -> Index<'p, 't> {
        let mut ix = Index {
            flows_of: BTreeMap::new(),
            visitors_of: BTreeMap::new(),
            waits_of: BTreeMap::new(),
        };
        for f in &p.flows {
            ix.flows_of.entry(&f.job.name).or_default().push(f);
            for end in [f.from, f.to] {
                if end != f.job.host {
                    ix.visitors_of.entry(end).or_default().push(f);
                }
            }
        }
        for w in &p.waits {
            ix.waits_of.entry(w.waiter).or_default().push(w);
            ix.waits_of.entry(w.on).or_default().push(w);
        }
        ix
    }

    /// What job `j` on `host` moves, and whom it waits on or is waited on by.
    fn job_lines(&self, j: &Job, host: &str) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for f in self.flows_of.get(j.name.as_str()).into_iter().flatten() {
            for sync in &f.syncs {
                lines.push(format!(
                    "{} → {}",
                    place(&sync.source.host, &sync.source.path, host),
                    place(&sync.dest.host, &sync.dest.path, host)
                ));
            }
        }
        for w in self.waits_of.get(j.name.as_str()).into_iter().flatten() {
            if w.waiter == j.name {
                lines.push(format!("blocks on {}{}", w.on, wait_note(w)));
            } else if w.on == j.name {
                let other = w.waiter;
                lines.push(if w.both {
                    format!("blocks on {other}{}", wait_note(w))
                } else {
                    format!("{other} blocks on it{}", wait_note(w))
                });
            }
        }
        lines
    }
}

/// One host's items as a tree, each with its lines below it.
fn tree(s: &mut String, items: &[(String, Vec<String>)]) {
    for (i, (head, lines)) in items.iter().enumerate() {
        let last = i + 1 == items.len();
        let _ = writeln!(s, "{} {}", if last { "└─" } else { "├─" }, plain(head));
        let indent = if last { "   " } else { "│  " };
        for (k, line) in lines.iter().enumerate() {
            let branch = if k + 1 == lines.len() {
                "└─"
            } else {
                "├─"
            };
            let _ = writeln!(s, "{indent}{branch} {}", plain(line));
        }
    }
}

/// How a job's box is drawn when it is not the plain blue of `bkc graph`.
pub struct JobStyle {
    /// A fill colour, as `#rrggbb`.
    pub fill: &'static str,
    /// The SVG class of the job's node (Graphviz's `class`), and the word in its label.
    pub class: &'static str,
    pub tooltip: String,
}

/// A host's box in dot: its data, its jobs, and both in one column.
fn dot_host(s: &mut String, h: &HostView, style: &dyn Fn(&Job) -> Option<JobStyle>) {
    let name = &h.host.name;
    let _ = writeln!(s, "    subgraph {} {{", dot_str(&format!("cluster_{name}")));
    let _ = writeln!(
        s,
        "        label={}; labeljust=l; style=rounded; color=\"#7f8c8d\";",
        dot_str_left(&format!("{name}\n{}", address(h.host)))
    );
    let _ = writeln!(
        s,
        "        {} [shape=cylinder, style=filled, fillcolor=\"#fdf6e3\", label={}];",
        dot_str(&data_id(name)),
        dot_str(&data_label(&h.data))
    );
    for j in &h.jobs {
        let tooltip = j.description.as_deref().unwrap_or(&j.name);
        match style(j) {
            None => {
                let _ = writeln!(
                    s,
                    "        {} [shape=box, style=\"rounded,filled\", fillcolor=\"#e8f0fb\", label={}, tooltip={}];",
                    dot_str(&job_id(&j.name)),
                    dot_str(&j.name),
                    dot_str(tooltip)
                );
            }
            Some(st) => {
                let _ = writeln!(
                    s,
                    "        {} [shape=box, style=\"rounded,filled\", fillcolor=\"{}\", class={}, id={}, label={}, tooltip={}];",
                    dot_str(&job_id(&j.name)),
                    st.fill,
                    dot_str(&format!("job state-{}", st.class)),
                    dot_str(&format!("job-{}", j.name)),
                    dot_str(&format!("{}\n{}", j.name, st.class)),
                    dot_str(&st.tooltip)
                );
            }
        }
    }
    // The jobs stand in the same column as the host's data (rankdir=LR), so that the
    // data arrows run straight from host to host and the job arrows below them.
    if !h.jobs.is_empty() {
        let mut same = vec![dot_str(&data_id(name))];
        same.extend(h.jobs.iter().map(|j| dot_str(&job_id(&j.name))));
        let _ = writeln!(s, "        {{ rank=same; {}; }}", same.join("; "));
    }
    s.push_str("    }\n");
}

fn dot_wait_attrs(w: &Wait) -> Vec<String> {
    let mut attrs = vec![format!("label={}", dot_str(wait_label(w)))];
    attrs.push(
        if w.derived.is_some() {
            "style=dotted"
        } else {
            "style=dashed"
        }
        .to_string(),
    );
    if w.both {
        attrs.push("dir=both".to_string());
    }
    if w.in_cycle {
        attrs.push("color=\"#c0392b\", fontcolor=\"#c0392b\", penwidth=2".to_string());
    }
    if let Some(overlap) = w.derived {
        attrs.push(format!(
            "tooltip={}",
            dot_str(&format!("both touch {overlap}"))
        ));
    }
    attrs
}

/// The jobs whose data moves are drawn (those that concern a host in `only`, or all), and
/// every job drawn: those, and the jobs they block on or are blocked by.
fn jobs_shown<'t>(t: &'t Topology, only: &[String]) -> (BTreeSet<&'t str>, BTreeSet<&'t str>) {
    let touches = |j: &Job, h: &str| {
        j.host == h
            || j.spec
                .syncs
                .iter()
                .any(|s| s.source.host == h || s.dest.host == h)
    };
    let main: BTreeSet<&str> = t
        .jobs
        .values()
        .filter(|j| only.is_empty() || only.iter().any(|h| touches(j, h)))
        .map(|j| j.name.as_str())
        .collect();
    let mut shown = main.clone();
    for j in t.jobs.values() {
        for r in &j.blocks_on {
            if main.contains(j.name.as_str()) || main.contains(r.job.as_str()) {
                shown.insert(j.name.as_str());
                shown.insert(r.job.as_str());
            }
        }
    }
    // analyze only relates jobs and hosts that exist; a picture never takes that on trust,
    // since everything below looks names up.
    shown.retain(|j| t.jobs.get(*j).is_some_and(|j| runs_on_known_host(t, j)));
    (main, shown)
}

fn runs_on_known_host(t: &Topology, j: &Job) -> bool {
    t.hosts.contains_key(&j.host)
}

/// One arrow per job and pair of hosts it moves data between.
fn flows<'t>(t: &'t Topology, main: &BTreeSet<&str>) -> Vec<Flow<'t>> {
    let mut flows: Vec<Flow> = Vec::new();
    for name in main {
        let job = &t.jobs[*name];
        let mut by_pair: BTreeMap<(&str, &str), Vec<&Sync>> = BTreeMap::new();
        if !runs_on_known_host(t, job) {
            continue;
        }
        for s in
            job.spec.syncs.iter().filter(|s| {
                t.hosts.contains_key(&s.source.host) && t.hosts.contains_key(&s.dest.host)
            })
        {
            by_pair
                .entry((s.source.host.as_str(), s.dest.host.as_str()))
                .or_default()
                .push(s);
        }
        flows.extend(by_pair.into_iter().map(|((from, to), syncs)| Flow {
            job,
            from,
            to,
            syncs,
        }));
    }
    flows
}

/// The hosts drawn, in the order data flows between them, each with its data and jobs.
fn host_views<'t>(
    t: &'t Topology,
    only: &[String],
    shown: &BTreeSet<&'t str>,
    flows: &[Flow<'t>],
) -> Vec<HostView<'t>> {
    let mut host_names: BTreeSet<&str> = only.iter().map(String::as_str).collect();
    if only.is_empty() {
        host_names.extend(t.hosts.keys().map(String::as_str));
    }
    host_names.extend(shown.iter().map(|j| t.jobs[*j].host.as_str()));
    for f in flows {
        host_names.insert(f.from);
        host_names.insert(f.to);
    }
    let mut data: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for f in flows {
        for s in &f.syncs {
            data.entry(f.from).or_default().push(&s.source.path);
            data.entry(f.to).or_default().push(&s.dest.path);
        }
    }
    let mut jobs_on: BTreeMap<&str, Vec<&Job>> = BTreeMap::new();
    for j in shown {
        let job = &t.jobs[*j];
        jobs_on.entry(&job.host).or_default().push(job);
    }
    flow_order(&host_names, flows)
        .into_iter()
        .filter_map(|h| t.hosts.get(h))
        .map(|host| HostView {
            host,
            data: outermost(data.remove(host.name.as_str()).unwrap_or_default()),
            jobs: jobs_on.remove(host.name.as_str()).unwrap_or_default(),
        })
        .collect()
}

/// The `blocks-on` arrows between jobs drawn, one for a pair that blocks both ways.
fn waits<'t>(t: &'t Topology, shown: &BTreeSet<&'t str>, cycles: &[Vec<String>]) -> Vec<Wait<'t>> {
    let ring_edges: BTreeSet<(&str, &str)> = cycles
        .iter()
        .flat_map(|ring| {
            (0..ring.len()).map(|i| (ring[i].as_str(), ring[(i + 1) % ring.len()].as_str()))
        })
        .collect();
    let blocks = |a: &str, b: &str| {
        t.jobs
            .get(a)
            .is_some_and(|j| j.blocks_on.iter().any(|r| r.job == b))
    };
    let mut waits = Vec::new();
    for name in shown {
        for r in &t.jobs[*name].blocks_on {
            let (waiter, on) = (*name, r.job.as_str());
            if !shown.contains(on) {
                continue;
            }
            let in_cycle = ring_edges.contains(&(waiter, on));
            let mutual = !r.derived
                && blocks(on, waiter)
                && !in_cycle
                && !ring_edges.contains(&(on, waiter));
            // A pair that blocks both ways is one arrow, drawn from the name that sorts
            // first.
            if mutual && waiter > on {
                continue;
            }
            let derived = r.derived.then(|| {
                t.derived
                    .iter()
                    .find(|d| d.job == waiter && d.blocks_on == on)
                    .map_or("", |d| d.overlap.as_str())
            });
            waits.push(Wait {
                waiter,
                on,
                both: mutual,
                derived,
                in_cycle,
            });
        }
    }
    waits
}

/// Run Graphviz on dot source and return the SVG it writes.
pub fn svg(dot: &str) -> Result<String, GraphError> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => GraphError::NoGraphviz,
            _ => GraphError::Graphviz(format!("cannot start it: {e}")),
        })?;
    // Write from another thread: dot may fill its output pipe before it has read all input.
    let mut stdin = child.stdin.take();
    let input = dot.to_string();
    let writer = std::thread::spawn(move || stdin.as_mut().map(|i| i.write_all(input.as_bytes())));
    let out = child
        .wait_with_output()
        .map_err(|e| GraphError::Graphviz(e.to_string()))?;
    let written = writer.join();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(GraphError::Graphviz(format!(
            "{} ({})",
            err.trim(),
            out.status
        )));
    }
    if let Ok(Some(Err(e))) = written {
        return Err(GraphError::Graphviz(format!("cannot write to it: {e}")));
    }
    String::from_utf8(out.stdout)
        .map_err(|_| GraphError::Graphviz("it wrote something that is not UTF-8".to_string()))
}

/// Hosts in the order data flows through them (sources before the hosts they feed), ties and
/// loops broken by name, so a chain reads top to bottom in the text tree.
fn flow_order<'a>(hosts: &BTreeSet<&'a str>, flows: &[Flow<'a>]) -> Vec<&'a str> {
    let mut feeds: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut fed_by: BTreeMap<&str, usize> = hosts.iter().map(|h| (*h, 0)).collect();
    for f in flows {
        if f.from != f.to && feeds.entry(f.from).or_default().insert(f.to) {
            *fed_by.entry(f.to).or_default() += 1;
        }
    }
    let mut order = Vec::with_capacity(fed_by.len());
    let mut ready: BTreeSet<&str> = fed_by
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(h, _)| *h)
        .collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    while order.len() < fed_by.len() {
        // Inside a loop nothing is ready: take the first unplaced host by name.
        let next = match ready.pop_first() {
            Some(h) => h,
            None => match fed_by.keys().find(|h| !placed.contains(*h)) {
                Some(h) => h,
                None => break,
            },
        };
        if !placed.insert(next) {
            continue;
        }
        order.push(next);
        for to in feeds.get(next).into_iter().flatten() {
            if let Some(n) = fed_by.get_mut(to) {
                *n = n.saturating_sub(1);
                if *n == 0 && !placed.contains(to) {
                    ready.insert(to);
                }
            }
        }
    }
    order
}

/// The paths that are not inside another one of the list, sorted.
fn outermost(mut paths: Vec<&str>) -> Vec<String> {
    paths.sort_by(|a, b| components(a).cmp(components(b)));
    let mut out: Vec<String> = Vec::new();
    for p in paths {
        let inside = out.last().is_some_and(|top| {
            let mut outer = components(top);
            let mut inner = components(p);
            outer.all(|c| inner.next() == Some(c))
        });
        if !inside {
            out.push(p.to_string());
        }
    }
    out
}

fn components(p: &str) -> impl Iterator<Item = &str> {
    p.split('/').filter(|c| !c.is_empty())
}

fn address(h: &Host) -> String {
    if h.port == 22 {
        h.address.clone()
    } else {
        format!("{}:{}", h.address, h.port)
    }
}

fn data_id(host: &str) -> String {
    format!("host:{host}")
}

fn job_id(job: &str) -> String {
    format!("job:{job}")
}

fn data_label(paths: &[String]) -> String {
    if paths.is_empty() {
        return "no data moved".to_string();
    }
    let mut lines: Vec<String> = paths.iter().take(MAX_PATHS).cloned().collect();
    if paths.len() > MAX_PATHS {
        lines.push(format!("and {} more", paths.len() - MAX_PATHS));
    }
    lines.join("\n")
}

fn flow_label(f: &Flow) -> String {
    format!("{}\n{}", f.job.name, f.job.schedule_words())
}

fn flow_paths(f: &Flow) -> String {
    f.syncs
        .iter()
        .map(|s| {
            format!(
                "{}:{} → {}:{}",
                s.source.host, s.source.path, s.dest.host, s.dest.path
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn wait_label(w: &Wait) -> &'static str {
    match (w.derived.is_some(), w.both, w.in_cycle) {
        (_, _, true) => "blocks on (circle)",
        (true, _, _) => "derived",
        (false, true, _) => "block each other",
        (false, false, _) => "blocks on",
    }
}

/// What the text tree says after "blocks on X" about the relation.
fn wait_note(w: &Wait) -> String {
    let mut note = String::new();
    if w.both {
        note.push_str(" (both ways)");
    }
    if let Some(overlap) = w.derived {
        note.push_str(&format!(" (derived: both touch {overlap})"));
    }
    if w.in_cycle {
        note.push_str(" (part of a circle of waits)");
    }
    note
}

/// `path` as the job on `here` names it: bare when local, `host:path` when remote.
fn place(host: &str, path: &str, here: &str) -> String {
    if host == here {
        path.to_string()
    } else {
        format!("{host}:{path}")
    }
}

/// A dot double-quoted string. Backslash and quote are escaped; a newline becomes dot's `\n`
/// (a centred line break); other control characters are shown as escapes, never passed on.
fn dot_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.extend(c.escape_default().flat_map(|e| {
                // escape_default writes `\u{1b}`: its backslash must be escaped for dot too.
                if e == '\\' { vec!['\\', '\\'] } else { vec![e] }
            })),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A dot string whose lines are left-aligned: each ends in dot's `\l`.
fn dot_str_left(s: &str) -> String {
    let mut out = String::from("\"");
    for line in s.split('\n') {
        let quoted = dot_str(line);
        out.push_str(&quoted[1..quoted.len() - 1]);
        out.push_str("\\l");
    }
    out.push('"');
    out
}

/// A Mermaid quoted label. Inside quotes Mermaid still reads `"` as the end and `#...;` as an
/// entity, and some renderers read brackets, pipes and angle brackets as markup, so all of
/// those are written as numeric entities; a newline becomes `<br>`.
fn mermaid_str(s: &str) -> String {
    fn push(out: &mut String, c: char) {
        match c {
            '"' | '#' | '[' | ']' | '(' | ')' | '{' | '}' | '<' | '>' | '|' | '&' | '`' => {
                let _ = write!(out, "#{};", c as u32);
            }
            c => out.push(c),
        }
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\n' => out.push_str("<br>"),
            // Shown as `\u{1b}`, whose braces need entities too.
            c if c.is_control() => c.escape_default().for_each(|e| push(&mut out, e)),
            c => push(&mut out, c),
        }
    }
    out.push('"');
    out
}

/// Text for the terminal: control characters (a path may hold an escape sequence) are shown
/// as escapes.
fn plain(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(dot_str(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(dot_str("x\ny"), r#""x\ny""#);
        assert_eq!(dot_str("\u{1b}[31m"), r#""\\u{1b}[31m""#);
        assert_eq!(dot_str(r"\N\G"), r#""\\N\\G""#);
        assert_eq!(dot_str_left("a\\n\nb"), r#""a\\n\lb\l""#);
    }

    #[test]
    fn mermaid_strings_escape_quotes_and_brackets() {
        assert_eq!(mermaid_str(r#"a "b" [c]"#), r##""a #34;b#34; #91;c#93;""##);
        assert_eq!(mermaid_str("x|y\nz"), r##""x#124;y<br>z""##);
        assert_eq!(mermaid_str("#quot;"), r##""#35;quot;""##);
        assert_eq!(mermaid_str("<b>"), r##""#60;b#62;""##);
    }

    #[test]
    fn outermost_paths_only() {
        assert_eq!(
            outermost(vec![
                "/srv/backup/desktop/",
                "/srv/backup/",
                "/srv/b/",
                "/srv/backupx/"
            ]),
            vec!["/srv/b/", "/srv/backup/", "/srv/backupx/"]
        );
    }
}
