//! Keeps `docs/kernel-mapping.md` honest: every dax-rs item and every test it names
//! must exist in the workspace sources.
//!
//! The sources are the `.rs` files under the crates `dax-device`, `dax-drivers`,
//! `dax-iomap`, `dax-fault`, `dax-testdev` and `fsdax` (this file excepted, so that a
//! name written here cannot vouch for itself). They are read as text: comments, string and
//! character literals are blanked, then a small scanner follows the braces and records
//! what each block declares.
//!
//! # Tables
//!
//! Every Markdown table of the document is checked. Its header row must have a
//! `dax-rs` and a `tests` column, and each row as many cells as the header (a `|`
//! between backticks does not split a cell).
//!
//! # The `tests` column
//!
//! A cell holds backticked test names separated by commas, or `—` for none; anything
//! else in the cell is reported. Each name must be a function `fn NAME` whose
//! attributes include `#[test]`; functions written inside `proptest! { ... }` count, as
//! they carry `#[test]` too. Tests that only a macro's expansion defines (such as
//! `sweep!`) cannot be listed.
//!
//! # The `dax-rs` column
//!
//! Each backticked span is reduced to item paths:
//! 1. `Prefix::{a, b}` stands for `Prefix::a` and `Prefix::b`.
//! 2. A call's arguments are dropped: `index()` is `index`, `f(a, b)` is `f`.
//! 3. Generic arguments are dropped from the path and checked as spans of their own:
//!    `Arc<DaxDevice>` gives `Arc` and `DaxDevice`; lifetimes are skipped.
//! 4. What is left must be a path, identifiers joined by `::`; any other span is prose
//!    (`nr != 1`, `DaxError::Os { errno: 512 }`) and is not checked.
//! 5. A single identifier without lower-case letters (`EIO`, `NOCACHE`, `MAP_FIXED`) is
//!    a kernel constant, flag or errno name and is not checked; a dax-rs constant is
//!    written with its type or module (`DaxFlags::ALIVE`).
//! 6. A single identifier listed in [`NOT_ITEMS`] (standard-library names and libc
//!    names that a cell uses to describe a mechanism) is not checked.
//!
//! Every other path must resolve:
//! * `Type::member`, where `Type` starts with an upper-case letter: `Type` is declared
//!   `pub struct`, `pub enum`, `pub trait`, `pub type` or `pub union`, and `member` is
//!   declared for it: a `pub fn` or `pub const` in an `impl Type` block, any `fn` in an
//!   `impl Trait for Type` block or in `trait Type`, a variant of `enum Type`, a `pub`
//!   field of `struct Type`, or a `const` of a `bitflags!` `struct Type`.
//! * Otherwise the last segment is declared as a public item anywhere: `pub fn`,
//!   `pub struct`, `pub enum`, `pub trait`, `pub type`, `pub union`, `pub const`,
//!   `pub static`, `pub mod`, a `pub` field, an enum variant, or a `fn` of a
//!   `pub trait`; or it is one of the crate names.
//! * Each lower-case segment before those is a crate name (`dax_device`) or a
//!   `pub mod`; each upper-case one a declared type.
//!
//! Every failure is collected; the test fails once, listing all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The crates whose sources are scanned (directory names; `-` becomes `_` for paths).
const CRATES: &[&str] = &[
    "dax-device",
    "dax-drivers",
    "dax-iomap",
    "dax-fault",
    "dax-testdev",
    "fsdax",
];

/// Single identifiers in the `dax-rs` column that are not dax-rs items, with why.
const NOT_ITEMS: &[(&str, &str)] = &[
    (
        "Arc",
        "std::sync::Arc, in \"dropping the last `Arc<DaxDevice>`\"",
    ),
    ("None", "Option::None, in \"(`None` once dead)\""),
    (
        "fdatasync",
        "the system call MemDriver's flush makes for a file on a disk",
    ),
    (
        "mprotect",
        "the libc call the mmu backend uses for dirty tracking",
    ),
    ("si_addr", "a siginfo field the mmu backend fills in"),
    ("si_addr_lsb", "a siginfo field the mmu backend fills in"),
];

// =====================================================================================
// The document.
// =====================================================================================

