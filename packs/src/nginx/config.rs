//! nginx's configuration, read in-process: the main file and every file
//! its `include` directives name, confined to the configuration root.
//!
//! Why not `nginx -T`: it parses the configuration the way a start does,
//! so it opens the error log (and every log the config names) for writing
//! and the pid file, and `nginx -t` refuses to run when it cannot: as the
//! agent's unprivileged user, and in the probe sandbox (which lets programs
//! write nothing), it fails before printing anything. Reading the files is
//! what `-T` prints anyway, without running the server's binary at all.
//!
//! Rules:
//! - only files whose real path (symbolic links resolved) lies beneath the
//!   configuration root (`/etc/nginx` by default) are read; an include
//!   that leaves it is listed as skipped, not followed;
//! - only regular files, opened without blocking and never following a
//!   final symlink (the resolved path is opened), each refused if it is one
//!   of the agent's own files;
//! - bounded: [`MAX_FILES`] files, [`MAX_FILE_BYTES`] per file,
//!   [`MAX_TOTAL_BYTES`] in all, includes nested [`MAX_DEPTH`] deep, and an
//!   include that leads back to a file being read is a loop, not followed;
//! - values of directives that hold secrets in nginx's own syntax
//!   (`fastcgi_param DB_PASSWORD x;` has no `=` for the agent's scrubber
//!   to see) are redacted here ([`secret_args`]); the agent's scrubber
//!   runs over everything afterwards as over every result.

use serde::Serialize;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::handler::{ProbeContext, ProbeError};

pub const MAX_FILES: usize = 256;
pub const MAX_FILE_BYTES: u64 = 1 << 20;
pub const MAX_TOTAL_BYTES: u64 = 8 << 20;
pub const MAX_DEPTH: usize = 16;

/// What replaces a secret value in the returned text.
pub const REDACTED: &str = "[REDACTED:nginx_secret]";

/// One token of nginx's syntax, with where it is in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub start: usize,
    pub end: usize,
    pub line: usize,
    /// `;`, `{` or `}` (never quoted).
    pub punct: bool,
}

/// Splits nginx configuration text into tokens: words (quotes removed,
/// `\` escapes kept as nginx keeps them), and `;`, `{`, `}`. `#` starts a
/// comment where a token could start. Never fails: unbalanced quotes end
/// at the end of the text.
pub fn tokenize(text: &str) -> Vec<Token> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if matches!(c, b';' | b'{' | b'}') {
            out.push(Token {
                text: (c as char).to_string(),
                start: i,
                end: i + 1,
                line,
                punct: true,
            });
            i += 1;
            continue;
        }
        let start = i;
        let start_line = line;
        let mut value = Vec::new();
        if c == b'"' || c == b'\'' {
            let quote = c;
            i += 1;
            while i < b.len() && b[i] != quote {
                if b[i] == b'\\' && i + 1 < b.len() {
                    if b[i + 1] == quote {
                        value.push(quote);
                    } else {
                        value.extend_from_slice(&b[i..i + 2]);
                    }
                    if b[i + 1] == b'\n' {
                        line += 1;
                    }
                    i += 2;
                    continue;
                }
                if b[i] == b'\n' {
                    line += 1;
                }
                value.push(b[i]);
                i += 1;
            }
            i = (i + 1).min(b.len());
        } else {
            while i < b.len() {
                let ch = b[i];
                if ch.is_ascii_whitespace() || ch == b';' || ch == b'}' {
                    break;
                }
                if ch == b'{' {
                    // `${name}` is a variable, not a block.
                    if value.last() == Some(&b'$') {
                        let close = b[i..].iter().position(|x| *x == b'}');
                        if let Some(close) = close {
                            value.extend_from_slice(&b[i..=i + close]);
                            i += close + 1;
                            continue;
                        }
                    }
                    break;
                }
                if ch == b'\\' && i + 1 < b.len() {
                    value.extend_from_slice(&b[i..i + 2]);
                    i += 2;
                    continue;
                }
                value.push(ch);
                i += 1;
            }
        }
        out.push(Token {
            text: String::from_utf8_lossy(&value).into_owned(),
            start,
            end: i,
            line: start_line,
            punct: false,
        });
    }
    out
}

/// One directive: its name, arguments, where it is, and its block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub file: String,
    pub line: usize,
    /// The directives of its `{ … }` block, includes already expanded.
    pub block: Option<Vec<Directive>>,
}

impl Directive {
    pub fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or_default()
    }

    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }
}

