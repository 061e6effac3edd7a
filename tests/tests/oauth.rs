//! OAuth 2.1 with operator approval, end to end: the real hub over TLS, a
//! test that plays the browser and the operator (through the CLI), rmcp's
//! client on the access token; and the official TypeScript SDK's client
//! doing the whole MCP authorization flow by itself
//! (`tests/node/oauth_flow.mjs`).
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use serde_json::{Value, json};
use sonde_tests::*;
use std::io::BufRead as _;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn http(hub: &Hub) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(hub.ca_pem().as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn origin_of(hub: &Hub) -> String {
    origin(hub)
}

fn origin(hub: &Hub) -> String {
    hub.run
        .mcp_url
        .clone()
        .unwrap()
        .trim_end_matches("/mcp")
        .to_owned()
}

fn pkce() -> (String, String) {
    let mut raw = [0u8; 32];
    sonde_protocol::keys::random_bytes(&mut raw).unwrap();
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sonde_protocol::Digest::of(verifier.as_bytes()).0);
    (verifier, challenge)
}

/// The query parameters of a URL.
fn query_of(url: &str) -> Vec<(String, String)> {
    let q = url.split_once('?').map(|x| x.1).unwrap_or("");
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn q<'a>(params: &'a [(String, String)], k: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// The URL of a page's `<meta http-equiv="refresh">`, unescaped.
fn refresh_url(html: &str) -> Option<String> {
    let i = html.find("url=")?;
    let rest = &html[i + 4..];
    let end = rest.find('"')?;
    Some(rest[..end].replace("&amp;", "&"))
}

async fn register(hub: &Hub, redirect: &str) -> String {
    let r = http(hub)
        .post(format!("{}/oauth/register", origin(hub)))
        .json(&json!({"client_name": "Rust <b>test</b>", "redirect_uris": [redirect], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_endpoint_auth_method"], "none");
    assert!(v.get("client_secret").is_none());
    v["client_id"].as_str().unwrap().to_owned()
}

fn authorize_url(hub: &Hub, client: &str, redirect: &str, challenge: &str, state: &str) -> String {
    let params = [
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("resource", hub.run.mcp_url.as_deref().unwrap()),
        ("scope", "mcp"),
    ];
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("{}/oauth/authorize?{}", origin(hub), query.join("&"))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Plays the browser: opens the authorization URL and returns the page
/// and the wait URL it refreshes to.
async fn open_authorize(hub: &Hub, url: &str) -> (String, String) {
    let r = http(hub).get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.headers());
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let html = r.text().await.unwrap();
    let wait = refresh_url(&html).expect("the page refreshes to its wait URL");
    (html, format!("{}{}", origin(hub), wait))
}

/// Follows the wait page until it answers something else than "waiting".
async fn follow_wait(hub: &Hub, wait: &str) -> reqwest::Response {
    let start = Instant::now();
    loop {
        let r = http(hub).get(wait).send().await.unwrap();
        if r.status() != 200 || start.elapsed() > Duration::from_secs(60) {
            return r;
        }
    }
}

/// Waits until the CLI lists a pending request for `client`; returns it.
async fn pending_request(hub: &Hub, client: &str) -> Value {
    let mut found = None;
    assert!(
        wait_for(T, || {
            let list = hub.cli_json(&["oauth", "pending"]);
            found = list
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["client_id"] == client)
                .cloned();
            std::future::ready(found.is_some())
        })
        .await,
        "no pending OAuth request appeared"
    );
    found.unwrap()
}

/// The policy the operator gives the client in the main flow: agent `nas`,
/// two tools, the e2e probes.
const NAS_E2E_POLICY: [&str; 6] = [
    "--agents",
    "nas",
    "--tools",
    "list_agents,probe",
    "--probes",
    "e2e.*",
];

/// One browser round through the authorize page: the operator approves the
/// request with `sonde-hub oauth approve ID <approve…>`; returns the code
/// the browser is sent back with.
async fn approved_code(
    hub: &Hub,
    client: &str,
    redirect: &str,
    challenge: &str,
    state: &str,
    approve: &[&str],
) -> String {
    let (_, wait) =
        open_authorize(hub, &authorize_url(hub, client, redirect, challenge, state)).await;
    let pending = pending_request(hub, client).await;
    let id = pending["id"].as_str().unwrap();
    hub.cli_json(&[&["oauth", "approve", id][..], approve].concat());
    let r = follow_wait(hub, &wait).await;
    assert_eq!(r.status(), 302);
    let params = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(q(&params, "state"), Some(state));
    q(&params, "code").unwrap().to_owned()
}

/// The code exchange (`grant_type=authorization_code`), with `extra` form
/// fields (`resource`).
async fn exchange_code(
    hub: &Hub,
    client: &str,
    redirect: &str,
    code: &str,
    verifier: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("client_id", client),
        ("code_verifier", verifier),
    ];
    token_request(hub, &[&form[..], extra].concat()).await
}

async fn token_request(hub: &Hub, form: &[(&str, &str)]) -> (u16, Value) {
    let body: Vec<String> = form
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let r = http(hub)
        .post(format!("{}/oauth/token", origin(hub)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn setup(scratch: &Scratch) -> (Hub, Agent) {
    let hub = Hub::start(scratch);
    let mut agent = Agent::new(scratch, "nas", "");
    agent.add_pack("e2e", TEST_PACK);
    agent.enroll_auto(&hub);
    agent.run();
    assert!(
        agent.wait_state(&hub, "online", T).await,
        "{}",
        agent.log_text()
    );
    hub.approve_pack("nas", "e2e").await;
    (hub, agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_flow_with_operator_approval_then_tools_with_rmcp() {
    let scratch = Scratch::new();
    let (hub, _agent) = setup(&scratch).await;
    let client_http = http(&hub);
    let mcp_url = hub.run.mcp_url.clone().unwrap();

    // 1. Discovery: a 401 names the protected-resource metadata.
    let r = client_http
        .post(&mcp_url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let prm_url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(
        prm_url,
        format!("{}/.well-known/oauth-protected-resource/mcp", origin(&hub))
    );
    let prm: Value = client_http
        .get(&prm_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], mcp_url.as_str());
    let issuer = prm["authorization_servers"][0].as_str().unwrap().to_owned();
    let asm: Value = client_http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(asm["issuer"], issuer.as_str());
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));

    // 2. Registration, then the authorization request the operator sees.
    let redirect = "http://127.0.0.1:41234/callback";
    let client = register(&hub, redirect).await;
    let (verifier, challenge) = pkce();
    // A loopback redirect may come back on another port (RFC 8252).
    let redirect_now = "http://127.0.0.1:50999/callback";
    let (html, wait) = open_authorize(
        &hub,
        &authorize_url(&hub, &client, redirect_now, &challenge, "st-1"),
    )
    .await;
    assert!(
        html.contains("Rust &lt;b&gt;test&lt;/b&gt;"),
        "the client name is escaped: {html}"
    );
    assert!(
        html.contains("127.0.0.1:50999"),
        "the redirect host is shown"
    );
    let pending = pending_request(&hub, &client).await;
    let code_shown = pending["user_code"].as_str().unwrap();
    assert!(html.contains(code_shown), "page and operator see one code");
    assert_eq!(pending["redirect_host"], "127.0.0.1:50999");

    // 3. The browser waits; the operator approves with a policy.
    let browser = {
        let hub_wait = wait.clone();
        let ca = hub.ca_pem();
        tokio::spawn(async move {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let c = reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let start = Instant::now();
            loop {
                let r = c.get(&hub_wait).send().await.unwrap();
                if r.status() != 200 || start.elapsed() > Duration::from_secs(60) {
                    return (
                        r.status().as_u16(),
                        r.headers()
                            .get("location")
                            .map(|l| l.to_str().unwrap().to_owned()),
                    );
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = pending["id"].as_str().unwrap();
    let approved = hub.cli_json(&[&["oauth", "approve", id][..], &NAS_E2E_POLICY].concat());
    assert_eq!(approved["status"], "approved");
    let (status, location) = tokio::time::timeout(T, browser).await.unwrap().unwrap();
    assert_eq!(status, 302);
    let location = location.unwrap();
    assert!(location.starts_with(redirect_now), "{location}");
    let params = query_of(&location);
    assert_eq!(q(&params, "state"), Some("st-1"));
    assert_eq!(q(&params, "iss"), Some(issuer.as_str()));
    let code = q(&params, "code").unwrap().to_owned();
    // The code is handed out once.
    let again = client_http.get(&wait).send().await.unwrap();
    assert_eq!(again.status(), 409);

    // 4. The token exchange checks PKCE and the exact redirect URI; a
    // failed attempt burns the code, so use a fresh flow for the refusals.
    let (s, tokens) = exchange_code(
        &hub,
        &client,
        redirect_now,
        &code,
        &verifier,
        &[("resource", &mcp_url)],
    )
    .await;
    assert_eq!(s, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (s, reused) = exchange_code(&hub, &client, redirect_now, &code, &verifier, &[]).await;
    assert_eq!((s, reused["error"].as_str()), (400, Some("invalid_grant")));

    // Code reuse revoked the grant: authorize again for the rest.
    let (verifier, challenge) = pkce();
    let code = approved_code(&hub, &client, redirect, &challenge, "st-2", &NAS_E2E_POLICY).await;
    assert_ne!(access, "");
    let (s, tokens) = exchange_code(
        &hub,
        &client,
        redirect,
        &code,
        &verifier,
        &[("resource", &mcp_url)],
    )
    .await;
    assert_eq!(s, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    // 5. rmcp's client with the access token, under the approved policy.
    let mcp = mcp_client(&hub, &access).await.unwrap();
    let (err, v) = call_tool(&mcp, "list_agents", json!({})).await;
    assert!(!err, "{v}");
    assert_eq!(v["agents"][0]["name"], "nas");
    let (err, v) = call_tool(
        &mcp,
        "probe",
        json!({"agent": "nas", "probe": "e2e.echo", "params": {"text": "over oauth"}}),
    )
    .await;
    assert!(!err, "{v}");
    assert!(v.to_string().contains("over oauth"), "{v}");
    let (err, v) = call_tool(&mcp, "list_capabilities", json!({})).await;
    assert!(err, "a tool outside the approved policy is refused: {v}");
    let ran: Vec<Value> = hub
        .audit_entries()
        .into_iter()
        .filter(|e| e["actor"] == format!("oauth:{client}").as_str() && e["probe"] == "e2e.echo")
        .collect();
    assert!(
        !ran.is_empty(),
        "the probe call is audited under the client"
    );
    drop(mcp);

    // 6. Refresh rotates; replaying the old refresh token revokes the grant.
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (s, rotated) = token_request(
        &hub,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client),
            ("resource", &mcp_url),
        ],
    )
    .await;
    assert_eq!(s, 200, "{rotated}");
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated["refresh_token"], refresh.as_str());
    assert!(mcp_client(&hub, &access2).await.is_ok());
    let (s, replay) = token_request(
        &hub,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client),
        ],
    )
    .await;
    assert_eq!((s, replay["error"].as_str()), (400, Some("invalid_grant")));
    let (status, _) = mcp_raw(
        &hub,
        &[("authorization", &format!("Bearer {access2}"))],
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(status, 401, "a replayed refresh token revokes the grant");
    assert_eq!(hub.audit_actions("oauth.refresh_reused").len(), 1);
    assert_eq!(hub.audit_actions("oauth.code_reused").len(), 1);
    assert!(!hub.audit_actions("oauth.client_registered").is_empty());
    assert_eq!(hub.audit_actions("oauth.approved").len(), 2);
    hub.assert_audit_ok();
    let log = hub.log_text();
    assert!(!log.contains(&access) && !log.contains(&refresh) && !log.contains(&code));
    let audit = serde_json::to_string(&hub.audit_entries()).unwrap();
    for secret in [&access, &access2, &refresh, &refresh1, &code, &verifier] {
        assert!(
            !audit.contains(secret.as_str()),
            "a secret reached the audit chain"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_refusals_denial_and_client_revocation() {
    let scratch = Scratch::new();
    let hub = Hub::start_with(
        &scratch,
        "[mcp]\nallowed_origins = [\"https://inspector.example\"]\n",
    );
    let mcp_url = hub.run.mcp_url.clone().unwrap();
    let redirect = "https://client.example/cb";
    let client = register(&hub, redirect).await;
    let (_, challenge) = pkce();
    let c = http(&hub);

    // CORS only for the origins the operator allowed for /mcp.
    for (origin, allowed) in [
        ("https://inspector.example", true),
        ("https://evil.example", false),
    ] {
        let r = c
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/oauth/token", origin_of(&hub)),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let acao = r
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(acao.as_deref(), allowed.then_some(origin), "{origin}");
    }

    // Bad client or redirect URI: an error page, never a redirect.
    for url in [
        authorize_url(&hub, "oac-unknown", redirect, &challenge, "s"),
        authorize_url(&hub, &client, "https://client.example/cb/", &challenge, "s"),
        authorize_url(&hub, &client, "https://evil.example/cb", &challenge, "s"),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{url}");
        assert!(r.headers().get("location").is_none());
    }
    // Missing PKCE, plain PKCE, missing state, another resource: an error
    // sent back to the client.
    let base = authorize_url(&hub, &client, redirect, &challenge, "s");
    for (url, error) in [
        (
            base.replace(
                "&code_challenge_method=S256",
                "&code_challenge_method=plain",
            ),
            "invalid_request",
        ),
        (
            base.replace(&format!("&code_challenge={challenge}"), ""),
            "invalid_request",
        ),
        (base.replace("&state=s", ""), "invalid_request"),
        (
            base.replace(&encode(&mcp_url), &encode("https://other.example/mcp")),
            "invalid_target",
        ),
        (
            base.replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 302, "{url}");
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(loc.starts_with(redirect), "{loc}");
        assert_eq!(q(&query_of(&loc), "error"), Some(error), "{url}");
    }
    assert!(
        hub.cli_json(&["oauth", "pending"])
            .as_array()
            .unwrap()
            .is_empty(),
        "refused requests never reach the operator"
    );

    // Denied: the page says so and forwards with error=access_denied.
    let (_, wait) = open_authorize(&hub, &base).await;
    let pending = pending_request(&hub, &client).await;
    hub.cli_ok(&["oauth", "deny", pending["id"].as_str().unwrap()]);
    let r = follow_wait(&hub, &wait).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("denied"), "{html}");
    let back = refresh_url(&html).unwrap();
    assert!(back.starts_with(redirect));
    assert_eq!(q(&query_of(&back), "error"), Some("access_denied"));
    assert_eq!(q(&query_of(&back), "state"), Some("s"));
    assert_eq!(hub.audit_actions("oauth.denied").len(), 1);

    // A client with a token, then revoked by the operator.
    let (verifier, challenge) = pkce();
    let code = approved_code(&hub, &client, redirect, &challenge, "s2", &[]).await;
    // A wrong verifier fails (and burns the code).
    let (s, e) = exchange_code(&hub, &client, redirect, &code, &pkce().0, &[]).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    assert!(e["error_description"].as_str().unwrap().contains("PKCE"));
    let (verifier2, challenge) = pkce();
    let _ = verifier;
    let code = approved_code(&hub, &client, redirect, &challenge, "s3", &[]).await;
    let (s, tokens) = exchange_code(&hub, &client, redirect, &code, &verifier2, &[]).await;
    assert_eq!(s, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let mcp = mcp_client(&hub, access).await.unwrap();
    assert!(!call_tool(&mcp, "list_agents", json!({})).await.0);
    drop(mcp);
    let clients = hub.cli_json(&["oauth", "clients", "list"]);
    assert_eq!(clients[0]["active_grants"], 1);
    hub.cli_ok(&["oauth", "clients", "revoke", &client]);
    let (status, _) = mcp_raw(
        &hub,
        &[("authorization", &format!("Bearer {access}"))],
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(
        status, 401,
        "a revoked client's token stops working at once"
    );
    let (s, e) = token_request(
        &hub,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &client),
        ],
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    let r = c
        .get(authorize_url(&hub, &client, redirect, &challenge, "s4"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a revoked client cannot ask again");
    assert_eq!(hub.audit_actions("oauth.client_revoked").len(), 1);
    // API keys keep working beside OAuth.
    let key = hub.api_key(&["--name", "k"]);
    let mcp = mcp_client(&hub, &key).await.unwrap();
    assert!(!call_tool(&mcp, "list_agents", json!({})).await.0);
    hub.assert_audit_ok();
}

/// The official TypeScript SDK's client does discovery, registration, the
/// authorization request, the token exchange, tools/list, a call and a
/// refresh by itself; this test plays the operator (and the script plays
/// the browser, which only follows the hub's pages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_flow_with_the_typescript_sdk_client() {
    let node_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
    let has_node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_node
        || !node_dir
            .join("node_modules/@modelcontextprotocol/sdk")
            .exists()
    {
        skip_unless_ci(
            "node or tests/node/node_modules is missing (run `cd tests/node && npm ci`)",
        );
        return;
    }
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let mut child = std::process::Command::new("node")
        .arg(node_dir.join("oauth_flow.mjs"))
        .arg(hub.run.mcp_url.as_deref().unwrap())
        .env("NODE_EXTRA_CA_CERTS", hub.data.join("ca.crt"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut events = Vec::new();
    let mut approved = false;
    let outcome = loop {
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        while let Ok(ev) = rx.try_recv() {
            events.push(ev);
        }
        // The operator: approve the request whose code the page showed.
        if !approved && let Some(page) = events.iter().find(|e| e["event"] == "waiting") {
            let list = hub.cli_json(&["oauth", "pending"]);
            if let Some(r) = list
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["user_code"] == page["user_code"])
            {
                assert_eq!(r["client_name"], "sonde-e2e-typescript");
                hub.cli_ok(&[
                    "oauth",
                    "approve",
                    r["id"].as_str().unwrap(),
                    "--tools",
                    "list_agents,agent_overview",
                ]);
                approved = true;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            while let Ok(ev) = rx.recv_timeout(Duration::from_millis(200)) {
                events.push(ev);
            }
            break Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let status = outcome
        .unwrap_or_else(|| panic!("the node client timed out; events {events:?}; stderr {stderr}"));
    assert!(
        status.success(),
        "node failed: {stderr}\nevents: {events:?}\nhub log: {}",
        hub.log_text()
    );
    let done = events
        .iter()
        .find(|e| e["event"] == "done")
        .unwrap_or_else(|| panic!("no result: {events:?}"));
    assert_eq!(
        done["tools"],
        json!(["agent_overview", "list_agents"]),
        "{done}"
    );
    assert_eq!(done["call_ok"], true, "{done}");
    assert_eq!(done["refreshed"], true, "{done}");
    assert_eq!(done["after_refresh_ok"], true, "{done}");
    assert_eq!(hub.audit_actions("oauth.approved").len(), 1);
    let issued = hub.audit_actions("oauth.token_issued");
    assert_eq!(
        issued.len(),
        2,
        "one code exchange and one refresh: {issued:?}"
    );
    hub.assert_audit_ok();
}

/// A private tmux server running the console, killed on drop.
struct Tmux(String);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("tmux")
            .args(["-f", "/dev/null", "-L", &self.0])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn capture(&self) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-J", "-t", "console"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "console"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success(), "send-keys {keys:?}");
    }

    fn wait_text(&self, text: &str) {
        let ok = wait_until(T, || self.capture().contains(text));
        assert!(ok, "never saw {text:?}; screen:\n{}", self.capture());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// One approval in the console is all an OAuth client needs: the operator
/// sees the request (tab badge, client, code), approves with a policy and
/// `y`, and the waiting browser is sent back with a code that becomes a
/// working token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_client_connects_after_one_approval_in_the_console() {
    let tmux_ok = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !tmux_ok {
        skip_unless_ci("tmux is not installed (the console end-to-end test needs it)");
        return;
    }
    let scratch = Scratch::new();
    let hub = Hub::start(&scratch);
    let redirect = "http://127.0.0.1:40404/cb";
    let client = register(&hub, redirect).await;
    let (verifier, challenge) = pkce();
    let (_, wait) = open_authorize(
        &hub,
        &authorize_url(&hub, &client, redirect, &challenge, "st"),
    )
    .await;
    let pending = pending_request(&hub, &client).await;
    let user_code = pending["user_code"].as_str().unwrap().to_owned();
    let browser = {
        let (wait, ca) = (wait.clone(), hub.ca_pem());
        tokio::spawn(async move {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let c = reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let start = Instant::now();
            loop {
                let r = c.get(&wait).send().await.unwrap();
                if r.status() != 200 || start.elapsed() > Duration::from_secs(90) {
                    return r
                        .headers()
                        .get("location")
                        .map(|l| l.to_str().unwrap().to_owned());
                }
            }
        })
    };

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let tmux = Tmux(format!("sonde-oauth-e2e-{}-{nanos}", std::process::id()));
    let command = format!(
        "TERM=xterm-256color '{}' --data '{}' 2>'{}'",
        bin("sonde-console").display(),
        hub.data.display(),
        scratch.path().join("console.err").display()
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-x",
        "160",
        "-y",
        "45",
        "-s",
        "console",
        &command,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tmux.wait_text("8 OAuth (1)");
    tmux.keys(&["8"]);
    tmux.wait_text(&user_code);
    tmux.wait_text("Rust <b>test</b>");
    tmux.keys(&["a"]);
    tmux.wait_text("Approve an MCP client");
    tmux.keys(&["-l", "nas*"]);
    tmux.keys(&["Enter"]);
    tmux.wait_text("access to this hub's MCP tools?");
    tmux.wait_text("agents: nas*");
    tmux.keys(&["y"]);

    let location = tokio::time::timeout(Duration::from_secs(60), browser)
        .await
        .unwrap()
        .unwrap()
        .expect("the browser was sent back");
    let params = query_of(&location);
    assert_eq!(q(&params, "state"), Some("st"));
    let code = q(&params, "code").unwrap().to_owned();
    let (s, tokens) = exchange_code(&hub, &client, redirect, &code, &verifier, &[]).await;
    assert_eq!(s, 200, "{tokens}");
    let mcp = mcp_client(&hub, tokens["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert!(!call_tool(&mcp, "list_agents", json!({})).await.0);
    let approved = hub.audit_actions("oauth.approved");
    assert_eq!(approved.len(), 1);
    assert!(
        approved[0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("operator:"),
        "{approved:?}"
    );
    assert_eq!(approved[0]["detail"]["policy"]["agents"], json!(["nas*"]));
    tmux.keys(&["q"]);
}

/// Nobody decides in time: the page says so, forwards to the client with
/// `access_denied`, and the request can no longer be approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_request_nobody_approves_times_out_with_access_denied() {
    let scratch = Scratch::new();
    let hub = Hub::start_with(&scratch, "[mcp]\noauth_approval_timeout_s = 2\n");
    let redirect = "https://client.example/cb";
    let client = register(&hub, redirect).await;
    let (_, challenge) = pkce();
    let (html, wait) = open_authorize(
        &hub,
        &authorize_url(&hub, &client, redirect, &challenge, "late"),
    )
    .await;
    assert!(html.contains("lapses after 2 seconds"), "{html}");
    let pending = pending_request(&hub, &client).await;
    let started = Instant::now();
    let r = follow_wait(&hub, &wait).await;
    assert!(started.elapsed() < Duration::from_secs(20), "bounded wait");
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("timed out"), "{html}");
    let back = refresh_url(&html).unwrap();
    assert!(back.starts_with(redirect), "{back}");
    assert_eq!(q(&query_of(&back), "error"), Some("access_denied"));
    assert_eq!(q(&query_of(&back), "state"), Some("late"));
    let out = hub.cli(&["oauth", "approve", pending["id"].as_str().unwrap()]);
    assert!(
        !out.status.success(),
        "an expired request cannot be approved"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"));
    assert!(
        hub.cli_json(&["oauth", "pending"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(hub.audit_actions("oauth.expired").len(), 1);
    hub.assert_audit_ok();
}

/// Tokens are bound to the resource they were issued for: when the hub's
/// public URL changes, earlier tokens stop working (and discovery names
/// the new resource).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_tokens_are_bound_to_the_hub_resource_url() {
    let scratch = Scratch::new();
    let mut hub = Hub::start(&scratch);
    let redirect = "https://client.example/cb";
    let client = register(&hub, redirect).await;
    let (verifier, challenge) = pkce();
    let code = approved_code(&hub, &client, redirect, &challenge, "s", &[]).await;
    let (s, tokens) = exchange_code(&hub, &client, redirect, &code, &verifier, &[]).await;
    assert_eq!(s, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(mcp_client(&hub, &access).await.is_ok());

    // Same port, another public origin: another resource.
    let port = origin(&hub).rsplit(':').next().unwrap().to_owned();
    hub.stop();
    std::fs::write(
        hub.data.join("hub.toml"),
        format!("[mcp]\npublic_url = \"https://127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    hub.restart();
    let prm: Value = http(&hub)
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            origin(&hub)
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], format!("https://127.0.0.1:{port}/mcp"));
    let (status, _) = mcp_raw(
        &hub,
        &[("authorization", &format!("Bearer {access}"))],
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(status, 401, "a token for another resource is refused");
    let (s, e) = token_request(
        &hub,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &client),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_target")),
        "{e}"
    );
    let denied = hub.audit_actions("mcp.auth_failed");
    assert!(
        denied
            .iter()
            .any(|d| d["detail"]["reason"] == "OAuth token for another resource"),
        "{denied:?}"
    );
}