/// One data row of a table.
struct Row {
    /// 1-based line number in the document.
    line: usize,
    /// The `dax-rs` cell.
    dax_rs: String,
    /// The `tests` cell.
    tests: String,
}

/// Splits a table line into its cells; a `|` between backticks stays in its cell.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = vec![String::new()];
    let mut in_code = false;
    for c in inner.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.last_mut().unwrap().push(c);
            }
            '|' if !in_code => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

fn is_separator(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('|') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

/// The data rows of every table, or the problems found in the tables' shape.
fn table_rows(doc: &str, problems: &mut Vec<String>) -> Vec<Row> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut rows = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let is_header = lines[i].trim_start().starts_with('|')
            && lines.get(i + 1).is_some_and(|l| is_separator(l));
        if !is_header {
            i += 1;
            continue;
        }
        let header = cells(lines[i]);
        let col = |name: &str| header.iter().position(|h| h == name);
        let (dax_rs, tests) = (col("dax-rs"), col("tests"));
        if dax_rs.is_none() || tests.is_none() {
            problems.push(format!(
                "line {}: table header {:?} lacks a `dax-rs` or a `tests` column",
                i + 1,
                header
            ));
        }
        i += 2;
        while i < lines.len() && lines[i].trim_start().starts_with('|') {
            let row = cells(lines[i]);
            if row.len() != header.len() {
                problems.push(format!(
                    "line {}: {} cells, the header has {}",
                    i + 1,
                    row.len(),
                    header.len()
                ));
            } else if let (Some(d), Some(t)) = (dax_rs, tests) {
                rows.push(Row {
                    line: i + 1,
                    dax_rs: row[d].clone(),
                    tests: row[t].clone(),
                });
            }
            i += 1;
        }
    }
    rows
}

/// The backticked spans of a cell, and the text outside them.
fn backticked(cell: &str) -> (Vec<String>, String) {
    let mut spans = Vec::new();
    let mut rest = String::new();
    for (k, part) in cell.split('`').enumerate() {
        if k % 2 == 1 {
            spans.push(part.to_string());
        } else {
            rest.push_str(part);
        }
    }
    (spans, rest)
}

fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_upper(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
}

/// The item paths a backticked span of the `dax-rs` column names (rules 1-6).
fn item_paths(span: &str) -> Vec<Vec<String>> {
    let span = span.trim();
    // Rule 1: `Prefix::{a, b}`.
    if let Some(open) = span.find("::{")
        && let Some(inner) = span[open + 3..].strip_suffix('}')
    {
        return inner
            .split(',')
            .flat_map(|m| item_paths(&format!("{}::{}", &span[..open], m.trim())))
            .collect();
    }
    // Rule 2: a call's arguments.
    let mut path = span;
    if span.ends_with(')')
        && let Some(open) = span.find('(')
    {
        path = &span[..open];
    }
    // Rule 3: generic arguments.
    let mut out = Vec::new();
    if let Some(open) = path.find('<') {
        let Some(close) = path.rfind('>') else {
            return out;
        };
        for arg in path[open + 1..close].split(',') {
            let arg = arg.trim();
            if !arg.starts_with('\'') {
                out.extend(item_paths(arg));
            }
        }
        path = &path[..open];
    }
    // Rule 4: a path, or prose.
    let segs: Vec<String> = path.split("::").map(str::to_string).collect();
    if !segs.iter().all(|s| is_ident(s)) {
        return out;
    }
    // Rules 5 and 6.
    if let [only] = segs.as_slice()
        && (!only.chars().any(|c| c.is_ascii_lowercase())
            || NOT_ITEMS.iter().any(|(n, _)| n == only))
    {
        return out;
    }
    out.push(segs);
    out
}

// =====================================================================================
// The sources.
// =====================================================================================

