//! What the configuration tree says: virtual servers, their locations and
//! upstreams, the global limits, log formats, and findings an operator
//! would act on.

use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::config::{Directive, Tree, find_all};
use crate::system::finding;

fn args_of<'a>(list: &'a [Directive], name: &str) -> Vec<&'a Directive> {
    list.iter().filter(|d| d.name == name).collect()
}

fn first_args(list: &[Directive], name: &str) -> Option<Vec<String>> {
    list.iter().find(|d| d.name == name).map(|d| d.args.clone())
}

fn joined(list: &[Directive], name: &str) -> Option<String> {
    first_args(list, name).map(|a| a.join(" "))
}

fn location(d: &Directive) -> Value {
    let c = d.children();
    json!({
        "match": d.args.join(" "),
        "line": d.line,
        "proxy_pass": joined(c, "proxy_pass"),
        "fastcgi_pass": joined(c, "fastcgi_pass"),
        "uwsgi_pass": joined(c, "uwsgi_pass"),
        "grpc_pass": joined(c, "grpc_pass"),
        "root": joined(c, "root"),
        "alias": joined(c, "alias"),
        "return": joined(c, "return"),
        "stub_status": c.iter().any(|x| x.name == "stub_status"),
        "allow": args_of(c, "allow").iter().map(|d| d.args.join(" ")).collect::<Vec<_>>(),
        "deny": args_of(c, "deny").iter().map(|d| d.args.join(" ")).collect::<Vec<_>>(),
        "auth_basic": joined(c, "auth_basic"),
        "locations": args_of(c, "location").into_iter().map(location).collect::<Vec<_>>(),
    })
}

/// The `log_format` definitions: name → format text.
pub fn log_formats(tree: &Tree) -> BTreeMap<String, String> {
    let mut all = Vec::new();
    find_all(&tree.directives, "log_format", &mut all);
    all.iter()
        .filter_map(|d| {
            let name = d.arg(0)?;
            // `log_format name [escape=…] 'part' 'part' …;`
            let parts: Vec<&str> = d.args[1..]
                .iter()
                .map(String::as_str)
                .filter(|a| !a.starts_with("escape="))
                .collect();
            Some((name.to_owned(), parts.concat()))
        })
        .collect()
}

/// The format an `access_log PATH FORMAT` directive names for `path`
/// (`combined` when it names none), if the configuration logs there.
pub fn format_for(tree: &Tree, path: &str) -> Option<String> {
    let mut all = Vec::new();
    find_all(&tree.directives, "access_log", &mut all);
    let d = all.iter().find(|d| d.arg(0) == Some(path))?;
    let name = d.arg(1).filter(|a| !a.contains('='))?;
    if name == "combined" {
        return Some(super::access::COMBINED.to_owned());
    }
    log_formats(tree).get(name).cloned()
}

/// The `stub_status` locations: (listen, location) pairs, to suggest a
/// `stub_status_url`.
pub fn stub_status_locations(tree: &Tree) -> Vec<(Vec<String>, String)> {
    let mut servers = Vec::new();
    find_all(&tree.directives, "server", &mut servers);
    let mut out = Vec::new();
    for s in servers.into_iter().filter(|s| s.block.is_some()) {
        let listens: Vec<String> = args_of(s.children(), "listen")
            .iter()
            .filter_map(|l| l.arg(0).map(str::to_owned))
            .collect();
        let mut locations = Vec::new();
        find_all(s.children(), "location", &mut locations);
        for l in locations {
            if l.children().iter().any(|x| x.name == "stub_status") {
                out.push((listens.clone(), l.args.last().cloned().unwrap_or_default()));
            }
        }
    }
    out
}

