//! `bkc fmt`: one canonical layout for a topology, keeping every comment.
//!
//! The layout: four spaces per level, one node per line, a node's arguments before its
//! properties, at most one blank line between nodes and none at the start or end of a block,
//! values written as they were (`"daily"` stays quoted, `0x10` stays hex).
//!
//! kdl's own `autoformat` is not used: it drops comments written between the entries of a node
//! and slashdashed children blocks, and rewrites every value. This walks the document and writes
//! it again from the pieces the parser kept, so nothing the author wrote is lost. A node whose
//! entries carry comments or line continuations keeps its entries as written.

use kdl::{KdlDocument, KdlEntry, KdlNode};

/// The canonical text of a topology parsed from `src`.
pub fn format(doc: &KdlDocument, src: &str) -> String {
    let mut out = String::new();
    let mut emitted = false;
    let line_start = block(&mut out, doc, src, 0, true, &mut emitted);
    if let Some(f) = doc.format() {
        gap(&mut out, &f.trailing, 0, line_start, &mut emitted);
    }
    out
}

/// True when `a` and `b` say the same thing, whatever their layout and comments.
pub fn same_meaning(a: &KdlDocument, b: &KdlDocument) -> bool {
    let bare = |d: &KdlDocument| {
        let mut d = d.clone();
        args_first(&mut d);
        d.autoformat_no_comments();
        d.to_string()
    };
    bare(a) == bare(b)
}

/// Put every node's properties after its arguments, keeping each kind's own order: in KDL the
/// arguments are a list and the properties a map, so where they stand among each other means
/// nothing (`notify on="failure" "cmd"` is `notify "cmd" on="failure"`).
fn args_first(doc: &mut KdlDocument) {
    for n in doc.nodes_mut() {
        n.entries_mut().sort_by_key(|e| e.name().is_some());
        if let Some(c) = n.children_mut() {
            args_first(c);
        }
    }
}

/// Write the nodes of a document at `depth`. Returns whether the text after the last node starts
/// on a fresh line (its terminator was a newline).
fn block(
    out: &mut String,
    doc: &KdlDocument,
    src: &str,
    depth: usize,
    mut line_start: bool,
    emitted: &mut bool,
) -> bool {
    for n in doc.nodes() {
        let f = n.format();
        let leading = f.map_or("", |f| f.leading.as_str());
        let blank = gap(out, leading, depth, line_start, emitted);
        if blank && *emitted {
            out.push('\n');
        }
        indent(out, depth);
        header(out, n);
        let extra = |s: &str, out: &mut String| {
            let t = s.trim();
            if !t.is_empty() {
                out.push(' ');
                out.push_str(t);
            }
        };
        if let Some(children) = n.children() {
            extra(f.map_or("", |f| f.before_children.as_str()), out);
            out.push_str(" {\n");
            let mut inner = false;
            let ls = block(out, children, src, depth + 1, false, &mut inner);
            if let Some(cf) = children.format() {
                gap(out, &cf.trailing, depth + 1, ls, &mut inner);
            }
            indent(out, depth);
            out.push('}');
        }
        let (before, terminator, trailing) = f.map_or(("", "\n", ""), |f| {
            (
                f.before_terminator.as_str(),
                f.terminator.as_str(),
                f.trailing.as_str(),
            )
        });
        extra(before, out);
        extra(terminator.trim_start().trim_start_matches(';'), out);
        let lost = lost_comment(n, src, terminator);
        extra(lost, out);
        out.push('\n');
        *emitted = true;
        line_start = terminator.ends_with('\n') || !lost.is_empty();
        if !trailing.trim().is_empty() {
            gap(out, trailing, depth, true, emitted);
            line_start = true;
        }
    }
    line_start
}

/// The comment that ends the line of a node's closing brace when whitespace comes between them
/// (`} // note`): kdl keeps it in none of the node's format fields, so it is read from the source
/// after the node's span. Empty when there is none, or kdl kept the terminator.
fn lost_comment<'s>(n: &KdlNode, src: &'s str, terminator: &str) -> &'s str {
    if !terminator.is_empty() || n.children().is_none() {
        return "";
    }
    let end = n.span().offset() + n.span().len();
    let rest = src.get(end..).unwrap_or("");
    let line = rest.split('\n').next().unwrap_or("").trim();
    if line.starts_with("//") { line } else { "" }
}