/// Which arguments of a directive hold a secret (indices), from its name
/// and its first argument.
pub fn secret_args(name: &str, args: &[String]) -> Vec<usize> {
    const WHOLE: &[&str] = &[
        "secure_link_secret",
        "auth_jwt_key",
        "ssl_session_ticket_key_value",
    ];
    const NAMED: &[&str] = &[
        "proxy_set_header",
        "grpc_set_header",
        "add_header",
        "add_trailer",
        "fastcgi_param",
        "uwsgi_param",
        "scgi_param",
        "set",
        "env",
        "more_set_headers",
        "more_set_input_headers",
        "proxy_set_body",
    ];
    if WHOLE.contains(&name) {
        return (0..args.len()).collect();
    }
    if NAMED.contains(&name)
        && let Some(key) = args.first()
    {
        let k = key.to_ascii_lowercase();
        let secret = [
            "authorization",
            "cookie",
            "secret",
            "passw",
            "token",
            "apikey",
            "api_key",
            "api-key",
            "x-api",
            "auth",
            "credential",
            "private",
            "signature",
        ]
        .iter()
        .any(|s| k.contains(s));
        // `env NAME=value`: the value is after `=` in the one argument.
        if secret {
            return (1..args.len().max(2))
                .filter(|i| *i < args.len() || name == "env")
                .collect();
        }
    }
    Vec::new()
}

/// A file of the tree, as read (with secret values redacted).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigFile {
    pub path: String,
    pub size_bytes: u64,
    pub content: String,
    /// The file was larger than [`MAX_FILE_BYTES`]: only its start is here.
    pub truncated: bool,
}

/// An include that was not followed, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub include: String,
    pub from: String,
    pub reason: String,
}

/// The whole tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tree {
    pub root: String,
    pub main: String,
    pub files: Vec<ConfigFile>,
    pub skipped: Vec<Skipped>,
    /// Secret values redacted by the pack (before the agent's scrubber).
    pub redacted_values: usize,
    pub directives: Vec<Directive>,
    pub truncated: bool,
}

struct Reader<'a, 'c> {
    ctx: &'a ProbeContext<'c>,
    root: PathBuf,
    prefix: PathBuf,
    tree: Tree,
    total: u64,
    /// (device, inode) of the files being read, for loop detection.
    stack: Vec<(u64, u64)>,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// glob(3)-style match of one path component: `*`, `?`, `[…]` (with
/// ranges and `!`/`^`). A leading `.` is never matched by a wildcard.
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    fn class(p: &[u8], c: u8) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, bytes consumed incl. ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some(b'!' | b'^'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == b']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
                if p[i] <= c && c <= p[i + 2] {
                    matched = true;
                }
                i += 3;
            } else {
                if p[i] == c {
                    matched = true;
                }
                i += 1;
            }
        }
        None
    }
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some(b'?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some(b'[') => match (n.first(), class(&p[1..], *n.first().unwrap_or(&0))) {
                (Some(_), Some((true, used))) => go(&p[1 + used..], &n[1..]),
                (Some(_), Some((false, _))) => false,
                (Some(c), None) => *c == b'[' && go(&p[1..], &n[1..]),
                (None, _) => false,
            },
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(pattern, name)
}

impl Reader<'_, '_> {
    fn skip(&mut self, include: &str, from: &str, reason: impl Into<String>) {
        self.tree.skipped.push(Skipped {
            include: include.to_owned(),
            from: from.to_owned(),
            reason: reason.into(),
        });
    }

