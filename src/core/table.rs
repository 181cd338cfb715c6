//! Plain aligned text tables for terminal output.

/// Columns padded to their widest cell, two spaces apart; no trailing spaces.
pub fn render<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.to_vec()).collect();
    render_rows(header, &rows)
}

/// `render` for a column count known only at run time (each row as long as `header`).
pub fn render_rows(header: &[&str], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&width).enumerate() {
            if i + 1 == n {
                l += c;
            } else {
                l += &format!("{c:<w$}  ");
            }
        }
        out += l.trim_end();
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}
