//! Reading an INI file with `rust-ini`, plus an index of line numbers.
//!
//! `rust-ini` parses values (comments with `;` or `#` at the start of a line, inline comments
//! after a blank, `=` or `:` between key and value) but keeps no line numbers and merges
//! duplicate keys silently. So the text is also scanned line by line, the same way, to build an
//! index of section and key positions; that index gives every error its `file:line` and finds
//! duplicate sections and keys.
//!
//! Quotes and backslash escapes are not interpreted: a value is the text after `=` up to an
//! inline comment (` ;` or ` #`), trimmed.

use std::collections::HashMap;

use ini::{Ini, ParseOption};

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
enum ScanLine {
    Section(String),
    Key(String),
    Other,
    /// A line that is neither blank, comment, section header nor `key = value`.
    Invalid(&'static str),
}

fn scan_line(raw: &str) -> ScanLine {
    let t = raw.trim();
    if t.is_empty() || t.starts_with(';') || t.starts_with('#') {
        return ScanLine::Other;
    }
    if let Some(rest) = t.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            return ScanLine::Section(rest.get(..end).unwrap_or("").trim().to_string());
        }
        return ScanLine::Invalid("section header without closing ']'");
    }
    match t.find(['=', ':']) {
        Some(0) => ScanLine::Invalid("'=' without a key before it"),
        Some(i) => ScanLine::Key(t.get(..i).unwrap_or("").trim().to_string()),
        None => ScanLine::Invalid("expected `key = value`, `[section]` or a comment"),
    }
}

/// Parses `text` (the content of `file`). Syntax errors are returned as `Err`; keys outside
/// a section and repeated sections and keys are kept in [`IniFile::problems`]. All carry
/// their line numbers.
pub(crate) fn parse(file: &str, text: &str) -> Result<IniFile, Diagnostics> {
    let mut problems = Diagnostics::default();
    let mut syntax = Diagnostics::default();
    // The line index: where each section starts and where each key of it is.
    let mut section_lines: HashMap<String, usize> = HashMap::new();
    let mut key_lines: HashMap<(String, String), usize> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        match scan_line(raw) {
            ScanLine::Section(name) => {
                if let Some(first) = section_lines.get(&name) {
                    problems.push(Diagnostic {
                        file: file.to_string(),
                        line: Some(line),
                        section: Some(name.clone()),
                        key: None,
                        message: format!("duplicate section (first at line {first})"),
                    });
                } else {
                    section_lines.insert(name.clone(), line);
                    order.push(name.clone());
                }
                current = Some(name);
            }
            ScanLine::Key(key) => match &current {
                None => problems.push(Diagnostic {
                    file: file.to_string(),
                    line: Some(line),
                    section: None,
                    key: Some(key),
                    message: "key outside of any section".to_string(),
                }),
                Some(sec) => {
                    let k = (sec.clone(), key);
                    if let Some(first) = key_lines.get(&k) {
                        problems.push(Diagnostic {
                            file: file.to_string(),
                            line: Some(line),
                            section: Some(k.0.clone()),
                            key: Some(k.1.clone()),
                            message: format!("duplicate key (first at line {first})"),
                        });
                    } else {
                        key_lines.insert(k, line);
                    }
                }
            },
            ScanLine::Other => {}
            ScanLine::Invalid(why) => syntax.push(Diagnostic {
                file: file.to_string(),
                line: Some(line),
                section: current.clone(),
                key: None,
                message: format!("syntax error: {why}"),
            }),
        }
    }
    if !syntax.is_empty() {
        return Err(syntax);
    }
    let opt = ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        enabled_indented_mutiline_value: false,
        enabled_preserve_key_leading_whitespace: false,
    };
    let ini = match Ini::load_from_str_opt(text, opt) {
        Ok(ini) => ini,
        Err(e) => {
            let mut diags = Diagnostics::default();
            diags.push(Diagnostic {
                file: file.to_string(),
                // rust-ini counts from 0 and may point past the end.
                line: Some((e.line + 1).min(text.lines().count().max(1))),
                section: None,
                key: None,
                message: format!("syntax error: {}", e.msg),
            });
            return Err(diags);
        }
    };

    let mut sections = Vec::with_capacity(order.len());
    for name in order {
        let line = section_lines.get(&name).copied().unwrap_or(0);
        let mut entries = Vec::new();
        if let Some(props) = ini.section(Some(name.as_str())) {
            let mut seen: Vec<&str> = Vec::new();
            for (key, value) in props.iter() {
                if seen.contains(&key) {
                    continue; // reported above as a duplicate
                }
                seen.push(key);
                let kl = key_lines
                    .get(&(name.clone(), key.to_string()))
                    .copied()
                    .unwrap_or(line);
                entries.push(Entry {
                    key: key.to_string(),
                    value: value.trim().to_string(),
                    line: kl,
                });
            }
        }
        entries.sort_by_key(|e| e.line);
        sections.push(Section {
            name,
            line,
            entries,
        });
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
}
