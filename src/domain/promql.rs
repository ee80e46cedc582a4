//! A team's PromQL confined to its namespace, as prom-label-proxy does:
//! every vector and matrix selector of the parsed query (inside
//! functions, aggregations, binary operations, subqueries, `offset` and
//! `@` alike) gets `<label>="<namespace>"`, replacing any matcher the
//! query had on that label, and the query sent is the rewritten one.
//!
//! The parser keeps label values and strings unescaped and prints them
//! as they are, so values are escaped again before printing, and the
//! printed query is parsed once more and checked: a query whose printed
//! form would select anything unconfined is refused, never sent.

use promql_parser::{
    label::{MatchOp, Matcher, Matchers},
    parser::{self, Expr, VectorSelector},
};

/// Why a query is not sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unconfined {
    #[error("the query does not parse: {0}")]
    Parse(String),
    #[error(
        "the query cannot be confined to its namespace ({0}); rewrite it without that construct"
    )]
    Rewrite(String),
}

/// `query` with every selector confined to `label="namespace"`.
pub fn confine(query: &str, label: &str, namespace: &str) -> Result<String, Unconfined> {
    let mut expr = parser::parse(query).map_err(|e| Unconfined::Parse(first_line(&e)))?;
    walk(&mut expr, &mut |selector| {
        rewrite(selector, label, namespace);
        Ok(())
    })?;
    let confined = expr.to_string();
    // The printed form is what Prometheus will read: check that one.
    let mut reread = parser::parse(&confined).map_err(|e| {
        Unconfined::Rewrite(format!(
            "its rewritten form does not parse: {}",
            first_line(&e)
        ))
    })?;
    walk(&mut reread, &mut |selector| {
        if is_confined(&selector.matchers, label, namespace) {
            Ok(())
        } else {
            Err(Unconfined::Rewrite(format!(
                "a selector of its rewritten form lacks {label}=\"{namespace}\""
            )))
        }
    })?;
    Ok(confined)
}

fn first_line(error: &str) -> String {
    crate::domain::enrich::truncate(error.lines().next().unwrap_or(error).trim(), 200)
}

/// Calls `visit` on every selector of `expr`, values of strings escaped
/// on the way so the printed query reads as the parsed one.
fn walk(
    expr: &mut Expr,
    visit: &mut dyn FnMut(&mut VectorSelector) -> Result<(), Unconfined>,
) -> Result<(), Unconfined> {
    match expr {
        Expr::Aggregate(a) => {
            walk(&mut a.expr, visit)?;
            if let Some(param) = &mut a.param {
                walk(param, visit)?;
            }
            Ok(())
        }
        Expr::Unary(u) => walk(&mut u.expr, visit),
        Expr::Binary(b) => {
            walk(&mut b.lhs, visit)?;
            walk(&mut b.rhs, visit)
        }
        Expr::Paren(p) => walk(&mut p.expr, visit),
        Expr::Subquery(s) => walk(&mut s.expr, visit),
        Expr::NumberLiteral(_) => Ok(()),
        Expr::StringLiteral(s) => {
            s.val = escape(&s.val);
            Ok(())
        }
        Expr::VectorSelector(v) => visit(v),
        Expr::MatrixSelector(m) => visit(&mut m.vs),
        Expr::Call(c) => {
            for arg in &mut c.args.args {
                walk(arg, visit)?;
            }
            Ok(())
        }
        Expr::Extension(_) => Err(Unconfined::Rewrite("an extension expression".into())),
    }
}

fn rewrite(selector: &mut VectorSelector, label: &str, namespace: &str) {
    let ours = || Matcher::new(MatchOp::Equal, label, namespace);
    let escaped = |matchers: &mut Vec<Matcher>| {
        matchers.retain(|m| m.name != label);
        for m in matchers.iter_mut() {
            m.value = escape(&m.value);
        }
        matchers.push(ours());
    };
    let Matchers {
        matchers,
        or_matchers,
    } = &mut selector.matchers;
    if or_matchers.is_empty() {
        escaped(matchers);
    } else {
        // `{a="1" or b="2"}`: each alternative is confined.
        for group in or_matchers.iter_mut() {
            escaped(group);
        }
        // Printed only when there are no alternatives; kept empty.
        matchers.clear();
    }
}

fn is_confined(matchers: &Matchers, label: &str, namespace: &str) -> bool {
    let group_ok = |group: &[Matcher]| {
        let on_label: Vec<&Matcher> = group.iter().filter(|m| m.name == label).collect();
        on_label.len() == 1 && on_label[0].op == MatchOp::Equal && on_label[0].value == namespace
    };
    if matchers.or_matchers.is_empty() {
        group_ok(&matchers.matchers)
    } else {
        matchers.matchers.is_empty() && matchers.or_matchers.iter().all(|g| group_ok(g))
    }
}

/// A value as the inside of a double-quoted PromQL string.
fn escape(value: &str) -> String {
    escape_for(value, &['"'])
}