    /// The files an `include` argument names (globs expanded, sorted).
    fn expand(&mut self, pattern: &str, from: &str) -> Vec<PathBuf> {
        let path = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            self.prefix.join(pattern)
        };
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            self.skip(pattern, from, "not a file path");
            return Vec::new();
        };
        if dir.to_string_lossy().contains(['*', '?', '[']) {
            self.skip(
                pattern,
                from,
                "a wildcard in a directory name is not followed (only in the file name)",
            );
            return Vec::new();
        }
        let name = name.to_string_lossy();
        if !has_glob(&name) {
            return vec![path];
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            // nginx accepts a glob that matches nothing.
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| glob_match(name.as_bytes(), e.file_name().as_encoded_bytes()))
            .map(|e| e.path())
            .collect();
        found.sort();
        found
    }

    /// Opens `path` if its real path is beneath the root.
    fn open(&mut self, path: &Path, from: &str) -> Option<(File, PathBuf)> {
        let shown = path.display().to_string();
        let real = match std::fs::canonicalize(path) {
            Ok(r) => r,
            Err(e) => {
                self.skip(&shown, from, format!("cannot be resolved: {e}"));
                return None;
            }
        };
        if !real.starts_with(&self.root) {
            self.skip(
                &shown,
                from,
                format!(
                    "its real path {} is outside the configuration root {}",
                    real.display(),
                    self.root.display()
                ),
            );
            return None;
        }
        use rustix::fs::{Mode, OFlags};
        let flags =
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let file = match rustix::fs::open(&real, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(e) => {
                self.skip(&shown, from, format!("cannot be opened: {e}"));
                return None;
            }
        };
        if let Err(e) = self.ctx.secrets.check_file(&file, &shown) {
            self.skip(&shown, from, e.to_string());
            return None;
        }
        match file.metadata() {
            Ok(m) if m.is_file() => Some((file, real)),
            Ok(_) => {
                self.skip(&shown, from, "not a regular file");
                None
            }
            Err(e) => {
                self.skip(&shown, from, e.to_string());
                None
            }
        }
    }

    /// Reads one file and parses it, following its includes.
    fn read(&mut self, path: &Path, from: &str, depth: usize) -> Vec<Directive> {
        let shown = path.display().to_string();
        if self.ctx.expired() {
            self.tree.truncated = true;
            self.skip(&shown, from, "the probe's time ran out");
            return Vec::new();
        }
        if depth > MAX_DEPTH {
            self.skip(
                &shown,
                from,
                format!("includes nested deeper than {MAX_DEPTH}"),
            );
            return Vec::new();
        }
        if self.tree.files.len() >= MAX_FILES {
            self.tree.truncated = true;
            self.skip(&shown, from, format!("more than {MAX_FILES} files"));
            return Vec::new();
        }
        let Some((file, _real)) = self.open(path, from) else {
            return Vec::new();
        };
        let Ok(meta) = file.metadata() else {
            return Vec::new();
        };
        let id = (meta.dev(), meta.ino());
        if self.stack.contains(&id) {
            self.skip(
                &shown,
                from,
                "an include loop: this file is already being read",
            );
            return Vec::new();
        }
        let room = MAX_TOTAL_BYTES.saturating_sub(self.total);
        if room == 0 {
            self.tree.truncated = true;
            self.skip(
                &shown,
                from,
                format!("more than {} MiB of configuration", MAX_TOTAL_BYTES >> 20),
            );
            return Vec::new();
        }
        let limit = MAX_FILE_BYTES.min(room);
        let mut bytes = Vec::new();
        if let Err(e) = (&file).take(limit + 1).read_to_end(&mut bytes) {
            self.skip(&shown, from, format!("cannot be read: {e}"));
            return Vec::new();
        }
        let cut = bytes.len() as u64 > limit;
        if cut {
            bytes.truncate(limit as usize);
            self.tree.truncated = true;
        }
        self.total += bytes.len() as u64;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let tokens = tokenize(&text);
        let mut redact: Vec<(usize, usize)> = Vec::new();
        let index = self.tree.files.len();
        self.tree.files.push(ConfigFile {
            path: shown.clone(),
            size_bytes: meta.len(),
            content: String::new(),
            truncated: cut,
        });
        self.stack.push(id);
        let mut pos = 0;
        let directives = self.parse_block(&tokens, &mut pos, &shown, depth, &mut redact);
        self.stack.pop();
        // The file's text with secret values replaced (from the end, so
        // earlier offsets stay valid).
        let mut content = text;
        redact.sort_unstable();
        redact.dedup();
        for (start, end) in redact.iter().rev() {
            if content.is_char_boundary(*start) && content.is_char_boundary(*end) {
                content.replace_range(*start..*end, REDACTED);
            }
        }
        self.tree.redacted_values += redact.len();
        self.tree.files[index].content = content;
        directives
    }

    fn parse_block(
        &mut self,
        tokens: &[Token],
        pos: &mut usize,
        file: &str,
        depth: usize,
        redact: &mut Vec<(usize, usize)>,
    ) -> Vec<Directive> {
        let mut out = Vec::new();
        let mut words: Vec<&Token> = Vec::new();
        while *pos < tokens.len() {
            let t = &tokens[*pos];
            *pos += 1;
            if !t.punct {
                words.push(t);
                continue;
            }
            match t.text.as_str() {
                "}" => {
                    if !words.is_empty() {
                        out.push(self.directive(&words, file, None, depth, redact));
                    }
                    return out;
                }
                ";" => {
                    if words.is_empty() {
                        continue;
                    }
                    if words[0].text == "include" {
                        for arg in &words[1..] {
                            for path in self.expand(&arg.text, file) {
                                let mut inner = self.read(&path, file, depth + 1);
                                out.append(&mut inner);
                            }
                        }
                    } else {
                        out.push(self.directive(&words, file, None, depth, redact));
                    }
                    words.clear();
                }
                _ => {
                    let block = self.parse_block(tokens, pos, file, depth, redact);
                    if !words.is_empty() {
                        out.push(self.directive(&words, file, Some(block), depth, redact));
                    }
                    words.clear();
                }
            }
        }
        if !words.is_empty() {
            out.push(self.directive(&words, file, None, depth, redact));
        }
        out
    }

    fn directive(
        &mut self,
        words: &[&Token],
        file: &str,
        block: Option<Vec<Directive>>,
        _depth: usize,
        redact: &mut Vec<(usize, usize)>,
    ) -> Directive {
        let name = words[0].text.clone();
        let mut args: Vec<String> = words[1..].iter().map(|t| t.text.clone()).collect();
        for i in secret_args(&name, &args) {
            if let Some(t) = words.get(i + 1) {
                redact.push((t.start, t.end));
                args[i] = REDACTED.to_owned();
            } else if name == "env"
                && let Some(t) = words.get(1)
                && let Some(eq) = t.text.find('=')
            {
                // `env NAME=value`: keep the name.
                redact.push((t.start + eq + 1, t.end));
                args[0] = format!("{}={REDACTED}", &t.text[..eq]);
            }
        }
        Directive {
            name,
            args,
            file: file.to_owned(),
            line: words[0].line,
            block,
        }
    }
}