/// What the workspace sources declare.
#[derive(Default)]
struct Decls {
    /// Functions with a `#[test]` attribute.
    tests: BTreeSet<String>,
    /// Public items, fields, variants and `pub trait` methods, by name.
    items: BTreeSet<String>,
    /// Public types (struct, enum, trait, type alias, union).
    types: BTreeSet<String>,
    /// Public modules and the crate names.
    mods: BTreeSet<String>,
    /// What is declared for each type (methods, associated consts, variants, fields).
    members: BTreeMap<String, BTreeSet<String>>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src` with comments and string, byte-string and character literals replaced by
/// spaces (newlines kept); lifetimes stay.
fn blank(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    // Blanks c[from..to], keeping newlines.
    let fill = |out: &mut String, from: usize, to: usize| {
        for &ch in &c[from..to.min(c.len())] {
            out.push(if ch == '\n' { '\n' } else { ' ' });
        }
    };
    while i < c.len() {
        let ch = c[i];
        let prev_ident = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        if ch == '/' && at(i + 1) == '/' {
            let end = (i..c.len()).find(|&k| c[k] == '\n').unwrap_or(c.len());
            fill(&mut out, i, end);
            i = end;
        } else if ch == '/' && at(i + 1) == '*' {
            let (mut depth, mut k) = (1, i + 2);
            while k < c.len() && depth > 0 {
                if c[k] == '/' && at(k + 1) == '*' {
                    depth += 1;
                    k += 2;
                } else if c[k] == '*' && at(k + 1) == '/' {
                    depth -= 1;
                    k += 2;
                } else {
                    k += 1;
                }
            }
            fill(&mut out, i, k);
            i = k;
        } else if !prev_ident && (ch == 'r' || (ch == 'b' && at(i + 1) == 'r')) && {
            let s = if ch == 'b' { i + 2 } else { i + 1 };
            let h = (s..c.len()).take_while(|&k| c[k] == '#').count();
            at(s + h) == '"'
        } {
            // Raw string: r"..", r#".."#, br#".."#.
            let s = if ch == 'b' { i + 2 } else { i + 1 };
            let hashes = (s..c.len()).take_while(|&k| c[k] == '#').count();
            let mut k = s + hashes + 1;
            while k < c.len() {
                if c[k] == '"' && (1..=hashes).all(|h| at(k + h) == '#') {
                    k += 1 + hashes;
                    break;
                }
                k += 1;
            }
            fill(&mut out, i, k);
            i = k;
        } else if ch == '"' || (ch == 'b' && at(i + 1) == '"' && !prev_ident) {
            let mut k = if ch == 'b' { i + 2 } else { i + 1 };
            while k < c.len() && c[k] != '"' {
                k += if c[k] == '\\' { 2 } else { 1 };
            }
            fill(&mut out, i, k + 1);
            i = k + 1;
        } else if ch == '\'' || (ch == 'b' && at(i + 1) == '\'' && !prev_ident) {
            // A character literal ('x', '\n', '\u{..}', b'x'), or a lifetime.
            let q = if ch == 'b' { i + 1 } else { i };
            let end = if at(q + 1) == '\\' {
                (q + 2..c.len()).find(|&k| c[k] == '\'').map(|k| k + 1)
            } else if at(q + 2) == '\'' {
                Some(q + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    fill(&mut out, i, end);
                    i = end;
                }
                None => {
                    out.push(ch);
                    i += 1;
                }
            }
        } else {
            out.push(ch);
            i += 1;
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Punct(char),
}

fn tokens(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_alphanumeric() || c[i] == '_' {
            let s = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(c[s..i].iter().collect()));
        } else {
            if !c[i].is_whitespace() {
                out.push(Tok::Punct(c[i]));
            }
            i += 1;
        }
    }
    out
}

fn ident(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

fn is_punct(t: Option<&Tok>, p: char) -> bool {
    t == Some(&Tok::Punct(p))
}

/// A declaration's tokens: attributes apart from the rest.
struct Header {
    /// Whether an attribute is exactly `#[test]`.
    test: bool,
    /// The tokens outside attributes.
    toks: Vec<Tok>,
}

