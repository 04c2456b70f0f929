//! Reading an INI file line by line, with the line of every section and key.
//!
//! The syntax is `rust-ini`'s with its `inline-comment` feature (comments with `;` or `#` at
//! the start of a line, inline comments after a blank, `=` or `:` between key and value),
//! read by one scan that keeps every line number, so that every error names its `file:line`
//! and repeated sections and keys are found.
//!
//! Quotes and backslash escapes are not interpreted: a value is the text after `=` up to an
//! inline comment (` ;` or ` #`), trimmed.

use std::collections::HashMap;

use super::error::{Diagnostic, Diagnostics};

/// One `key = value` of a section, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The key, as written (case-sensitive).
    pub(crate) key: String,
    /// The value, trimmed.
    pub(crate) value: String,
    /// 1-based line number.
    pub(crate) line: usize,
}

/// One section of the file (the first occurrence when a section is repeated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    /// The name between the brackets, trimmed.
    pub(crate) name: String,
    /// 1-based line number of the `[name]` header.
    pub(crate) line: usize,
    /// Its keys in file order (the first value of a repeated key).
    pub(crate) entries: Vec<Entry>,
}

/// A parsed INI file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IniFile {
    /// The file name used in errors.
    pub(crate) file: String,
    /// Sections in file order.
    pub(crate) sections: Vec<Section>,
    /// Problems that do not stop validation (repeated sections and keys, keys outside any
    /// section); the validator reports them together with its own.
    pub(crate) problems: Diagnostics,
}

impl IniFile {
    /// Builds a diagnostic located in this file.
    pub(crate) fn diag(
        &self,
        line: Option<usize>,
        section: Option<&str>,
        key: Option<&str>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line,
            section: section.map(str::to_string),
            key: key.map(str::to_string),
            message: message.into(),
        }
    }
}

/// What the line scan found at one line.
enum ScanLine<'a> {
    Section(&'a str),
    Key(&'a str, &'a str),
    Other,
    /// A line that is neither blank, comment, section header nor `key = value`.
    Invalid(&'static str),
}

fn scan_line(raw: &str) -> ScanLine<'_> {
    let t = raw.trim();
    if t.is_empty() || t.starts_with(';') || t.starts_with('#') {
        return ScanLine::Other;
    }
    if let Some(rest) = t.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            return ScanLine::Section(rest.get(..end).unwrap_or("").trim());
        }
        return ScanLine::Invalid("section header without closing ']'");
    }
    match t.find(['=', ':']) {
        Some(0) => ScanLine::Invalid("'=' without a key before it"),
        Some(i) => ScanLine::Key(
            t.get(..i).unwrap_or("").trim(),
            value_of(t.get(i + 1..).unwrap_or("")),
        ),
        None => ScanLine::Invalid("expected `key = value`, `[section]` or a comment"),
    }
}

/// The value after the separator: up to an inline comment (`;` or `#` after a blank, as
/// `rust-ini`'s `inline-comment` reads it), trimmed.
fn value_of(after: &str) -> &str {
    let v = after.trim_start();
    let bytes = v.as_bytes();
    let cut = bytes
        .windows(2)
        .position(|w| matches!(w, [b' ' | b'\t', b';' | b'#']))
        .unwrap_or(v.len());
    v.get(..cut).unwrap_or(v).trim()
}