/// Reads the tree from `main` (beneath `root`), following includes.
pub fn read_tree(ctx: &ProbeContext<'_>, root: &Path, main: &Path) -> Result<Tree, ProbeError> {
    let root_real = std::fs::canonicalize(root).map_err(|e| {
        ProbeError::NotFound(format!(
            "the nginx configuration root {} cannot be read ({e}); set config_root under [packs.nginx] in agent.toml",
            root.display()
        ))
    })?;
    let prefix = main.parent().unwrap_or(root).to_path_buf();
    let mut reader = Reader {
        ctx,
        root: root_real,
        prefix,
        tree: Tree {
            root: root.display().to_string(),
            main: main.display().to_string(),
            files: Vec::new(),
            skipped: Vec::new(),
            redacted_values: 0,
            directives: Vec::new(),
            truncated: false,
        },
        total: 0,
        stack: Vec::new(),
    };
    let directives = reader.read(main, "-", 0);
    if reader.tree.files.is_empty() {
        let why = reader
            .tree
            .skipped
            .first()
            .map(|s| s.reason.clone())
            .unwrap_or_else(|| "unreadable".into());
        return Err(ProbeError::NotFound(format!(
            "the main nginx configuration {} could not be read: {why}",
            main.display()
        )));
    }
    reader.tree.directives = directives;
    Ok(reader.tree)
}

/// Every directive of `list` named `name`, at any depth, with the chain
/// of enclosing block names.
pub fn find_all<'a>(list: &'a [Directive], name: &str, out: &mut Vec<&'a Directive>) {
    for d in list {
        if d.name == name {
            out.push(d);
        }
        find_all(d.children(), name, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_quotes_comments_and_variables() {
        let t = tokenize("server{listen 80; # comment\n return 200 \"a;b\\\"c\"; set $x ${y}z;}");
        let words: Vec<&str> = t.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            words,
            [
                "server", "{", "listen", "80", ";", "return", "200", "a;b\"c", ";", "set", "$x",
                "${y}z", ";", "}"
            ]
        );
        assert_eq!(t[5].line, 2);
        // Unbalanced input ends without a panic.
        assert!(!tokenize("a \"unterminated").is_empty());
        assert!(tokenize("").is_empty());
    }

    #[test]
    fn globs_match_like_glob3() {
        assert!(glob_match(b"*.conf", b"default.conf"));
        assert!(!glob_match(b"*.conf", b".hidden.conf"));
        assert!(!glob_match(b"*.conf", b"default.conf.bak"));
        assert!(glob_match(b"*", b"default"));
        assert!(glob_match(b"site-[a-c]?", b"site-b1"));
        assert!(!glob_match(b"site-[!a-c]?", b"site-b1"));
        assert!(glob_match(b"[", b"["));
    }

    #[test]
    fn secret_values_are_chosen_by_directive_and_name() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(secret_args("fastcgi_param", &s(&["DB_PASSWORD", "x"])), [1]);
        assert_eq!(
            secret_args("proxy_set_header", &s(&["Authorization", "Basic", "y"])),
            [1, 2]
        );
        assert_eq!(
            secret_args("proxy_set_header", &s(&["Host", "$host"])),
            Vec::<usize>::new()
        );
        assert_eq!(secret_args("secure_link_secret", &s(&["abc"])), [0]);
        assert_eq!(secret_args("listen", &s(&["80"])), Vec::<usize>::new());
    }
}
