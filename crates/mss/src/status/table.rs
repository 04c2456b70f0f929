//! Plain-text tables with aligned columns, for `mss status`.

/// A table: a header row and data rows of the same width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank and extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// Renders the table: columns separated by two spaces, no trailing blanks;
    /// `(none)` under the header when there is no row.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut l = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    l.push_str("  ");
                }
                // `{:<w$}` pads by characters, as the widths are counted.
                l.push_str(&format!("{cell:<w$}"));
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(&self.headers);
        for row in &self.rows {
            line(row);
        }
        if self.rows.is_empty() {
            out.push_str("(none)\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned() {
        let mut t = Table::new(&["USER", "STORED"]);
        t.row(vec!["101".into(), "2".into()]);
        t.row(vec!["alice.smith".into(), "10".into()]);
        assert_eq!(
            t.render(),
            "USER         STORED\n101          2\nalice.smith  10\n"
        );
    }

    #[test]
    fn empty_table_and_short_rows() {
        let t = Table::new(&["A", "B"]);
        assert_eq!(t.render(), "A  B\n(none)\n");
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["xyz".into()]);
        assert_eq!(t.render(), "A    B\nxyz\n");
    }
}