/// Servers, upstreams, globals and findings.
pub fn summarise(tree: &Tree, stub_configured: bool) -> Value {
    let mut findings = Vec::new();
    let top = &tree.directives;
    let http: Vec<&Directive> = args_of(top, "http");
    let events = args_of(top, "events");
    let worker_connections = events
        .first()
        .and_then(|e| first_args(e.children(), "worker_connections"))
        .and_then(|a| a.first().and_then(|n| n.parse::<u64>().ok()));
    let mut servers_d = Vec::new();
    for h in &http {
        find_all(h.children(), "server", &mut servers_d);
    }
    // `server` inside `upstream` blocks is a backend, not a virtual server.
    let servers_d: Vec<&Directive> = servers_d
        .into_iter()
        .filter(|s| s.block.is_some())
        .collect();
    let mut names_by_listen: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut servers = Vec::new();
    for s in &servers_d {
        let c = s.children();
        let listens: Vec<String> = args_of(c, "listen")
            .iter()
            .map(|l| l.args.join(" "))
            .collect();
        let names: Vec<String> = first_args(c, "server_name").unwrap_or_default();
        let ssl = listens.iter().any(|l| l.split(' ').any(|w| w == "ssl"))
            || joined(c, "ssl").as_deref() == Some("on");
        let protocols = first_args(c, "ssl_protocols").or_else(|| {
            http.first()
                .and_then(|h| first_args(h.children(), "ssl_protocols"))
        });
        if ssl
            && let Some(p) = &protocols
            && let Some(old) = p
                .iter()
                .find(|p| *p == "TLSv1" || *p == "TLSv1.1" || p.starts_with("SSL"))
        {
            findings.push(finding(
                "warning",
                format!(
                    "server {} ({}:{}) allows {old}, which is deprecated and broken; use `ssl_protocols TLSv1.2 TLSv1.3;`",
                    names.first().map(String::as_str).unwrap_or("_"),
                    s.file,
                    s.line
                ),
            ));
        }
        if c.iter()
            .any(|d| d.name == "autoindex" && d.arg(0) == Some("on"))
        {
            findings.push(finding(
                "info",
                format!(
                    "server {} lists directory contents (autoindex on) at {}:{}",
                    names.first().map(String::as_str).unwrap_or("_"),
                    s.file,
                    s.line
                ),
            ));
        }
        for l in &listens {
            let addr = l.split(' ').next().unwrap_or_default().to_owned();
            for n in &names {
                names_by_listen
                    .entry((addr.clone(), n.clone()))
                    .or_default()
                    .push(format!("{}:{}", s.file, s.line));
            }
        }
        let mut locations = Vec::new();
        for l in args_of(c, "location") {
            locations.push(location(l));
        }
        servers.push(json!({
            "file": s.file,
            "line": s.line,
            "listen": listens,
            "server_name": names,
            "root": joined(c, "root"),
            "ssl": ssl,
            "ssl_certificate": joined(c, "ssl_certificate"),
            "ssl_protocols": protocols,
            "access_log": joined(c, "access_log"),
            "error_log": joined(c, "error_log"),
            "return": joined(c, "return"),
            "locations": locations,
        }));
    }
    for ((addr, name), places) in &names_by_listen {
        if places.len() > 1 && name != "_" && !name.is_empty() {
            findings.push(finding(
                "warning",
                format!(
                    "server name {name} on {addr} is defined {} times ({}): nginx uses the first and ignores the others (\"conflicting server name\")",
                    places.len(),
                    places.join(", ")
                ),
            ));
        }
    }
    let mut upstreams = Vec::new();
    for h in &http {
        for u in args_of(h.children(), "upstream") {
            let members: Vec<String> = args_of(u.children(), "server")
                .iter()
                .map(|s| s.args.join(" "))
                .collect();
            upstreams.push(
                json!({"name": u.arg(0), "file": u.file, "line": u.line, "servers": members}),
            );
        }
    }
    let stubs = stub_status_locations(tree);
    if !stub_configured && let Some((listens, loc)) = stubs.first() {
        findings.push(finding(
            "info",
            format!(
                "a stub_status location ({loc}, listening on {}) exists: set stub_status_url under [packs.nginx] (an http://127.0.0.1… URL) to read connection counts",
                listens.join(", ")
            ),
        ));
    }
    if tree.truncated {
        findings.push(finding(
            "info",
            "the configuration is larger than the pack reads; the summary covers what was read",
        ));
    }
    for s in &tree.skipped {
        findings.push(finding(
            "info",
            format!(
                "include {} (from {}) was not read: {}",
                s.include, s.from, s.reason
            ),
        ));
    }
    json!({
        "root": tree.root,
        "main": tree.main,
        "files": tree.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
        "global": {
            "user": joined(top, "user"),
            "worker_processes": joined(top, "worker_processes"),
            "worker_connections": worker_connections,
            "worker_rlimit_nofile": joined(top, "worker_rlimit_nofile"),
            "pid": joined(top, "pid"),
            "error_log": args_of(top, "error_log").iter().map(|d| d.args.join(" ")).collect::<Vec<_>>(),
        },
        "servers": servers,
        "upstreams": upstreams,
        "log_formats": log_formats(tree),
        "stub_status_locations": stubs.iter().map(|(l, p)| json!({"listen": l, "location": p})).collect::<Vec<_>>(),
        "findings": findings,
    })
}