fn split_attrs(raw: &[Tok]) -> Header {
    let mut h = Header {
        test: false,
        toks: Vec::new(),
    };
    let mut i = 0;
    while i < raw.len() {
        let bang = usize::from(is_punct(raw.get(i + 1), '!'));
        if is_punct(raw.get(i), '#') && is_punct(raw.get(i + 1 + bang), '[') {
            let (mut depth, mut k) = (0, i + 1 + bang);
            while k < raw.len() {
                match raw[k] {
                    Tok::Punct('[') => depth += 1,
                    Tok::Punct(']') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                k += 1;
            }
            if raw[i + 1 + bang..=k.min(raw.len() - 1)]
                == [Tok::Punct('['), Tok::Ident("test".into()), Tok::Punct(']')]
            {
                h.test = true;
            }
            i = k + 1;
        } else {
            h.toks.push(raw[i].clone());
            i += 1;
        }
    }
    h
}

/// What a declaration is, after its visibility and qualifiers.
struct Decl<'a> {
    /// Plain `pub` (not `pub(crate)` and the like).
    public: bool,
    /// `fn`, `struct`, `enum`, `trait`, `type`, `union`, `mod`, `const`, `static`,
    /// `impl`, or anything else.
    kind: &'a str,
    /// The name after the keyword, if any.
    name: Option<&'a str>,
    /// The tokens after the keyword.
    rest: &'a [Tok],
}

fn decl(toks: &[Tok]) -> Decl<'_> {
    let mut i = 0;
    let mut public = false;
    if ident(toks.first()) == Some("pub") {
        if is_punct(toks.get(1), '(') {
            i = toks
                .iter()
                .position(|t| is_punct(Some(t), ')'))
                .map_or(1, |k| k + 1);
        } else {
            public = true;
            i = 1;
        }
    }
    loop {
        match ident(toks.get(i)) {
            Some("unsafe" | "async" | "extern" | "default") => i += 1,
            Some("const") if matches!(ident(toks.get(i + 1)), Some("fn" | "unsafe")) => i += 1,
            _ => break,
        }
    }
    let kind = ident(toks.get(i)).unwrap_or("");
    let rest = toks.get(i + 1..).unwrap_or(&[]);
    Decl {
        public,
        kind,
        name: ident(rest.first()),
        rest,
    }
}