/// Parses `text` (the content of `file`). Syntax errors are returned as `Err`; keys outside
/// a section and repeated sections and keys are kept in [`IniFile::problems`]. All carry
/// their line numbers.
///
/// One pass over the lines, no intermediate maps beyond an index of section names into
/// `text`: with 100,000 `[user:…]` sections the parse used to hold `rust-ini`'s ordered
/// multimaps and a line index of every key next to the result (~190 MB at start-up).
pub(crate) fn parse(file: &str, text: &str) -> Result<IniFile, Diagnostics> {
    let mut problems = Diagnostics::default();
    let mut syntax = Diagnostics::default();
    // Where each section is in `sections`; the names borrow `text`.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut sections: Vec<Section> = Vec::new();
    let mut current: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        match scan_line(raw) {
            ScanLine::Section(name) => {
                if let Some(&at) = index.get(name) {
                    let first = sections.get(at).map_or(0, |s| s.line);
                    problems.push(Diagnostic {
                        file: file.to_string(),
                        line: Some(line),
                        section: Some(name.to_string()),
                        key: None,
                        message: format!("duplicate section (first at line {first})"),
                    });
                    current = Some(at);
                } else {
                    index.insert(name, sections.len());
                    current = Some(sections.len());
                    sections.push(Section {
                        name: name.to_string(),
                        line,
                        entries: Vec::new(),
                    });
                }
            }
            ScanLine::Key(key, value) => match current.and_then(|at| sections.get_mut(at)) {
                None => problems.push(Diagnostic {
                    file: file.to_string(),
                    line: Some(line),
                    section: None,
                    key: Some(key.to_string()),
                    message: "key outside of any section".to_string(),
                }),
                Some(sec) => {
                    if let Some(first) = sec.entries.iter().find(|e| e.key == key) {
                        problems.push(Diagnostic {
                            file: file.to_string(),
                            line: Some(line),
                            section: Some(sec.name.clone()),
                            key: Some(key.to_string()),
                            message: format!("duplicate key (first at line {})", first.line),
                        });
                    } else {
                        sec.entries.push(Entry {
                            key: key.to_string(),
                            value: value.to_string(),
                            line,
                        });
                    }
                }
            },
            ScanLine::Other => {}
            ScanLine::Invalid(why) => syntax.push(Diagnostic {
                file: file.to_string(),
                line: Some(line),
                section: current
                    .and_then(|at| sections.get(at))
                    .map(|s| s.name.clone()),
                key: None,
                message: format!("syntax error: {why}"),
            }),
        }
    }
    if !syntax.is_empty() {
        return Err(syntax);
    }
    Ok(IniFile {
        file: file.to_string(),
        sections,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_and_strips_comments() {
        let text = "; top\n[server]\ndomain = pbx.example.com   ; comment\n# c\n\nlisten = udp:0.0.0.0:5060\n[user:101]\npassword = a;b\n";
        let f = parse("mss.ini", text).unwrap();
        assert_eq!(f.sections.len(), 2);
        let s = &f.sections[0];
        assert_eq!((s.name.as_str(), s.line), ("server", 2));
        assert_eq!(s.entries[0].key, "domain");
        assert_eq!(s.entries[0].value, "pbx.example.com");
        assert_eq!(s.entries[0].line, 3);
        assert_eq!(s.entries[1].line, 6);
        assert_eq!(f.sections[1].entries[0].value, "a;b");
    }

    #[test]
    fn duplicates_are_reported_with_both_lines() {
        let text = "[server]\ndomain = a\ndomain = b\n[im]\n[server]\n";
        let f = parse("mss.ini", text).unwrap();
        assert_eq!(f.sections[0].entries[0].value, "a");
        let e = f.problems.to_string();
        assert!(
            e.contains("mss.ini:3: [server] domain: duplicate key (first at line 2)"),
            "{e}"
        );
        assert!(
            e.contains("mss.ini:5: [server] duplicate section (first at line 1)"),
            "{e}"
        );
    }

    #[test]
    fn key_outside_section_and_syntax_errors() {
        let f = parse("a.ini", "domain = x\n[server]\n").unwrap();
        let e = f.problems.to_string();
        assert_eq!(e, "a.ini:1: domain: key outside of any section");
        let e = parse("a.ini", "[server]\n[broken\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "a.ini:2: [server] syntax error: section header without closing ']'"
        );
        let e = parse("a.ini", "[server]\nlonely\n= x\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "a.ini:2: [server] syntax error: expected `key = value`, `[section]` or a comment\n\
             a.ini:3: [server] syntax error: '=' without a key before it"
        );
    }

    #[test]
    fn values_read_like_rust_ini_inline_comments() {
        let text = "[s]\na = x\t# tab comment\nb: udp:0.0.0.0:5060 ; c\nc = #not-a-comment\nd =\ne = p#w;d  \n";
        let f = parse("a.ini", text).unwrap();
        let got: Vec<(&str, &str)> = f.sections[0]
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "x"),
                ("b", "udp:0.0.0.0:5060"),
                ("c", "#not-a-comment"),
                ("d", ""),
                ("e", "p#w;d"),
            ]
        );
    }

    #[test]
    fn a_repeated_section_continues_the_first() {
        let text = "[server]\ndomain = a\n[im]\n[server]\ndomain = b\nlisten = x\n";
        let f = parse("mss.ini", text).unwrap();
        assert_eq!(f.sections.len(), 2);
        let keys: Vec<&str> = f.sections[0]
            .entries
            .iter()
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(keys, ["domain", "listen"]);
        let e = f.problems.to_string();
        assert!(
            e.contains("mss.ini:5: [server] domain: duplicate key (first at line 2)"),
            "{e}"
        );
    }
}
