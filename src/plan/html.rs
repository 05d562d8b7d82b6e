//! The plan as one self-contained HTML page for operators, and as Markdown for `show`.
//!
//! The page needs nothing but itself: inline CSS and JS, no fonts, images or scripts from
//! anywhere, and a Content-Security-Policy that forbids loading any. Evidence is customer-
//! controlled text (names, subjects, descriptions), so every piece of text from the plan goes
//! through [`esc`] (HTML) or [`md`] (Markdown). Same plan, same bytes: nothing depends on the
//! clock or on hash-map order.
//!
//! Filters (table, decision, minimum confidence) live in the URL fragment, e.g.
//! `#table=payments&decision=needs_review&min=0.9`, so a filtered view can be linked; the script
//! writes the number of changes it shows into `#state` (`data-visible`), where tests read it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::{Change, Decision, Op, Plan};

const CSS: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header,main{max-width:1400px;margin:0 auto;padding:12px 20px}
h1{font-size:20px;margin:8px 0}
h2{font-size:15px;margin:0 0 6px}
table{border-collapse:collapse;margin:6px 0}
th,td{border:1px solid #d5d9de;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eef0f3;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#57606a;font-size:12px;word-break:break-all}
#filters{position:sticky;top:0;background:#fff;border-bottom:1px solid #d5d9de;padding:8px 20px;z-index:1}
#filters label{margin-right:16px}
#state{font-weight:600;margin-left:12px}
.change{background:#fff;border:1px solid #d5d9de;border-left:5px solid #8c959f;border-radius:4px;margin:12px 0;padding:10px 14px}
.change.accepted{border-left-color:#1a7f37}
.change.needs_review{border-left-color:#bf8700}
.change.rejected{border-left-color:#cf222e}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;color:#fff;background:#8c959f}
.badge.accepted{background:#1a7f37}.badge.needs_review{background:#9a6700}.badge.rejected{background:#cf222e}
.reasons li{color:#9a3412}
.explanation li{color:#57606a}
.evidence{overflow-x:auto}
.evidence td,.evidence th{max-width:320px;word-break:break-word}
.before{color:#cf222e}.after{color:#1a7f37}
.hidden{display:none}
"#;

const JS: &str = r#"
(function () {
  var changes = Array.prototype.slice.call(document.querySelectorAll('.change'));
  var table = document.getElementById('f-table');
  var decision = document.getElementById('f-decision');
  var min = document.getElementById('f-min');
  var state = document.getElementById('state');
  function read() {
    var f = { table: '', decision: '', min: '' };
    location.hash.replace(/^#/, '').split('&').forEach(function (part) {
      var kv = part.split('=');
      if (kv.length === 2 && f.hasOwnProperty(kv[0])) { f[kv[0]] = decodeURIComponent(kv[1]); }
    });
    return f;
  }
  function show(f) {
    var floor = parseFloat(f.min);
    if (isNaN(floor)) { floor = 0; }
    var visible = 0;
    changes.forEach(function (c) {
      var on = (!f.table || c.dataset.table === f.table) &&
        (!f.decision || c.dataset.decision === f.decision) &&
        parseFloat(c.dataset.confidence) >= floor;
      c.classList.toggle('hidden', !on);
      if (on) { visible += 1; }
    });
    state.setAttribute('data-visible', String(visible));
    state.setAttribute('data-filter', JSON.stringify(f));
    state.textContent = 'showing ' + visible + ' of ' + changes.length + ' changes';
  }
  function fromControls() {
    var f = { table: table.value, decision: decision.value, min: min.value };
    var parts = [];
    Object.keys(f).forEach(function (k) { if (f[k]) { parts.push(k + '=' + encodeURIComponent(f[k])); } });
    history.replaceState(null, '', parts.length ? '#' + parts.join('&') : location.pathname);
    show(f);
  }
  function fromHash() {
    var f = read();
    table.value = f.table; decision.value = f.decision; min.value = f.min;
    show(f);
  }
  [table, decision, min].forEach(function (el) { el.addEventListener('input', fromControls); });
  window.addEventListener('hashchange', fromHash);
  fromHash();
})();
"#;

/// Escapes text for HTML content and attribute values (double- or single-quoted).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The decision's name in the plan file, which filters use: `needs_review`.
fn key(d: Decision) -> &'static str {
    match d {
        Decision::Accepted => "accepted",
        Decision::NeedsReview => "needs_review",
        Decision::Rejected => "rejected",
    }
}

const DECISIONS: [Decision; 3] = [
    Decision::Accepted,
    Decision::NeedsReview,
    Decision::Rejected,
];

fn what(c: &Change) -> String {
    match c.op {
        Op::Insert => format!("insert {} {}", c.table, c.local.as_deref().unwrap_or("")),
        Op::Update => format!(
            "update {} {}={}",
            c.table,
            c.key_column,
            c.key.as_deref().unwrap_or("")
        ),
    }
}

/// The whole plan as one page.
pub fn html(plan: &Plan) -> String {
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // Nothing may be fetched from anywhere: only the page's own inline style and script run.
    o.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; form-action 'none'; base-uri 'none'\">\n");
    o.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(o, "<title>gapfill plan {}</title>", esc(&plan.hash()));
    let _ = writeln!(o, "<style>{CSS}</style>\n</head>\n<body>");
    summary_html(plan, &mut o);
    filters_html(plan, &mut o);
    o.push_str("<main>\n");
    for c in &plan.changes {
        change_html(plan, c, &mut o);
    }
    if !plan.unmatched.is_empty() {
        o.push_str("<section id=\"unmatched\"><h2>Evidence that matched nothing</h2>\n<table><tr><th>evidence</th><th>entity</th><th>why</th></tr>\n");
        for u in &plan.unmatched {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&u.evidence),
                esc(&u.entity),
                esc(&u.why)
            );
        }
        o.push_str("</table></section>\n");
    }
    o.push_str("</main>\n");
    let _ = writeln!(o, "<script>{JS}</script>\n</body>\n</html>");
    o
}

fn summary_html(plan: &Plan, o: &mut String) {
    o.push_str("<header>\n");
    let _ = writeln!(o, "<h1>gapfill plan</h1>");
    let _ = writeln!(
        o,
        "<p>Restore point <b>{}</b>; evidence window <b>{}</b> to <b>{}</b>.</p>",
        esc(plan.restore_point.as_deref().unwrap_or("unknown")),
        esc(plan.window.since.as_deref().unwrap_or("the beginning")),
        esc(plan.window.until.as_deref().unwrap_or("now")),
    );
    let _ = writeln!(
        o,
        "<p class=\"meta\">plan {} · mapping {} · schema {} · {}</p>",
        esc(&plan.hash()),
        esc(&plan.mapping_hash),
        esc(&plan.schema_fingerprint),
        esc(&plan.dialect)
    );
    o.push_str("<table id=\"summary\"><tr><th rowspan=\"2\">table</th><th colspan=\"3\">inserts</th><th colspan=\"3\">updates</th></tr>\n<tr>");
    for _ in 0..2 {
        for d in DECISIONS {
            let _ = write!(o, "<th>{}</th>", esc(d.as_str()));
        }
    }
    o.push_str("</tr>\n");
    for (table, t) in &plan.summary.tables {
        let _ = write!(o, "<tr><td>{}</td>", esc(table));
        for by in [&t.inserts, &t.updates] {
            for d in DECISIONS {
                let _ = write!(
                    o,
                    "<td class=\"n\">{}</td>",
                    by.get(&d).copied().unwrap_or(0)
                );
            }
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
    let count = |d| plan.changes.iter().filter(|c| c.decision == d).count();
    let _ = writeln!(
        o,
        "<p>{} changes: {} accepted, {} need review, {} rejected; {} existing rows already agree; {} evidence items, {} skipped by the sources, {} matched nothing.</p>",
        plan.changes.len(),
        count(Decision::Accepted),
        count(Decision::NeedsReview),
        count(Decision::Rejected),
        plan.summary.unchanged,
        plan.summary.evidence,
        plan.summary.skipped,
        plan.summary.unmatched,
    );
    o.push_str("</header>\n");
}

fn filters_html(plan: &Plan, o: &mut String) {
    let tables: BTreeSet<&str> = plan.changes.iter().map(|c| c.table.as_str()).collect();
    o.push_str(
        "<nav id=\"filters\">\n<label>table <select id=\"f-table\"><option value=\"\">all</option>",
    );
    for t in tables {
        let _ = write!(o, "<option value=\"{0}\">{0}</option>", esc(t));
    }
    o.push_str("</select></label>\n<label>decision <select id=\"f-decision\"><option value=\"\">all</option>");
    for d in DECISIONS {
        let _ = write!(
            o,
            "<option value=\"{}\">{}</option>",
            key(d),
            esc(d.as_str())
        );
    }
    o.push_str("</select></label>\n<label>minimum confidence <input id=\"f-min\" type=\"number\" min=\"0\" max=\"1\" step=\"0.05\" placeholder=\"0\"></label>\n");
    let _ = writeln!(
        o,
        "<output id=\"state\" data-visible=\"{0}\">showing {0} of {0} changes</output>\n</nav>",
        plan.changes.len()
    );
}

fn change_html(plan: &Plan, c: &Change, o: &mut String) {
    let d = key(c.decision);
    let _ = writeln!(
        o,
        "<section class=\"change {d}\" id=\"{}\" data-table=\"{}\" data-decision=\"{d}\" data-confidence=\"{:.4}\">",
        esc(&c.id),
        esc(&c.table),
        c.confidence
    );
    let _ = writeln!(
        o,
        "<h2>{} <span class=\"badge {d}\">{}</span> confidence {:.3}</h2>\n<p class=\"meta\">{} · decided {}</p>",
        esc(&what(c)),
        esc(c.decision.as_str()),
        c.confidence,
        esc(&c.id),
        esc(&decided_by(c)),
    );
    o.push_str("<table class=\"columns\"><tr><th>column</th><th>before</th><th>after</th><th>evidence</th><th>other values</th></tr>\n");
    for col in &c.columns {
        let zone = col
            .zone
            .as_deref()
            .map(|z| format!(" ({})", esc(z)))
            .unwrap_or_default();
        let inferred = col
            .inferred
            .as_deref()
            .map(|why| format!("<br><small>inferred: {}</small>", esc(why)))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td class=\"before\">{}</td><td class=\"after\">{}{zone}{inferred}</td><td>{}</td><td>{}</td></tr>",
            esc(&col.column),
            esc(col.before.as_deref().unwrap_or("")),
            esc(&col.after.display()),
            esc(&col.evidence.join(", ")),
            esc(&col.alternatives.join("; ")),
        );
    }
    o.push_str("</table>\n");
    list_html(o, "reasons", &c.reasons);
    list_html(o, "explanation", &c.explanation);
    if !c.depends_on.is_empty() {
        let _ = writeln!(
            o,
            "<p class=\"meta\">needs first: {}</p>",
            esc(&c.depends_on.join(", "))
        );
    }
    evidence_html(plan, c, o);
    o.push_str("</section>\n");
}

fn list_html(o: &mut String, class: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = write!(o, "<ul class=\"{class}\">");
    for i in items {
        let _ = write!(o, "<li>{}</li>", esc(i));
    }
    o.push_str("</ul>\n");
}

/// The change's evidence side by side: one column per item, one row per field.
fn evidence_html(plan: &Plan, c: &Change, o: &mut String) {
    let items: Vec<_> = c
        .evidence
        .iter()
        .map(|id| (id, plan.evidence.get(id)))
        .collect();
    if items.is_empty() {
        return;
    }
    let fields: BTreeSet<&str> = items
        .iter()
        .filter_map(|(_, e)| *e)
        .flat_map(|e| e.fields.keys().map(String::as_str))
        .collect();
    o.push_str("<div class=\"evidence\"><table><tr><th>evidence</th>");
    for (id, _) in &items {
        let _ = write!(o, "<th>{}</th>", esc(id));
    }
    o.push_str("</tr>\n");
    type Getter = fn(&super::EvidenceRef) -> String;
    let rows: [(&str, Getter); 5] = [
        ("source", |e| format!("{} {}", e.source, e.kind)),
        ("file", |e| e.origin.clone()),
        ("where", |e| e.locator.clone()),
        ("observed", |e| e.observed_at.clone().unwrap_or_default()),
        ("hash", |e| e.hash.clone()),
    ];
    for (name, get) in rows {
        let _ = write!(o, "<tr><th>{name}</th>");
        for (_, e) in &items {
            let _ = write!(o, "<td>{}</td>", esc(&e.map(get).unwrap_or_default()));
        }
        o.push_str("</tr>\n");
    }
    for f in fields {
        let _ = write!(o, "<tr><th>{}</th>", esc(f));
        for (_, e) in &items {
            let v = e.and_then(|e| e.fields.get(f)).map_or("", String::as_str);
            let _ = write!(o, "<td>{}</td>", esc(v));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table></div>\n");
}

fn decided_by(c: &Change) -> String {
    match &c.decided_by {
        super::DecidedBy::Auto => "by gapfill's thresholds".into(),
        super::DecidedBy::Threshold { score } => format!("by --accept-above {score}"),
        super::DecidedBy::File { path } => format!("in review file {path}"),
    }
}

/// Escapes text for Markdown: the characters that can start emphasis, code, links, raw HTML,
/// entities or table cells mid-line are backslash-escaped (the output never puts customer text
/// at the start of a line), and line breaks become spaces, so customer text stays text.
pub fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The plan as Markdown: the summary table, then every change with its columns, reasons and
/// evidence.
pub fn markdown(plan: &Plan) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# gapfill plan {}\n", md(&plan.hash()));
    let _ = writeln!(
        o,
        "Restore point {}; evidence window {} to {}.\n",
        md(plan.restore_point.as_deref().unwrap_or("unknown")),
        md(plan.window.since.as_deref().unwrap_or("the beginning")),
        md(plan.window.until.as_deref().unwrap_or("now")),
    );
    o.push_str("| table | insert accepted | insert needs review | insert rejected | update accepted | update needs review | update rejected |\n|---|--:|--:|--:|--:|--:|--:|\n");
    for (table, t) in &plan.summary.tables {
        let _ = write!(o, "| {} |", md(table));
        for by in [&t.inserts, &t.updates] {
            for d in DECISIONS {
                let _ = write!(o, " {} |", by.get(&d).copied().unwrap_or(0));
            }
        }
        o.push('\n');
    }
    let mut by_decision: BTreeMap<Decision, usize> = BTreeMap::new();
    for c in &plan.changes {
        *by_decision.entry(c.decision).or_default() += 1;
    }
    let _ = writeln!(
        o,
        "\n{} changes: {} accepted, {} need review, {} rejected.",
        plan.changes.len(),
        by_decision.get(&Decision::Accepted).unwrap_or(&0),
        by_decision.get(&Decision::NeedsReview).unwrap_or(&0),
        by_decision.get(&Decision::Rejected).unwrap_or(&0),
    );
    for c in &plan.changes {
        let _ = writeln!(
            o,
            "\n## {}: {} ({}, confidence {:.3})\n",
            md(&c.id),
            md(&what(c)),
            md(c.decision.as_str()),
            c.confidence
        );
        o.push_str("| column | before | after | evidence |\n|---|---|---|---|\n");
        for col in &c.columns {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                md(&col.column),
                md(col.before.as_deref().unwrap_or("")),
                md(&col.after.display()),
                md(&col.evidence.join(", "))
            );
        }
        if !c.reasons.is_empty() {
            o.push('\n');
            for r in &c.reasons {
                let _ = writeln!(o, "- **{}**", md(r));
            }
        }
        if !c.explanation.is_empty() {
            o.push('\n');
            for r in &c.explanation {
                let _ = writeln!(o, "- {}", md(r));
            }
        }
        if !c.evidence.is_empty() {
            o.push_str("\nEvidence:\n\n");
            for id in &c.evidence {
                match plan.evidence.get(id) {
                    Some(e) => {
                        let fields = e
                            .fields
                            .iter()
                            .map(|(k, v)| format!("{}: {}", md(k), md(v)))
                            .collect::<Vec<_>>()
                            .join("; ");
                        let _ = writeln!(
                            o,
                            "- {} {} {} {} {}: {fields}",
                            md(id),
                            md(&e.source),
                            md(&e.kind),
                            md(&e.origin),
                            md(&e.locator)
                        );
                    }
                    None => {
                        let _ = writeln!(o, "- {} (not in the plan)", md(id));
                    }
                }
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            esc(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(
            md("a|b *c* <d>\n[e](f) &amp; `g` x_y"),
            r"a\|b \*c\* \<d\> \[e\](f) \&amp; \`g\` x\_y"
        );
    }
}
