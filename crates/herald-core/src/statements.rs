//! A migration file cut into its statements, so that each is sent on its own.
//!
//! Citus, asked for several statements in one query string, sends the whole string on to its
//! workers for some of them (`CREATE INDEX`), and they refuse it ("cannot insert multiple
//! commands into a prepared statement"). So `herald migrate` sends a file one statement at a
//! time, all in one transaction as before. A `;` ends a statement unless it is inside a string
//! (`'..'`, `E'..'`), a quoted identifier, a dollar-quoted body (`$$..$$`, `$tag$..$tag$`), a
//! comment (`--`, nested `/* */`) or parentheses. Not understood, and so not to be used in a migration: SQL-
//! standard function bodies (`BEGIN ATOMIC ... END`), whose `;` end nothing.
//!
//! Hand-written: the crates that do this are whole SQL parsers (sqlparser), for forty lines.

/// The statements of `sql`, in order, each trimmed and without its `;`; comments and blank
/// pieces between statements are left out.
pub fn split(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i, mut depth) = (0, 0, 0usize);
    while i < b.len() {
        i = match b[i] {
            b';' if depth == 0 => {
                push(&mut out, &sql[start..i]);
                start = i + 1;
                i + 1
            }
            // Inside parentheses (a rule's several actions) a `;` ends nothing either.
            b'(' => {
                depth += 1;
                i + 1
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i + 1
            }
            b'\'' => {
                let escapes = i > 0 && matches!(b[i - 1], b'E' | b'e') && (i < 2 || !is_word(b[i - 2]));
                quoted(b, i, b'\'', escapes)
            }
            b'"' => quoted(b, i, b'"', false),
            b'-' if b.get(i + 1) == Some(&b'-') => sql[i..].find('\n').map_or(b.len(), |n| i + n + 1),
            b'/' if b.get(i + 1) == Some(&b'*') => block_comment(b, i),
            b'$' if i == 0 || !is_word(b[i - 1]) => match dollar_tag(&sql[i..]) {
                Some(tag) => sql[i + tag.len()..].find(tag).map_or(b.len(), |n| i + 2 * tag.len() + n),
                None => i + 1,
            },
            _ => i + 1,
        };
    }
    push(&mut out, &sql[start..]);
    out
}

fn push<'a>(out: &mut Vec<&'a str>, piece: &'a str) {
    let piece = piece.trim();
    // A piece of comments only is no statement.
    if !without_leading_comments(piece).trim().is_empty() {
        out.push(piece);
    }
}

/// `piece` with its leading comments removed.
fn without_leading_comments(mut piece: &str) -> &str {
    loop {
        piece = piece.trim_start();
        if piece.starts_with("--") {
            piece = piece.find('\n').map_or("", |n| &piece[n + 1..]);
        } else if piece.starts_with("/*") {
            piece = &piece[block_comment(piece.as_bytes(), 0).min(piece.len())..];
        } else {
            return piece;
        }
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// Where the quoted text starting at `i` ends (just past its closing quote); a doubled quote
/// is one quote, and with `escapes` a backslash escapes the next character.
fn quoted(b: &[u8], mut i: usize, quote: u8, escapes: bool) -> usize {
    i += 1;
    while i < b.len() {
        if escapes && b[i] == b'\\' {
            i += 2;
        } else if b[i] == quote {
            if b.get(i + 1) != Some(&quote) {
                return i + 1;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    b.len()
}

/// Where the comment starting at `i` (`/*`) ends; they nest.
fn block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i + 1 < b.len() {
        if b[i] == b'/' && b[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// The dollar-quote tag at the start of `s` (`$$` or `$name$`), if it is one (`$1` is not).
fn dollar_tag(s: &str) -> Option<&str> {
    let rest = &s[1..];
    let end = rest.find('$')?;
    let name = &rest[..end];
    let ok = name.bytes().all(is_word) && !name.starts_with(|c: char| c.is_ascii_digit());
    ok.then(|| &s[..end + 2])
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn cuts_at_each_top_level_semicolon() {
        assert_eq!(split("SELECT 1; SELECT 2;\n\n  SELECT 3"), ["SELECT 1", "SELECT 2", "SELECT 3"]);
        assert_eq!(split(" ;; \n"), Vec::<&str>::new());
    }

    #[test]
    fn a_semicolon_inside_a_string_an_identifier_or_a_comment_ends_nothing() {
        let sql = "SELECT 'a;b', 'it''s;', \"x;y\" FROM t; -- c;d\nSELECT /* e; /* f; */ g; */ 2;";
        assert_eq!(split(sql), ["SELECT 'a;b', 'it''s;', \"x;y\" FROM t", "-- c;d\nSELECT /* e; /* f; */ g; */ 2"]);
        assert_eq!(split(r"SELECT E'\';', 'x\'; SELECT 2"), [r"SELECT E'\';', 'x\'", "SELECT 2"]);
        assert_eq!(split(r"SELECT cafe'x'; SELECT 2"), [r"SELECT cafe'x'", "SELECT 2"], "E ends a word: no escapes");
    }

    #[test]
    fn dollar_quoted_bodies_are_whole() {
        let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n\
                   CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $x$ $body$;\n\
                   PREPARE p AS SELECT $1; SELECT a$b FROM t";
        assert_eq!(
            split(sql),
            [
                "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$",
                "CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $x$ $body$",
                "PREPARE p AS SELECT $1",
                "SELECT a$b FROM t",
            ]
        );
    }

    #[test]
    fn comments_alone_are_no_statement() {
        assert_eq!(split("-- only a comment;\n/* and; another */\n"), Vec::<&str>::new());
        assert_eq!(split("SELECT 1; -- the end\n"), ["SELECT 1"]);
    }

    #[test]
    fn unterminated_text_runs_to_the_end() {
        assert_eq!(split("SELECT 'a; SELECT 2"), ["SELECT 'a; SELECT 2"]);
        assert_eq!(split("SELECT $$a; SELECT 2"), ["SELECT $$a; SELECT 2"]);
    }

    #[test]
    fn a_rules_several_actions_are_one_statement() {
        let sql =
            "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)); SELECT 1";
        assert_eq!(
            split(sql),
            [
                "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))",
                "SELECT 1"
            ]
        );
    }

    #[test]
    fn no_migration_uses_what_the_splitter_does_not_understand() {
        // (Every migration is split and run by every test that makes a database.)
        for m in crate::db::migrations::runner().get_migrations() {
            let sql = m.sql().unwrap();
            let words: Vec<String> = sql.split_whitespace().map(str::to_uppercase).collect();
            let atomic = words.windows(2).any(|w| w[0] == "BEGIN" && w[1].starts_with("ATOMIC"));
            assert!(!atomic, "{m}: BEGIN ATOMIC bodies cannot be split");
            let parts = split(sql);
            assert!(!parts.is_empty(), "{m}");
            for p in &parts {
                assert!(!p.ends_with(';'), "{m}: {p}");
            }
        }
    }
}
