//! Paths on hosts: `host:/abs/path` or a bare `/abs/path` on the job's own host.

/// Split `host:/path` into its host prefix (if any) and the path. A colon counts as a host
/// separator only before the first `/`, as in rsync and scp.
pub(crate) fn split_remote(s: &str) -> (Option<&str>, &str) {
    match s.find(':') {
        Some(i) if !s[..i].contains('/') => (Some(&s[..i]), &s[i + 1..]),
        _ => (None, s),
    }
}

/// Why a path cannot be used, if it cannot.
pub(crate) fn path_problem(p: &str) -> Option<(&'static str, &'static str)> {
    if p.is_empty() {
        Some((
            "the path is empty",
            "write an absolute path such as \"/srv/backup/\"",
        ))
    } else if !p.starts_with('/') {
        Some((
            "the path is relative",
            "write it from the root, such as \"/srv/backup/\": a unit does not run in your working directory",
        ))
    } else if p.contains(['\n', '\r', '\0']) {
        Some((
            "the path contains a line break or NUL",
            "remove the control character",
        ))
    } else if p.split('/').any(|c| c == ".." || c == ".") {
        Some((
            "the path contains `.` or `..`",
            "write the path without `.` or `..`, as it is on the host",
        ))
    } else if p.trim_end_matches('/').contains("//") {
        // Two spellings of one place would hide an overlap between two jobs' paths.
        Some(("the path contains `//`", "write each `/` once"))
    } else {
        None
    }
}

/// Places no job's sandbox may write as a whole. A writable path that covers a system
/// directory turns `ProtectSystem=strict` off for it; one that reaches bkc's own lets a job
/// change what root runs next (job specs, units, apply's staging and generations).
const NEVER_WRITABLE: &[&str] = &[
    "/",
    "/boot",
    "/etc",
    "/usr",
    "/var",
    "/var/lib",
    "/etc/bkc",
    "/etc/systemd",
    crate::deploy::STAGING_DIR,
    crate::deploy::GENERATIONS_DIR,
];

/// Why a job's sandbox must not get `p` writable, if it must not: `p` is, or is above, one of
/// [`NEVER_WRITABLE`], or lies inside bkc's own directories.
pub(crate) fn writable_problem(p: &str) -> Option<String> {
    let p = normalize(p);
    if let Some(covered) = NEVER_WRITABLE.iter().find(|n| is_ancestor_or_same(p, n)) {
        return Some(if *covered == p {
            format!("the job's sandbox would make {p} writable as a whole")
        } else {
            format!("the job's sandbox would make {p}, and with it {covered}, writable")
        });
    }
    [
        "/etc/bkc",
        "/etc/systemd",
        // What sshd reads next: bkc's drop-in lets restricted keys in.
        "/etc/ssh/sshd_config.d",
        crate::deploy::STAGING_DIR,
        crate::deploy::GENERATIONS_DIR,
    ]
    .iter()
    .find(|own| is_ancestor_or_same(own, p))
    .map(|own| format!("the job's sandbox would make {p}, inside {own}, writable"))
}

/// The path with its trailing slashes removed ("/" stays "/"), for comparing places. rsync's
/// trailing-slash meaning is kept in the spec; here only the place on disk matters.
pub(crate) fn normalize(p: &str) -> &str {
    let t = p.trim_end_matches('/');
    if t.is_empty() { "/" } else { t }
}

/// True when `a` is `b` or a directory above it (component-wise: `/srv/a` is not above `/srv/ab`).
pub(crate) fn is_ancestor_or_same(a: &str, b: &str) -> bool {
    let (a, b) = (normalize(a), normalize(b));
    a == "/" || a == b || (b.starts_with(a) && b.as_bytes().get(a.len()) == Some(&b'/'))
}

pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    is_ancestor_or_same(a, b) || is_ancestor_or_same(b, a)
}

/// A path under a home directory, where `ProtectHome=` would hide or freeze it.
pub(crate) fn is_home(p: &str) -> bool {
    ["/home", "/root", "/run/user"]
        .iter()
        .any(|h| is_ancestor_or_same(h, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_prefix_only_before_first_slash() {
        assert_eq!(
            split_remote("backup_a:/srv/x"),
            (Some("backup_a"), "/srv/x")
        );
        assert_eq!(split_remote("/srv/a:b"), (None, "/srv/a:b"));
        assert_eq!(split_remote("relative"), (None, "relative"));
    }

    #[test]
    fn overlap_is_component_wise() {
        assert!(overlaps("/srv/backup/", "/srv/backup/desktop/music"));
        assert!(overlaps("/srv/backup", "/srv/backup/"));
        assert!(!overlaps("/srv/a", "/srv/ab"));
        assert!(overlaps("/", "/x"));
        assert!(is_home("/home/alice/Music/"));
        assert!(!is_home("/homes"));
    }

    #[test]
    fn problems() {
        assert!(path_problem("srv/x").is_some());
        assert!(path_problem("/srv/../etc").is_some());
        assert!(path_problem("/srv/./out").is_some());
        assert!(path_problem("/srv//out/").is_some());
        assert!(path_problem("/srv/a\nb").is_some());
        assert!(path_problem("/srv/x/").is_none());
    }
}