/// `value` as the inside of a PromQL string quoted by any of `quotes`:
/// backslashes, those quotes and control characters escaped.
pub fn escape_for(value: &str, quotes: &[char]) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if quotes.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(query: &str) -> String {
        confine(query, "namespace", "shop").unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    /// Every selector of `confined` (parsed again) names the namespace
    /// exactly once, and nothing else of `expected` was lost.
    fn assert_confined(query: &str, expected: &str) {
        let confined = ok(query);
        assert_eq!(confined, expected, "{query}");
        let mut count = 0;
        let mut reread = parser::parse(&confined).expect("parses");
        walk(&mut reread, &mut |s| {
            count += 1;
            assert!(is_confined(&s.matchers, "namespace", "shop"), "{confined}");
            Ok(())
        })
        .expect("walks");
        assert!(count > 0, "{confined} has no selector");
    }

    #[test]
    fn plain_selectors_get_the_namespace() {
        assert_confined("up", r#"up{namespace="shop"}"#);
        assert_confined(
            r#"http_requests_total{job="api"}"#,
            r#"http_requests_total{job="api",namespace="shop"}"#,
        );
    }

    #[test]
    fn any_namespace_matcher_is_replaced() {
        for other in [
            r#"x{namespace="payments"}"#,
            r#"x{namespace=~".+"}"#,
            r#"x{namespace!="shop"}"#,
            r#"x{namespace!~"shop",namespace="a"}"#,
        ] {
            assert_confined(other, r#"x{namespace="shop"}"#);
        }
    }

    #[test]
    fn regex_matchers_stay() {
        // Printed sorted by label name.
        assert_confined(
            r#"x{path=~"/api/.*",code!~"2.."}"#,
            r#"x{code!~"2..",namespace="shop",path=~"/api/.*"}"#,
        );
        // Escapes in a regex survive the round trip.
        assert_confined(r#"x{p=~"a\\.b"}"#, r#"x{namespace="shop",p=~"a\\.b"}"#);
    }

    #[test]
    fn functions_aggregations_and_operators() {
        let confined = ok(
            r#"sum by (pod) (rate(http_requests_total{code=~"5.."}[5m])) / on(pod) group_left sum(rate(http_requests_total[5m])) > 0.1"#,
        );
        assert_eq!(
            confined.matches(r#"namespace="shop""#).count(),
            2,
            "{confined}"
        );
        let confined = ok(r#"topk(3, x) and ignoring(instance) y"#);
        assert_eq!(
            confined.matches(r#"namespace="shop""#).count(),
            2,
            "{confined}"
        );
        assert!(
            confined.contains("ignoring (instance)") || confined.contains("ignoring(instance)"),
            "{confined}"
        );
        // An aggregation's parameter may be a query itself.
        let confined = ok(r#"quantile(scalar(q{namespace="other"}), x)"#);
        assert_eq!(
            confined.matches(r#"namespace="shop""#).count(),
            2,
            "{confined}"
        );
        assert!(!confined.contains("other"), "{confined}");
    }

    #[test]
    fn subqueries_offset_and_at() {
        let confined = ok(r#"max_over_time(rate(x[1m])[10m:30s] offset 5m)"#);
        assert_eq!(
            confined.matches(r#"namespace="shop""#).count(),
            1,
            "{confined}"
        );
        assert!(confined.contains("offset 5m"), "{confined}");
        let confined = ok("x @ 1609746000 offset 1h");
        assert!(confined.contains(r#"x{namespace="shop"}"#), "{confined}");
        assert!(confined.contains("@ 1609746000"), "{confined}");
        let confined = ok("rate(y[5m] @ end())");
        assert!(
            confined.contains(r#"y{namespace="shop"}[5m]"#),
            "{confined}"
        );
    }

    #[test]
    fn bare_label_selectors_and_metric_name_matchers() {
        let confined = ok(r#"{__name__=~"http_.*",job="api"}"#);
        assert!(confined.contains(r#"namespace="shop""#), "{confined}");
        assert!(confined.contains("__name__"), "{confined}");
    }

    #[test]
    fn or_alternatives_are_each_confined() {
        let confined = ok(r#"x{a="1" or namespace="other"}"#);
        let mut reread = parser::parse(&confined).expect("parses");
        walk(&mut reread, &mut |s| {
            assert_eq!(s.matchers.or_matchers.len(), 2, "{confined}");
            assert!(is_confined(&s.matchers, "namespace", "shop"), "{confined}");
            Ok(())
        })
        .expect("walks");
        assert!(!confined.contains("other"), "{confined}");
    }

    #[test]
    fn quotes_in_values_cannot_break_out() {
        // A value that, printed as it is, would close the selector and
        // open an unconfined one.
        let sneaky = r#"x{a="\"} or vector(1) or y{b=\""}"#;
        let confined = ok(sneaky);
        let mut reread = parser::parse(&confined).expect("parses");
        let mut selectors = 0;
        walk(&mut reread, &mut |s| {
            selectors += 1;
            assert!(is_confined(&s.matchers, "namespace", "shop"), "{confined}");
            Ok(())
        })
        .expect("walks");
        assert_eq!(selectors, 1, "{confined}");
        let literal = ok(r#"label_replace(x, "dst", "a\"b", "src", "(.*)")"#);
        assert!(literal.contains(r#""a\"b""#), "{literal}");
    }

    #[test]
    fn numbers_and_strings_alone_stay_as_they_are() {
        assert_eq!(ok("1 + 2"), "1 + 2");
        assert_eq!(ok("vector(1)"), "vector(1)");
    }

    #[test]
    fn a_renamed_label() {
        assert_eq!(
            confine(
                r#"x{kubernetes_namespace="a"}"#,
                "kubernetes_namespace",
                "shop"
            )
            .expect("ok"),
            r#"x{kubernetes_namespace="shop"}"#
        );
    }

    #[test]
    fn a_query_that_does_not_parse_is_refused() {
        for bad in ["sum(", "x{", "rate(x[5m]", "x{namespace=}"] {
            assert!(
                matches!(confine(bad, "namespace", "shop"), Err(Unconfined::Parse(_))),
                "{bad}"
            );
        }
    }
}
