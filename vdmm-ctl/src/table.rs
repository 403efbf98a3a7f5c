//! Plain-text tables for the human-readable output: left-aligned text columns,
//! right-aligned numbers, two spaces between columns, no trailing spaces.

/// Column alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Renders `header` and `rows` as aligned lines, each ending in a newline.
pub fn render(header: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths[i];
            let pad = w - cell.chars().count().min(w);
            if i > 0 {
                s.push_str("  ");
            }
            match header[i].1 {
                Align::Left => {
                    s.push_str(cell);
                    s.extend(std::iter::repeat_n(' ', pad));
                }
                Align::Right => {
                    s.extend(std::iter::repeat_n(' ', pad));
                    s.push_str(cell);
                }
            }
        }
        let mut s = s.trim_end().to_string();
        s.push('\n');
        s
    };
    let mut out = line(header.iter().map(|(h, _)| *h).collect());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let t = render(
            &[
                ("NAME", Align::Left),
                ("PACKETS", Align::Right),
                ("NOTE", Align::Left),
            ],
            &[
                vec!["encap".into(), "5".into(), "".into()],
                vec!["not_peer".into(), "12345678".into(), "x".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME       PACKETS  NOTE\n\
             encap            5\n\
             not_peer  12345678  x\n"
        );
    }
}
