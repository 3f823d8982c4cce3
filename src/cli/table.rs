//! Plain-text tables for the terminal: left-aligned columns, two spaces apart, a header row.

pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Each column's width: its widest cell, header included, in characters.
    fn widths(&self) -> Vec<usize> {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        widths
    }

    /// Shortens the cells of the `shrinkable` columns (with `…`) until every rendered line is
    /// at most `max` characters, the widest of those columns first, none narrower than its
    /// header. Other columns are never cut: a number is never shown half. A table that cannot
    /// fit even so is left as wide as its other columns make it.
    pub fn fit(&mut self, max: usize, shrinkable: &[usize]) {
        let mut widths = self.widths();
        let gaps = 2 * widths.len().saturating_sub(1);
        let floor = |i: usize| self.header.get(i).map_or(1, |h| h.chars().count().max(1));
        while widths.iter().sum::<usize>() + gaps > max {
            let widest = shrinkable
                .iter()
                .copied()
                .filter(|&i| widths.get(i).is_some_and(|&w| w > floor(i)))
                .max_by_key(|&i| widths[i]);
            match widest {
                Some(i) => widths[i] -= 1,
                None => break,
            }
        }
        for row in &mut self.rows {
            for &i in shrinkable {
                if let (Some(cell), Some(&width)) = (row.get_mut(i), widths.get(i)) {
                    shorten(cell, width);
                }
            }
        }
    }

    pub fn render(&self) -> String {
        let columns = self.header.len();
        let widths = self.widths();
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                line.push_str(cell);
                if i + 1 < columns {
                    let pad = width - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `cell` cut to `width` characters, its last one `…`, when it is longer.
fn shorten(cell: &mut String, width: usize) {
    if cell.chars().count() > width {
        let mut short: String = cell.chars().take(width.saturating_sub(1)).collect();
        short.push('…');
        *cell = short;
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
