//! Configuration errors: every one names `file:line`, the section and the key.

use std::fmt;
use std::path::PathBuf;

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as the user named it (e.g. `mss.ini` or `/etc/mss/mss.ini`).
    pub file: String,
    /// 1-based line number, when the problem has a place in the file.
    pub line: Option<usize>,
    /// The section (`server`, `line:provider1`…), if any.
    pub section: Option<String>,
    /// The key, if any.
    pub key: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `mss.ini:12: [line:provider1] expires: "abc" is not a number of seconds`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(section) = &self.section {
            write!(f, "[{section}] ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found while loading the configuration, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Whether no problem was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Adds a problem.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Sorts by file then line, keeping the order of problems on the same line.
    pub fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.file, a.line.unwrap_or(0)).cmp(&(&b.file, b.line.unwrap_or(0))));
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named on the command line (or found) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The self-signed TLS certificate could not be generated.
    #[error("cannot generate a self-signed TLS certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The files were read but are not valid; every problem is listed.
    #[error("{0}")]
    Invalid(Diagnostics),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_section_and_key() {
        let d = Diagnostic {
            file: "mss.ini".into(),
            line: Some(12),
            section: Some("line:provider1".into()),
            key: Some("expires".into()),
            message: "\"abc\" is not a number of seconds".into(),
        };
        assert_eq!(
            d.to_string(),
            "mss.ini:12: [line:provider1] expires: \"abc\" is not a number of seconds"
        );
        let d = Diagnostic {
            file: "x.ini".into(),
            line: None,
            section: None,
            key: None,
            message: "empty".into(),
        };
        assert_eq!(d.to_string(), "x.ini: empty");
    }
}
