//! Stage 2: late expansion of `$(ENV)`, `@(file)` and `%(name)` (uWSGI semantics §1.5).
//!
//! uWSGI runs three passes over every collected entry, in this order: `$()`, then `@()`, then
//! `%()`. A reference that cannot be resolved is left verbatim. After a substitution the result
//! is expanded again (so chains resolve); liege guards against self-reference, which would loop
//! forever in uWSGI. `%(...)` containing spaces is an arithmetic pipeline.

/// Expand every `sigil(...)` reference in `value`. `resolve` gets the text between the
/// parentheses and returns its replacement (already fully expanded), or `None` to leave the
/// reference verbatim. A reference without a closing `)` is left as it is.
pub fn expand_refs(
    value: &str,
    sigil: char,
    resolve: &mut dyn FnMut(&str) -> Option<String>,
) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let open: String = [sigil, '('].iter().collect();
    while let Some(at) = rest.find(&open) {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(close) => {
                let name = &after[..close];
                match resolve(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        out.push_str(&open);
                        out.push_str(name);
                        out.push(')');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[at..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every name referenced as `%(name)` in `value` (arithmetic operands included).
pub fn placeholder_refs(value: &str) -> Vec<String> {
    let mut names = Vec::new();
    expand_refs(value, '%', &mut |inner| {
        if inner.contains(' ') {
            names.extend(inner.split_whitespace().map(str::to_string));
        } else {
            names.push(inner.to_string());
        }
        None
    });
    names
}

/// `$(NAME)` → the environment variable (recursively expanded, self-reference guarded).
pub fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    fn go(value: &str, env: &dyn Fn(&str) -> Option<String>, stack: &mut Vec<String>) -> String {
        expand_refs(value, '$', &mut |name| {
            if stack.iter().any(|s| s == name) {
                return None;
            }
            let v = env(name)?;
            stack.push(name.to_string());
            let r = go(&v, env, stack);
            stack.pop();
            Some(r)
        })
    }
    go(value, env, &mut Vec::new())
}

/// `@(path)` → the file's contents with one trailing newline removed. `read` returns the raw
/// contents or an error message; errors are collected and the reference left verbatim.
pub fn expand_files(
    value: &str,
    read: &dyn Fn(&str) -> Result<String, String>,
    errors: &mut Vec<String>,
) -> String {
    expand_refs(value, '@', &mut |path| match read(path) {
        Ok(mut text) => {
            if text.ends_with('\n') {
                text.pop();
            }
            Some(text)
        }
        Err(e) => {
            errors.push(format!("@({path}): {e}"));
            None
        }
    })
}

/// The outcome of `%()` expansion of one value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Expanded {
    pub value: String,
    /// Names that resolved to nothing (left verbatim).
    pub unresolved: Vec<String>,
    /// Names whose expansion referred back to themselves (left verbatim).
    pub self_referencing: Vec<String>,
    /// The expansion grew past [`MAX_EXPANSION`] bytes or [`MAX_LOOKUPS`] look-ups and was
    /// cut short.
    pub too_large: bool,
}

/// Upper bound on the text placeholders may substitute into one value (guards against
/// exponential growth such as `a = %(b)%(b)`, `b = %(c)%(c)`, ...).
pub const MAX_EXPANSION: usize = 1 << 20;

/// Upper bound on placeholder look-ups while expanding one value (same purpose).
pub const MAX_LOOKUPS: usize = 10_000;

struct Walk<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    stack: Vec<String>,
    out: Expanded,
    budget: usize,
    lookups: usize,
}

/// `%(name)` → the first value ever given to `name` (`lookup`), recursively expanded.
pub fn expand_placeholders(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Expanded {
    let mut walk = Walk {
        lookup,
        stack: Vec::new(),
        out: Expanded::default(),
        budget: MAX_EXPANSION,
        lookups: 0,
    };
    let v = expand_pct(value, &mut walk);
    walk.out.value = v;
    walk.out
}

fn expand_pct(value: &str, walk: &mut Walk<'_>) -> String {
    expand_refs(value, '%', &mut |inner| {
        if inner.contains(' ') {
            let mut resolve_operand = |tok: &str| resolve_name(tok, walk, false);
            return Some(arithmetic(inner, &mut resolve_operand));
        }
        resolve_name(inner, walk, true)
    })
}

fn resolve_name(name: &str, walk: &mut Walk<'_>, report_missing: bool) -> Option<String> {
    if walk.stack.iter().any(|s| s == name) {
        if !walk.out.self_referencing.iter().any(|s| s == name) {
            walk.out.self_referencing.push(name.to_string());
        }
        return None;
    }
    let Some(raw) = (walk.lookup)(name) else {
        if report_missing && !walk.out.unresolved.iter().any(|s| s == name) {
            walk.out.unresolved.push(name.to_string());
        }
        return None;
    };
    walk.lookups += 1;
    if raw.len() > walk.budget || walk.lookups > MAX_LOOKUPS {
        walk.out.too_large = true;
        return None;
    }
    walk.budget -= raw.len();
    walk.stack.push(name.to_string());
    let v = expand_pct(&raw, walk);
    walk.stack.pop();
    Some(v)
}

/// uWSGI's `%(a b + c)` pipeline: tokens left to right; operands (a name's value, or the token
/// itself) are concatenated unless an operator `+ - * /` stands between them; `++`/`--`
/// increment/decrement the running value. Numbers are read like C `atoi`; division by zero
/// gives 0.
pub fn arithmetic(expr: &str, operand: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let mut acc = String::new();
    let mut op: Option<char> = None;
    for tok in expr.split_whitespace() {
        match tok {
            "+" | "-" | "*" | "/" => op = tok.chars().next(),
            "++" => acc = (atoi(&acc).wrapping_add(1)).to_string(),
            "--" => acc = (atoi(&acc).wrapping_sub(1)).to_string(),
            _ => {
                let v = operand(tok).unwrap_or_else(|| tok.to_string());
                acc = match op.take() {
                    None => acc + &v,
                    Some(o) => {
                        let (a, b) = (atoi(&acc), atoi(&v));
                        match o {
                            '+' => a.wrapping_add(b),
                            '-' => a.wrapping_sub(b),
                            '*' => a.wrapping_mul(b),
                            _ => a.checked_div(b).unwrap_or(0),
                        }
                        .to_string()
                    }
                };
            }
        }
    }
    acc
}

/// C `atoi`: optional sign and leading digits; anything else gives 0.
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.wrapping_mul(10).wrapping_add(i64::from(b - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn table(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m = HashMap::new();
        for (k, v) in pairs {
            // First value wins, as in uWSGI.
            m.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
        m
    }

    #[test]
    fn env_expansion() {
        let env = |n: &str| match n {
            "HOME" => Some("/home/me".to_string()),
            "A" => Some("$(B)x".to_string()),
            "B" => Some("b".to_string()),
            "LOOP" => Some("$(LOOP)".to_string()),
            _ => None,
        };
        assert_eq!(expand_env("$(HOME)/app", &env), "/home/me/app");
        assert_eq!(expand_env("$(A)", &env), "bx");
        assert_eq!(expand_env("$(NOPE)/x", &env), "$(NOPE)/x");
        assert_eq!(expand_env("$(LOOP)", &env), "$(LOOP)");
        assert_eq!(expand_env("$(HOME", &env), "$(HOME");
        assert_eq!(expand_env("a$b$(HOME)", &env), "a$b/home/me");
    }

    #[test]
    fn file_expansion() {
        let read = |p: &str| match p {
            "/v" => Ok("1.2\n".to_string()),
            "/two" => Ok("a\n\n".to_string()),
            _ => Err("no such file".to_string()),
        };
        let mut errs = Vec::new();
        assert_eq!(expand_files("v@(/v)", &read, &mut errs), "v1.2");
        assert_eq!(expand_files("@(/two)", &read, &mut errs), "a\n");
        assert!(errs.is_empty());
        assert_eq!(expand_files("@(/nope)", &read, &mut errs), "@(/nope)");
        assert_eq!(errs.len(), 1);
    }

    #[test]
    fn placeholders_first_value_chains_and_verbatim() {
        let t = table(&[
            ("base", "/srv"),
            ("app", "%(base)/app"),
            ("base", "/other"),
            ("me", "x%(me)"),
            ("a", "%(b)"),
            ("b", "%(a)"),
        ]);
        let l = |n: &str| t.get(n).cloned();
        assert_eq!(expand_placeholders("%(app)/env", &l).value, "/srv/app/env");
        let e = expand_placeholders("%(nope)/x", &l);
        assert_eq!(e.value, "%(nope)/x");
        assert_eq!(e.unresolved, vec!["nope".to_string()]);
        let e = expand_placeholders("%(me)", &l);
        assert_eq!(e.value, "x%(me)");
        assert_eq!(e.self_referencing, vec!["me".to_string()]);
        assert_eq!(expand_placeholders("%(a)", &l).value, "%(a)");
    }

    #[test]
    fn arithmetic_pipeline() {
        let t = table(&[("num", "5"), ("two", "2"), ("zero", "0")]);
        let l = |n: &str| t.get(n).cloned();
        // "5" and "2" concatenate first: 52 + 3.
        assert_eq!(expand_placeholders("%(num 2 + 3)", &l).value, "55");
        assert_eq!(expand_placeholders("%(num + two)", &l).value, "7");
        assert_eq!(expand_placeholders("%(num * two - 1)", &l).value, "9");
        assert_eq!(expand_placeholders("%(num / zero)", &l).value, "0");
        assert_eq!(expand_placeholders("%(num ++)", &l).value, "6");
        assert_eq!(expand_placeholders("%(num -- --)", &l).value, "3");
        assert_eq!(expand_placeholders("%(num .x)", &l).value, "5.x");
    }

    #[test]
    fn refs_are_listed() {
        assert_eq!(
            placeholder_refs("%(a)/%(b c + 1)"),
            vec!["a", "b", "c", "+", "1"]
        );
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi("42abc"), 42);
        assert_eq!(atoi("-7"), -7);
        assert_eq!(atoi("x"), 0);
        assert_eq!(atoi(""), 0);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Text without any reference is returned unchanged by every pass.
        #[test]
        fn no_refs_is_identity(s in "[^$@%]*") {
            let none = |_: &str| None::<String>;
            prop_assert_eq!(expand_env(&s, &none), s.clone());
            prop_assert_eq!(expand_placeholders(&s, &none).value, s.clone());
            let mut errs = Vec::new();
            prop_assert_eq!(expand_files(&s, &|_| Err("x".into()), &mut errs), s.clone());
        }

        /// Unresolvable references are left exactly verbatim, whatever surrounds them (text with
        /// spaces is excluded: `%(a b)` is an arithmetic pipeline, which concatenates literals).
        #[test]
        fn unresolved_is_verbatim(s in "[^ ]*") {
            let none = |_: &str| None::<String>;
            prop_assert_eq!(expand_env(&s, &none), s.clone());
            prop_assert_eq!(expand_placeholders(&s, &none).value, s.clone());
        }

        /// A defined name is replaced by its value, in any context, and never loops.
        #[test]
        fn defined_name_is_substituted(pre in "[a-z /]*", name in "[a-z]{1,8}", val in "[a-z0-9/]*", post in "[a-z /]*") {
            let n2 = name.clone();
            let v2 = val.clone();
            let l = move |n: &str| (n == n2).then(|| v2.clone());
            let text = format!("{pre}%({name}){post}");
            prop_assert_eq!(expand_placeholders(&text, &l).value, format!("{pre}{val}{post}"));
        }

        /// Doubling chains are cut short instead of growing exponentially.
        #[test]
        fn doubling_chains_are_bounded(n in 20usize..40) {
            let l = move |name: &str| {
                let i: usize = name.strip_prefix('v')?.parse().ok()?;
                (i < n).then(|| format!("%(v{})%(v{})", i + 1, i + 1))
            };
            let e = expand_placeholders("%(v0)", &l);
            prop_assert!(e.too_large);
            prop_assert!(e.value.len() <= 4 * MAX_EXPANSION);
        }

        /// Arbitrary (even self- or mutually-referencing) tables always terminate.
        #[test]
        fn expansion_terminates(vals in proptest::collection::vec("(%\\([a-c]\\)|[a-z]){0,6}", 3)) {
            let l = move |n: &str| match n { "a" => Some(vals[0].clone()), "b" => Some(vals[1].clone()), "c" => Some(vals[2].clone()), _ => None };
            let _ = expand_placeholders("%(a)%(b)%(c)", &l);
        }

        /// The arithmetic pipeline agrees with integer arithmetic for a + b and a * b.
        #[test]
        fn arithmetic_matches_integers(a in 0i64..100000, b in 1i64..100000) {
            let mut lit = |t: &str| Some(t.to_string());
            prop_assert_eq!(arithmetic(&format!("{a} + {b}"), &mut lit), (a + b).to_string());
            prop_assert_eq!(arithmetic(&format!("{a} * {b}"), &mut lit), (a * b).to_string());
            prop_assert_eq!(arithmetic(&format!("{a} / {b}"), &mut lit), (a / b).to_string());
            prop_assert_eq!(arithmetic(&format!("{a} {b}"), &mut lit), format!("{a}{b}"));
        }
    }
}