/// The type an `impl` header is for, and whether it implements a trait.
fn impl_target(rest: &[Tok]) -> (Option<String>, bool) {
    let mut i = 0;
    // impl<...>
    if is_punct(rest.first(), '<') {
        let mut depth = 0;
        while i < rest.len() {
            match rest[i] {
                Tok::Punct('<') => depth += 1,
                Tok::Punct('>') if !is_punct(rest.get(i.wrapping_sub(1)), '-') => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    let body = &rest[i..];
    let body = match body.iter().position(|t| ident(Some(t)) == Some("where")) {
        Some(w) => &body[..w],
        None => body,
    };
    // `for` outside angle brackets separates the trait from the type.
    let mut depth = 0;
    let mut for_at = None;
    for (k, t) in body.iter().enumerate() {
        match t {
            Tok::Punct('<') => depth += 1,
            Tok::Punct('>') if !(k > 0 && is_punct(body.get(k - 1), '-')) => depth -= 1,
            Tok::Ident(s) if s == "for" && depth == 0 => for_at = Some(k),
            _ => {}
        }
    }
    let ty = match for_at {
        Some(k) => &body[k + 1..],
        None => body,
    };
    // The last path segment before any generic arguments.
    let mut name = None;
    for t in ty {
        match t {
            Tok::Ident(s) if !matches!(s.as_str(), "dyn" | "mut") => name = Some(s.clone()),
            Tok::Punct('<') => break,
            _ => {}
        }
    }
    (name, for_at.is_some())
}

/// The block a `{` opened.
enum Ctx {
    /// `impl Type` or `impl Trait for Type`.
    Impl {
        ty: String,
        of_trait: bool,
    },
    Trait {
        name: String,
        public: bool,
    },
    Enum(String),
    /// A struct with named fields (bitflags structs included).
    Struct(String),
    /// A module, a function body, a macro invocation, an expression.
    Other,
}

impl Decls {
    fn member(&mut self, ty: &str, name: &str) {
        self.members
            .entry(ty.to_string())
            .or_default()
            .insert(name.to_string());
    }

    /// Records a declaration ended by `{` (`opens`), `;`, `,` or a closing `}`, inside
    /// the block `ctx`; returns the block it opens, if `opens`.
    fn declare(&mut self, raw: &[Tok], ctx: Option<&Ctx>, opens: bool) -> Ctx {
        let h = split_attrs(raw);
        let d = decl(&h.toks);
        // Variants and fields are not introduced by a keyword.
        match ctx {
            Some(Ctx::Enum(ty)) => {
                if let Some(v) = ident(h.toks.first()) {
                    self.items.insert(v.to_string());
                    self.member(ty, v);
                }
                return Ctx::Other;
            }
            Some(Ctx::Struct(ty)) if d.kind != "const" => {
                if d.public
                    && let Some(f) = ident(h.toks.get(1))
                    && is_punct(h.toks.get(2), ':')
                {
                    self.items.insert(f.to_string());
                    self.member(ty, f);
                }
                return Ctx::Other;
            }
            _ => {}
        }
        match (d.kind, d.name) {
            ("fn", Some(name)) => {
                if h.test {
                    self.tests.insert(name.to_string());
                }
                match ctx {
                    Some(Ctx::Impl { ty, of_trait }) => {
                        if d.public || *of_trait {
                            self.member(ty, name);
                        }
                        if d.public {
                            self.items.insert(name.to_string());
                        }
                    }
                    Some(Ctx::Trait { name: t, public }) => {
                        self.member(t, name);
                        if *public {
                            self.items.insert(name.to_string());
                        }
                    }
                    _ => {
                        if d.public {
                            self.items.insert(name.to_string());
                        }
                    }
                }
                Ctx::Other
            }
            ("const" | "static", Some(name)) => {
                match ctx {
                    // A bitflags! flag: `const NAME = ...;`.
                    Some(Ctx::Struct(ty)) => self.member(ty, name),
                    Some(Ctx::Impl { ty, .. }) if d.public => self.member(ty, name),
                    _ => {}
                }
                if d.public {
                    self.items.insert(name.to_string());
                }
                Ctx::Other
            }
            ("struct" | "enum" | "trait" | "type" | "union", Some(name)) => {
                if d.public {
                    self.items.insert(name.to_string());
                    self.types.insert(name.to_string());
                }
                match d.kind {
                    "enum" if opens => Ctx::Enum(name.to_string()),
                    "struct" | "union" if opens => Ctx::Struct(name.to_string()),
                    "trait" if opens => Ctx::Trait {
                        name: name.to_string(),
                        public: d.public,
                    },
                    _ => Ctx::Other,
                }
            }
            ("mod", Some(name)) => {
                if d.public {
                    self.items.insert(name.to_string());
                    self.mods.insert(name.to_string());
                }
                Ctx::Other
            }
            ("impl", _) => match impl_target(d.rest) {
                (Some(ty), of_trait) if opens => Ctx::Impl { ty, of_trait },
                _ => Ctx::Other,
            },
            _ => Ctx::Other,
        }
    }

    fn scan(&mut self, src: &str) {
        let toks = tokens(&blank(src));
        // Each open block, and whether it opened inside parentheses or brackets (an
        // expression such as `f(S { .. })` or `#[attr(C { .. })]`): such a block is
        // part of the declaration around it, not a declaration of its own.
        let mut stack: Vec<(Ctx, bool)> = Vec::new();
        let mut start = 0; // first token of the current declaration
        // Parentheses and square brackets open in the current declaration, and angle
        // brackets in a field's or variant's type, so that a comma inside them does
        // not end the field or variant.
        let (mut paren, mut angle) = (0i32, 0i32);
        for (i, t) in toks.iter().enumerate() {
            let ctx = stack.last().map(|(c, _)| c);
            let in_list = matches!(ctx, Some(Ctx::Enum(_) | Ctx::Struct(_)));
            let arrow = is_punct(toks.get(i.wrapping_sub(1)), '-');
            match t {
                Tok::Punct('(' | '[') => paren += 1,
                Tok::Punct(')' | ']') => paren -= 1,
                Tok::Punct('<') if in_list => angle += 1,
                Tok::Punct('>') if in_list && !arrow => angle -= 1,
                Tok::Punct('{') if paren > 0 => stack.push((Ctx::Other, true)),
                Tok::Punct('{') => {
                    let opened = self.declare(&toks[start..i], ctx, true);
                    stack.push((opened, false));
                    (start, paren, angle) = (i + 1, 0, 0);
                }
                Tok::Punct('}') => {
                    if let Some((_, true)) = stack.last() {
                        stack.pop();
                        continue;
                    }
                    if start < i {
                        self.declare(&toks[start..i], ctx, false);
                    }
                    stack.pop();
                    (start, paren, angle) = (i + 1, 0, 0);
                }
                Tok::Punct(';') => {
                    self.declare(&toks[start..i], ctx, false);
                    (start, paren, angle) = (i + 1, 0, 0);
                }
                Tok::Punct(',') if in_list && paren <= 0 && angle <= 0 => {
                    self.declare(&toks[start..i], ctx, false);
                    (start, paren, angle) = (i + 1, 0, 0);
                }
                _ => {}
            }
        }
    }
}

fn workspace_decls() -> Decls {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().unwrap();
    let this = manifest.join("tests").join("kernel_mapping_doc.rs");
    let mut decls = Decls::default();
    for krate in CRATES {
        decls.mods.insert(krate.replace('-', "_"));
        let mut files = Vec::new();
        rust_files(&root.join(krate), &mut files);
        assert!(!files.is_empty(), "no sources under {krate}");
        for f in files.into_iter().filter(|f| *f != this) {
            let src = std::fs::read_to_string(&f).unwrap();
            decls.scan(&src);
        }
    }
    decls
}

// =====================================================================================
// The checks.
// =====================================================================================

/// Why `path` does not resolve, or `None` if it does.
fn unresolved(path: &[String], d: &Decls) -> Option<String> {
    let n = path.len();
    let typed = n >= 2 && is_upper(&path[n - 2]);
    let prefix = if typed { n - 2 } else { n - 1 };
    for seg in &path[..prefix] {
        let known = if is_upper(seg) {
            d.types.contains(seg)
        } else {
            d.mods.contains(seg)
        };
        if !known {
            return Some(format!("`{seg}` is not a declared type, pub mod or crate"));
        }
    }
    let last = &path[n - 1];
    if typed {
        let ty = &path[n - 2];
        if !d.types.contains(ty) {
            return Some(format!("no public type `{ty}`"));
        }
        if !d.members.get(ty).is_some_and(|m| m.contains(last)) {
            return Some(format!("nothing named `{last}` is declared for `{ty}`"));
        }
        return None;
    }
    if d.items.contains(last) || d.mods.contains(last) {
        None
    } else {
        Some(format!("no public item `{last}`"))
    }
}

#[test]
fn every_item_and_test_named_in_kernel_mapping_exists() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/kernel-mapping.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let decls = workspace_decls();
    // The scanner must be finding things, or every check below is vacuous.
    assert!(
        decls.tests.len() > 300,
        "found only {} tests",
        decls.tests.len()
    );
    assert!(decls.types.contains("DaxDevice") && decls.items.contains("dax_iomap_fault"));

    let mut problems = Vec::new();
    let rows = table_rows(&doc, &mut problems);
    assert!(rows.len() > 50, "found only {} table rows", rows.len());
    let (mut items, mut tests) = (0, 0);
    for row in &rows {
        let (names, rest) = backticked(&row.tests);
        let rest = rest.replace([',', '—'], "");
        if !rest.trim().is_empty() {
            problems.push(format!(
                "line {}: the tests cell has text outside backticks: {:?}",
                row.line,
                rest.trim()
            ));
        }
        for name in names {
            tests += 1;
            if !is_ident(&name) {
                problems.push(format!("line {}: `{name}` is not a test name", row.line));
            } else if !decls.tests.contains(&name) {
                problems.push(format!("line {}: no test `fn {name}`", row.line));
            }
        }
        for span in backticked(&row.dax_rs).0 {
            for path in item_paths(&span) {
                items += 1;
                if let Some(why) = unresolved(&path, &decls) {
                    problems.push(format!(
                        "line {}: `{}` (from `{span}`): {why}",
                        row.line,
                        path.join("::")
                    ));
                }
            }
        }
    }
    assert!(
        items > 100 && tests > 100,
        "checked only {items} items and {tests} tests"
    );
    if !problems.is_empty() {
        let mut msg = format!("{} problem(s) in {}:\n", problems.len(), doc_path.display());
        for p in &problems {
            writeln!(msg, "  - {p}").unwrap();
        }
        panic!("{msg}");
    }
}

/// The document cites behaviour by kernel function and by our tests, never by the
/// behaviour reference the project does not ship: not its file name, its sections
/// (`§`), its row IDs (`DEV-07`, `BB-12`), quirk numbers (`Q5`) or numbered edge cases
/// (`edge 106`).
#[test]
fn kernel_mapping_cites_no_unshipped_reference() {
    const ID_PREFIXES: &[&str] = &[
        "DEV", "OPS", "DRV", "BB", "IOM", "ENT", "RW", "FLT", "WB", "INV", "Z", "C", "MF", "LCK",
    ];
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/kernel-mapping.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let mut found = Vec::new();
    for (n, line) in doc.lines().enumerate() {
        if line.contains("kernel-dax-semantics") || line.contains('§') {
            found.push(format!("line {}: cites the reference or a section", n + 1));
        }
        let words: Vec<&str> = line
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| !w.is_empty())
            .collect();
        for (k, w) in words.iter().enumerate() {
            let id = w
                .split_once('-')
                .is_some_and(|(p, num)| ID_PREFIXES.contains(&p) && digits(num));
            let quirk = w.strip_prefix('Q').is_some_and(digits);
            let edge =
                matches!(*w, "edge" | "edges") && words.get(k + 1).is_some_and(|n| digits(n));
            if id || quirk || edge {
                found.push(format!("line {}: `{w}`", n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "reference citations:\n{}",
        found.join("\n")
    );
}

/// Checks of the checker itself on small inputs.
#[test]
fn span_rules() {
    let p = |s: &str| {
        item_paths(s)
            .into_iter()
            .map(|p| p.join("::"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        p("IomapIter::{next, length}"),
        ["IomapIter::next", "IomapIter::length"]
    );
    assert_eq!(p("index()"), ["index"]);
    assert_eq!(
        p("dax_finish_sync_fault(vmf, order)"),
        ["dax_finish_sync_fault"]
    );
    assert_eq!(p("DirectAccess<'guard>"), ["DirectAccess"]);
    assert_eq!(p("Arc<DaxDevice>"), ["DaxDevice"]);
    assert!(p("nr != 1").is_empty());
    assert!(p("EIO").is_empty());
    assert!(p("DaxError::Os { errno: 512 }").is_empty());
    assert_eq!(
        p("dax_fault::mmu::MmuMapping"),
        ["dax_fault::mmu::MmuMapping"]
    );

    let mut d = Decls::default();
    d.scan(
        r#"
        /// `pub fn not_this() {}`
        pub struct S { pub f: Vec<u8, A>, g: u8 }
        pub enum E { A, B(u32), C { x: u8 } = 3, }
        pub unsafe trait T { fn m(&self); fn n(&self) -> u8 { 0 } }
        impl<'a, D: ?Sized + Fn() -> u8> S where D: Copy { pub fn new() -> Self { let _ = "{"; S } fn private() {} }
        unsafe impl T for S { fn m(&self) {} }
        bitflags::bitflags! { pub struct F: u32 { const X = 1 << 0; } }
        pub(crate) fn hidden() {}
        #[cfg(test)]
        mod tests {
            #[test]
            #[ignore = "}"]
            fn a_test() { let c = '}'; }
            proptest! { #![proptest_config(Config { cases: 1 })] #[test] fn prop(x in 0..1) {} }
        }
        "#,
    );
    assert_eq!(
        d.tests.iter().map(String::as_str).collect::<Vec<_>>(),
        ["a_test", "prop"]
    );
    for (ty, m) in [
        ("S", "f"),
        ("S", "new"),
        ("S", "m"),
        ("E", "A"),
        ("E", "B"),
        ("E", "C"),
    ]
    .into_iter()
    .chain([("T", "m"), ("T", "n"), ("F", "X")])
    {
        assert!(d.members[ty].contains(m), "{ty}::{m}");
    }
    assert!(!d.members["S"].contains("g") && !d.members["S"].contains("private"));
    assert!(!d.items.contains("not_this") && !d.items.contains("hidden"));
    assert!(
        d.types
            .is_superset(&["S", "E", "T", "F"].map(String::from).into())
    );
}