/// Write the comments in the whitespace between nodes, one per line at `depth`. Returns whether
/// a blank line came after the last of them (which the caller keeps before a node only).
/// `line_start` says whether `text` begins on a line of its own or after something on its line.
fn gap(out: &mut String, text: &str, depth: usize, line_start: bool, emitted: &mut bool) -> bool {
    let segments: Vec<&str> = text.split('\n').collect();
    let last = segments.len() - 1;
    let mut blank = false;
    for (k, seg) in segments.iter().enumerate() {
        let t = seg.trim();
        if t.is_empty() {
            // A whole empty line: not the rest of the line before, nor the indentation of the
            // line after.
            if k < last && (k > 0 || line_start) {
                blank = true;
            }
            continue;
        }
        if blank && *emitted {
            out.push('\n');
        }
        blank = false;
        indent(out, depth);
        out.push_str(t);
        out.push('\n');
        *emitted = true;
    }
    blank
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("    ");
    }
}

/// The node's type and name, then its arguments, then its properties.
fn header(out: &mut String, n: &KdlNode) {
    if let Some(ty) = n.ty() {
        out.push('(');
        out.push_str(&ty.to_string());
        out.push(')');
    }
    out.push_str(&n.name().to_string());
    let as_written = n.entries().iter().any(|e| {
        e.ty().is_some()
            || e.format().is_some_and(|f| {
                !f.leading.trim().is_empty()
                    || !f.trailing.trim().is_empty()
                    || !f.after_ty.trim().is_empty()
            })
    });
    if as_written {
        for e in n.entries() {
            out.push_str(&e.to_string());
        }
        return;
    }
    let (args, props): (Vec<&KdlEntry>, Vec<&KdlEntry>) =
        n.entries().iter().partition(|e| e.name().is_none());
    for e in args.into_iter().chain(props) {
        out.push(' ');
        if let Some(name) = e.name() {
            out.push_str(&name.to_string());
            out.push('=');
        }
        match e.format() {
            Some(f) => out.push_str(&f.value_repr),
            None => out.push_str(&e.value().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(s: &str) -> String {
        format(&s.parse().unwrap(), s)
    }

    #[test]
    fn a_comment_after_a_closing_brace_stays_with_it() {
        // kdl keeps `}// x` as the node's terminator but `} // x` nowhere; both stay, and the
        // blank line after them too, however often the file is formatted.
        for src in [
            "job \"a\" {\n}// note\n\njob \"b\"\n",
            "job \"a\" {\n} // note\n\njob \"b\"\n",
            "job \"a\" {\n} //\n\njob \"b\"\n",
        ] {
            let once = fmt(src);
            assert!(once.contains("}") && once.contains("//"), "{once}");
            assert!(once.contains("\n\njob \"b\""), "{once}");
            assert_eq!(fmt(&once), once, "{src:?}");
        }
        assert_eq!(
            fmt("job \"a\" {\n} // note\n\njob \"b\"\n"),
            "job \"a\" {\n} // note\n\njob \"b\"\n"
        );
    }

    #[test]
    fn canonical_layout() {
        let src = "// top\n\n\n\nhost   \"a\"   port=2  \"x\" // trailing\n/-node 1\njob \"j\" on=\"a\" { // after brace\n\n  // inside\n        sync \"/a\" \"/b\" /-{ x }\n  /-opts \"x\"\n  // last\n\n}\nfoo; bar\n// end\n";
        let want = "// top\n\nhost \"a\" \"x\" port=2 // trailing\n/-node 1\njob \"j\" on=\"a\" {\n    // after brace\n\n    // inside\n    sync \"/a\" \"/b\" /-{ x }\n    /-opts \"x\"\n    // last\n}\nfoo\nbar\n// end\n";
        assert_eq!(fmt(src), want);
        assert_eq!(fmt(want), want);
    }

    #[test]
    fn entries_with_comments_stay_as_written() {
        let src = "job \"j\" /* why */ on=\"a\" {\n}\n";
        assert_eq!(fmt(src), src);
        let src = "node 0x10 #\"raw\"#\n";
        assert_eq!(fmt(src), src);
    }
}
