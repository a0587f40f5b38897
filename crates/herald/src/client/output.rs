//! What the CLI prints: aligned tables and `field  value` lines for people, or the API's JSON
//! as it came for scripts (`--output json`).

use serde_json::Value;

use super::http::Answer;
use super::Output;

/// One value in a cell: `-` for null or nothing, a list's items joined, objects as compact
/// JSON. Control characters become spaces, so that a value cannot break the columns; characters
/// that are not seen but move or reorder what is (bidirectional controls, zero-width ones) are
/// left out, so that a value shows as what it holds.
pub fn cell(v: &Value) -> String {
    let s = match v {
        Value::Null => "-".to_string(),
        Value::String(s) if s.is_empty() => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        Value::Array(items) if items.is_empty() => "-".to_string(),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            items.iter().map(cell).collect::<Vec<_>>().join(", ")
        }
        Value::Array(_) | Value::Object(_) => v.to_string(),
    };
    s.chars().filter(|c| !invisible(*c)).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Bidirectional controls (which can show `evil.example/moc.knab` as something else) and
/// zero-width characters (which make two different values look the same).
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' // Arabic letter mark
            | '\u{200B}'..='\u{200F}' // zero-width space, non-joiner, joiner; LRM, RLM
            | '\u{202A}'..='\u{202E}' // embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{FEFF}' // zero-width no-break space (BOM)
    )
}

/// Columns aligned on the widest cell, two spaces apart; the last column is not padded.
///
/// Widths are counted in characters: a character that a terminal shows two columns wide (CJK,
/// most emoji) shifts the columns after it on its line. Counting display columns needs the
/// `unicode-width` tables, which the workspace does not have (not in Cargo.lock).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let last = cells.len() - 1;
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i < last {
                out.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// A list's rows: for each item, the cells of `columns` (a column is a field name).
pub fn rows(items: &[Value], columns: &[&str]) -> Vec<Vec<String>> {
    items.iter().map(|item| columns.iter().map(|c| cell(&item[*c])).collect()).collect()
}

/// An object as `field  value` lines: the fields of `first` in that order, then the others
/// (but those in `skip`) in alphabetical order (serde_json, built without `preserve_order`,
/// keeps an object's keys sorted, not in the order the API wrote them).
pub fn fields(v: &Value, first: &[&str], skip: &[&str]) -> String {
    let Some(object) = v.as_object() else { return format!("{}\n", cell(v)) };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for name in first {
        if let Some(value) = object.get(*name) {
            pairs.push((name.to_string(), cell(value)));
        }
    }
    for (name, value) in object {
        if !first.contains(&name.as_str()) && !skip.contains(&name.as_str()) {
            pairs.push((name.clone(), cell(value)));
        }
    }
    let width = pairs.iter().map(|(n, _)| n.chars().count()).max().unwrap_or(0);
    pairs.iter().map(|(n, v)| format!("{n:width$}  {v}\n")).collect()
}

/// Prints a list answer `{"data": [...], "next_cursor", "prev_cursor"}`: a table of `columns`
/// (headers are the columns in capitals), and on standard error where the next and previous
/// pages start.
pub fn list(answer: &Answer, output: Output, noun: &str, columns: &[&str]) {
    if output == Output::Json {
        return json(answer);
    }
    let items = answer.json["data"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        outln!("no {noun}");
    } else {
        let headers: Vec<String> = columns.iter().map(|c| c.replace('_', " ").to_uppercase()).collect();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        out!("{}", table(&headers, &rows(&items, columns)));
    }
    if let Some(before) = answer.json["prev_cursor"].as_str() {
        eprintln!("previous page: --before {before}");
    }
    if let Some(next) = answer.json["next_cursor"].as_str() {
        eprintln!("next page: --cursor {next}");
    }
}

/// Prints one object: `field  value` lines, or its JSON.
pub fn object(answer: &Answer, output: Output, first: &[&str]) {
    match output {
        Output::Json => json(answer),
        Output::Table => out!("{}", fields(&answer.json, first, &[])),
    }
}

/// Writes to standard output; a reader that has gone is not an error of the command's.
pub fn emit(s: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(s.as_bytes()).and_then(|()| stdout.flush());
}

/// The API's answer as it came (nothing for an empty one, such as a 204).
pub fn json(answer: &Answer) {
    let text = answer.text.trim_end();
    if !text.is_empty() {
        outln!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_line_up_whatever_the_widths() {
        let rows = vec![
            vec!["ep_1".to_string(), "healthy".to_string(), "https://a.example/x".to_string()],
            vec!["ep_long_id".to_string(), "-".to_string(), "h".to_string()],
        ];
        let t = table(&["ID", "STATUS", "URL"], &rows);
        assert_eq!(
            t,
            "ID          STATUS   URL\n\
             ep_1        healthy  https://a.example/x\n\
             ep_long_id  -        h\n"
        );
    }

    #[test]
    fn cells_are_one_line_and_say_nothing_with_a_dash() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!([])), "-");
        assert_eq!(cell(&json!(["a.*", "b"])), "a.*, b");
        assert_eq!(cell(&json!("two\nlines")), "two lines");
        assert_eq!(cell(&json!({"k": 1})), r#"{"k":1}"#);
        assert_eq!(cell(&json!(12)), "12");
    }

    #[test]
    fn cells_leave_out_what_reorders_or_hides_text() {
        // "https://bank.example/" with a right-to-left override, a zero-width space and a BOM.
        let sneaky = "https://\u{202E}elpmaxe.knab\u{202C}\u{200B}/\u{FEFF}x\u{2067}y\u{2069}\u{200F}";
        assert_eq!(cell(&json!(sneaky)), "https://elpmaxe.knab/xy");
        assert_eq!(cell(&json!(["a\u{200D}b", "c"])), "ab, c");
        assert_eq!(cell(&json!("日本語 ✓")), "日本語 ✓", "visible text is kept");
    }

    #[test]
    fn fields_come_in_the_order_asked_then_the_rest() {
        let v = json!({"b": 2, "a": 1, "id": "x", "secret": null});
        assert_eq!(fields(&v, &["id", "b"], &["secret"]), "id  x\nb   2\na   1\n");
        // The rest alphabetically, whatever order the JSON had them in.
        let v: Value = serde_json::from_str(r#"{"zeta": 1, "id": "x", "beta": 2, "alpha": 3}"#).unwrap();
        assert_eq!(fields(&v, &["id"], &[]), "id     x\nalpha  3\nbeta   2\nzeta   1\n");
    }
}
