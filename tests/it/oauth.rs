//! OAuth (`serve --oauth`) over real HTTP: discovery only after a 401, registration, the
//! sign-in and consent forms as a browser posts them, the token endpoint, and the rules that
//! keep it safe (PKCE S256 only, single-use codes bound to client, redirect and resource, no
//! redirect to an unregistered URI, CSRF). Real clients and a real browser drive the same flow
//! in `oauth_clients.rs`.

use std::collections::HashMap;

use base64::Engine as _;
use custory_mcp::server::ServerConfig;
use reqwest::header::{LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::common::{TestServer, Visitor, http, rpc};

pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A server the flow runs against: in this process, or the real binary.
pub(crate) trait Site {
    fn base(&self) -> &str;
    fn owner_credential(&self) -> &str;
    fn mcp(&self) -> String {
        format!("{}/api/mcp", self.base())
    }
    /// Anyone, with no credential (a client before it has a key).
    fn anyone(&self) -> Visitor {
        Visitor::new(self.base())
    }
}

impl Site for TestServer {
    fn base(&self) -> &str {
        &self.url
    }
    fn owner_credential(&self) -> &str {
        &self.owner_token
    }
}

/// `custory-mcp serve` as a user starts it.
struct Served {
    url: String,
    owner: String,
}

impl Site for Served {
    fn base(&self) -> &str {
        &self.url
    }
    fn owner_credential(&self) -> &str {
        &self.owner
    }
}

async fn oauth_server() -> TestServer {
    TestServer::start_with(ServerConfig { oauth: true, ..ServerConfig::default() }).await
}

/// A PKCE verifier and its S256 challenge.
pub(crate) fn pkce(seed: &str) -> (String, String) {
    let verifier = format!("{seed}-{}", "v".repeat(50));
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A browser without JavaScript: follows nothing by itself, keeps its cookies.
pub(crate) struct Browser {
    client: reqwest::Client,
    pub(crate) cookies: HashMap<String, String>,
}

pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) csp: Option<String>,
    pub(crate) html: String,
}

impl Browser {
    pub(crate) fn new() -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self { client, cookies: HashMap::new() }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let request =
            if cookie.is_empty() { request } else { request.header("cookie", cookie.join("; ")) };
        let response = request.send().await.expect("request");
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().expect("cookie text");
            assert!(set.contains("HttpOnly") && set.contains("SameSite="), "{set}");
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok().map(str::to_owned))
        };
        Page {
            status: response.status().as_u16(),
            location: header(LOCATION),
            csp: header(reqwest::header::CONTENT_SECURITY_POLICY),
            html: response.text().await.expect("body"),
        }
    }

    pub(crate) async fn get(&mut self, url: &str) -> Page {
        let request = self.client.get(url);
        self.send(request).await
    }

    /// A form post, with the `Origin` a browser sends: the page's own.
    pub(crate) async fn post(&mut self, url: &str, form: &[(&str, String)]) -> Page {
        let origin = url::Url::parse(url).expect("url").origin().ascii_serialization();
        self.post_from(url, form, &origin).await
    }

    async fn post_from(&mut self, url: &str, form: &[(&str, String)], origin: &str) -> Page {
        let request = self.client.post(url).header("origin", origin).form(form);
        self.send(request).await
    }
}

/// The value of the hidden field `name` on a page, as a browser reads it.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} on the page:\n{html}"));
    let rest = &html[start + marker.len()..];
    unescape(&rest[..rest.find('"').expect("end of value")])
}

/// HTML text as a browser reads it: the character references a page's escaping writes
/// (named or numeric) turned back into characters.
fn unescape(text: &str) -> String {
    let reference =
        regex::Regex::new("&(#[0-9]+|#x[0-9a-fA-F]+|amp|lt|gt|quot|apos);").expect("re");
    reference
        .replace_all(text, |found: &regex::Captures<'_>| {
            let name = &found[1];
            let code = match name {
                "amp" => u32::from('&'),
                "lt" => u32::from('<'),
                "gt" => u32::from('>'),
                "quot" => u32::from('"'),
                "apos" => u32::from('\''),
                _ => match name.strip_prefix("#x") {
                    Some(hex) => u32::from_str_radix(hex, 16).expect("hex reference"),
                    None => name[1..].parse().expect("decimal reference"),
                },
            };
            char::from_u32(code).expect("a character").to_string()
        })
        .into_owned()
}

/// The fields a form on `html` sends back as they are (the hidden inputs).
pub(crate) fn hidden_fields(html: &str) -> Vec<(&'static str, String)> {
    [
        "csrf",
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "code_challenge",
        "code_challenge_method",
        "resource",
    ]
    .into_iter()
    .filter(|name| html.contains(&format!("name=\"{name}\" value=")))
    .map(|name| (name, hidden(html, name)))
    .collect()
}

pub(crate) async fn register(server: &impl Site, name: &str, redirect: &str) -> String {
    let client = json!({"client_name": name, "redirect_uris": [redirect],
                        "token_endpoint_auth_method": "none",
                        "grant_types": ["authorization_code", "refresh_token"]});
    let body = server.anyone().post("/oauth/register").json(&client).expect(201).await;
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert!(body.get("client_secret").is_none(), "a public client: {body}");
    body["client_id"].as_str().expect("client_id").to_owned()
}

pub(crate) fn authorize_url(
    server: &impl Site,
    client_id: &str,
    redirect: &str,
    challenge: &str,
) -> String {
    let mut url = url::Url::parse(&format!("{}/oauth/authorize", server.base())).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("state", "st&te 1")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &server.mcp());
    url.into()
}

pub(crate) fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location).expect("location").query_pairs().into_owned().collect()
}

/// Signs in (once per browser) and approves; returns where the browser is sent.
pub(crate) async fn consent(
    server: &impl Site,
    browser: &mut Browser,
    url: &str,
    choices: &[(&'static str, String)],
) -> String {
    let mut page = browser.get(url).await;
    assert_eq!(page.status, 200, "{}", page.html);
    if page.html.contains("name=\"owner_credential\"") {
        let mut form = hidden_fields(&page.html);
        form.push(("owner_credential", server.owner_credential().to_owned()));
        let signed = browser.post(&format!("{}/oauth/login", server.base()), &form).await;
        assert_eq!(signed.status, 303, "{}", signed.html);
        let back = signed.location.expect("back to consent");
        assert!(back.starts_with("/oauth/authorize?"), "{back}");
        page = browser.get(&format!("{}{back}", server.base())).await;
    }
    assert!(page.html.contains("name=\"decision\" value=\"approve\""), "{}", page.html);
    let csp = page.csp.clone().expect("a CSP");
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{csp}");
    let mut form = hidden_fields(&page.html);
    form.extend([("workspace", "acme".to_owned()), ("decision", "approve".to_owned())]);
    for name in ["key_name", "expires", "access"] {
        if let Some((_, value)) = choices.iter().find(|(n, _)| *n == name) {
            form.push((name, value.clone()));
        } else if name == "key_name" {
            form.push((name, hidden_value(&page.html, "key_name")));
        } else {
            form.push((name, if name == "expires" { "30d" } else { "read-write" }.to_owned()));
        }
    }
    let answered = browser.post(&format!("{}/oauth/authorize", server.base()), &form).await;
    assert_eq!(answered.status, 303, "{}", answered.html);
    answered.location.expect("redirect")
}

/// The value of the text input `name`, as a browser reads it.
fn hidden_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("input");
    let rest = &html[start + marker.len()..];
    unescape(&rest[..rest.find('"').expect("end")])
}

async fn redeem(server: &impl Site, form: &[(&str, &str)]) -> (u16, Value) {
    let reply = server.anyone().post("/oauth/token").form(form).send().await;
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    (reply.status, serde_json::from_slice(&reply.body).expect("json"))
}

/// Redeems `code` as a client does: its id, the redirect the code went to, its verifier.
pub(crate) async fn redeem_code(
    server: &impl Site,
    code: &str,
    redirect: &str,
    client_id: &str,
    verifier: &str,
) -> (u16, Value) {
    redeem(
        server,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn tools_list_status(server: &impl Site, token: &str) -> (u16, Option<String>) {
    let reply = server.anyone().key(token).send(&rpc(1, "tools/list", json!({}))).await;
    let challenge = reply.header(WWW_AUTHENTICATE.as_str()).map(str::to_owned);
    (reply.status, challenge)
}

#[tokio::test]
async fn only_a_401_leads_to_the_metadata_and_static_keys_are_untouched() {
    let server = oauth_server().await;
    let key = server.owner().create_key("static", "30d", "read-write").await;
    // A key in a header works as it always did.
    assert_eq!(tools_list_status(&server, &key.token).await, (200, None));
    assert_eq!(key.initialize().await["serverInfo"]["name"], "custory-mcp");
    // The root well-known paths, which clients probe without a 401, stay 404.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        server.visitor().get(path).expect(404).await;
    }
    // A 401 names the resource metadata, which names the authorization server.
    let (status, challenge) = tools_list_status(&server, "cst_nope").await;
    assert_eq!(status, 401);
    let challenge = challenge.expect("challenge");
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/api/mcp", server.url);
    assert!(challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")), "{challenge}");
    let anyone = server.visitor();
    let resource = anyone.get("/.well-known/oauth-protected-resource/api/mcp").expect(200).await;
    assert_eq!(resource["resource"], server.mcp_url());
    let issuer = resource["authorization_servers"][0].as_str().expect("issuer");
    assert_eq!(issuer, format!("{}/oauth", server.url));
    // RFC 8414 §3.1: the issuer's path goes after the well-known suffix.
    let metadata = anyone.get("/.well-known/oauth-authorization-server/oauth").expect(200).await;
    assert_eq!(metadata["issuer"], issuer);
    assert_eq!(metadata["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(metadata["grant_types_supported"], json!(["authorization_code"]));
    server.stop().await;

    // Behind a TLS proxy the metadata names the public URL, not the Host it was asked at.
    let server = TestServer::start_with(ServerConfig {
        oauth: true,
        public_url: Some("https://mcp.example.com".into()),
        ..ServerConfig::default()
    })
    .await;
    let resource =
        server.visitor().get("/.well-known/oauth-protected-resource/api/mcp").expect(200).await;
    assert_eq!(resource["resource"], "https://mcp.example.com/api/mcp");
    assert_eq!(resource["authorization_servers"][0], "https://mcp.example.com/oauth");
    let (_, challenge) = tools_list_status(&server, "cst_nope").await;
    assert!(challenge.expect("challenge").contains(
        "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/api/mcp\""
    ));
    server.stop().await;

    // Without --oauth nothing of it exists, and every path a client tries after the 401 says
    // why, in the OAuth error shape clients show (`error_description`), still as a 404.
    let server = TestServer::start().await;
    let (_, challenge) = tools_list_status(&server, "cst_nope").await;
    assert!(!challenge.expect("challenge").contains("resource_metadata"));
    let anyone = server.visitor();
    let mut answers = Vec::new();
    for path in [
        "/.well-known/oauth-protected-resource/api/mcp",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/api/mcp",
        "/.well-known/openid-configuration",
        "/api/mcp/.well-known/openid-configuration",
        "/oauth/register",
        "/authorize",
    ] {
        answers.push(anyone.get(path).expect(404).await);
    }
    for path in ["/register", "/oauth/register", "/token"] {
        answers.push(anyone.post(path).json(&json!({})).expect(404).await);
    }
    for answer in answers {
        assert_eq!(answer["error"], "access_denied", "{answer}");
        let said = answer["error_description"].as_str().expect("error_description");
        assert!(said.contains("refused this client's key"), "{said}");
        assert!(said.contains("`custory-mcp keys create --name NAME --save`"), "{said}");
        assert!(said.contains("without --oauth"), "{said}");
    }
    // Any other path keeps the plain answer.
    let other = anyone.get("/.well-known/security.txt").expect(404).await;
    assert_eq!(other["error"]["code"], "not_found", "{other}");
    server.stop().await;
}

#[tokio::test]
async fn consent_mints_an_ordinary_key_that_is_listed_revoked_and_audited() {
    let server = oauth_server().await;
    let client_id = register(&server, "Claude Code", REDIRECT).await;
    let (verifier, challenge) = pkce("one");
    let mut browser = Browser::new();
    let url = authorize_url(&server, &client_id, REDIRECT, &challenge);
    let first = browser.get(&url).await;
    assert!(first.html.contains("name=\"owner_credential\""), "sign in first: {}", first.html);
    assert!(first.html.contains("Claude Code"));
    let location =
        consent(&server, &mut browser, &url, &[("access", "read-only".to_owned())]).await;
    let answer = query_of(&location);
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(answer["state"], "st&te 1");
    assert_eq!(answer["iss"], format!("{}/oauth", server.url));
    let code = &answer["code"];

    let (status, token) = redeem(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
            ("resource", &server.mcp_url()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{token}");
    let access_token = token["access_token"].as_str().expect("token");
    assert!(access_token.starts_with("cst_"), "an MCP key");
    assert_eq!(token["token_type"], "Bearer");
    assert!(token.get("refresh_token").is_none(), "no refresh tokens: {token}");
    let expires_in = token["expires_in"].as_i64().expect("expires_in");
    assert!((30 * 86_400 - 60..=30 * 86_400).contains(&expires_in), "{expires_in}");
    assert_eq!(tools_list_status(&server, access_token).await.0, 200);

    // It is a key like any other: listed with where it came from, revocable from the CLI.
    let keys = server.owner().list_keys("acme", "").await;
    let key = &keys["keys"][0];
    assert_eq!(key["oauth_client"], json!({"client_id": client_id, "name": "Claude Code"}));
    assert_eq!(key["access"], "read-only");
    assert!(key["name"].as_str().is_some_and(|n| n.starts_with("Claude Code on ")), "{key}");
    assert!(key["prefix"].as_str().is_some_and(|p| access_token.starts_with(p)));
    let env = crate::common::TestEnv::new();
    let mut cli = env.command();
    cli.env("CUSTORY_SERVER", &server.url)
        .env("CUSTORY_OWNER_TOKEN", &server.owner_token)
        .args(["keys", "list"]);
    let listed = crate::common::run_piped(cli, None).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("via OAuth"), "{}", listed.stdout);
    let mut cli = env.command();
    cli.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token).args([
        "keys",
        "revoke",
        "--yes",
        key["id"].as_str().expect("id"),
    ]);
    let revoked = crate::common::run_piped(cli, None).await;
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    let (status, challenge) = tools_list_status(&server, access_token).await;
    assert_eq!(status, 401);
    let challenge = challenge.expect("challenge");
    assert!(
        challenge.contains("revoked") && challenge.contains("resource_metadata"),
        "{challenge}"
    );

    let audit = server.owner().audit("acme", "").await;
    let created = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "key.created")
        .expect("key.created");
    assert!(created["detail"].as_str().is_some_and(|d| d.contains("via OAuth")), "{created}");
    let all = audit.to_string();
    assert!(!all.contains(access_token) && !all.contains(code.as_str()), "no secrets in audit");

    // The same browser, still signed in, goes straight to the consent page next time.
    let again = browser.get(&url).await;
    assert!(
        again.html.contains("value=\"approve\"") && !again.html.contains("owner_credential"),
        "{} {:?} {}",
        again.status,
        again.location,
        again.html
    );
    // A new owner credential ends the sessions signed in with the old one.
    server.store.access().ensure_owner_credential(true).expect("reset");
    let after_reset = browser.get(&url).await;
    assert!(after_reset.html.contains("name=\"owner_credential\""), "sign in again");
    server.stop().await;
}

/// The text of the first `<strong>` on a page, as a browser shows it.
fn strong_text(html: &str) -> String {
    let start = html.find("<strong>").expect("<strong>") + "<strong>".len();
    unescape(&html[start..start + html[start..].find("</strong>").expect("</strong>")])
}

#[tokio::test]
async fn what_a_client_names_itself_shows_escaped_on_the_pages() {
    let server = oauth_server().await;
    let name = "<script>alert(1)</script> \"><img src=x> & 'q'";
    let client_id = register(&server, name, REDIRECT).await;
    let (verifier, challenge) = pkce("escape");
    let mut browser = Browser::new();
    let url = authorize_url(&server, &client_id, REDIRECT, &challenge);
    let sign_in = browser.get(&url).await;
    assert_eq!(sign_in.status, 200, "{}", sign_in.html);
    let mut form = hidden_fields(&sign_in.html);
    form.push(("owner_credential", server.owner_token.clone()));
    let signed = browser.post(&format!("{}/oauth/login", server.url), &form).await;
    assert_eq!(signed.status, 303, "{}", signed.html);
    let consent_page = browser.get(&url).await;
    assert!(consent_page.html.contains("value=\"approve\""), "{}", consent_page.html);
    for page in [&sign_in, &consent_page] {
        // Shown as text, in an element and in an attribute, never as markup.
        assert!(!page.html.contains("<script") && !page.html.contains("<img"), "{}", page.html);
        assert!(!page.html.contains("\"><"), "an attribute was closed: {}", page.html);
        assert_eq!(strong_text(&page.html), name);
    }
    // The key name the form suggests is the name as given, and goes back as it was.
    let suggested = hidden_value(&consent_page.html, "key_name");
    assert!(suggested.starts_with(&format!("{name} on ")), "{suggested}");
    let code = query_of(&consent(&server, &mut browser, &url, &[]).await)["code"].clone();
    let (status, token) = redeem_code(&server, &code, REDIRECT, &client_id, &verifier).await;
    assert_eq!(status, 200, "{token}");
    let keys: Value = server.owner().list_keys("acme", "").await;
    assert_eq!(keys["keys"][0]["name"], suggested.as_str());
    assert_eq!(keys["keys"][0]["oauth_client"]["name"], name);
    server.stop().await;
}

#[tokio::test]
async fn the_pages_forbid_framing_and_caching_and_their_cookies_are_scoped() {
    // Over http: no Secure (a browser would drop the cookie).
    let server = oauth_server().await;
    let client_id = register(&server, "Headers", REDIRECT).await;
    let (_, challenge) = pkce("headers");
    let response = http()
        .get(authorize_url(&server, &client_id, REDIRECT, &challenge))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
    };
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(header("content-type").starts_with("text/html"), "{}", header("content-type"));
    let csp = header("content-security-policy");
    for part in ["default-src 'none'", "form-action 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(part), "{csp}");
    }
    let csrf = header("set-cookie");
    let attributes: Vec<&str> = csrf.split("; ").collect();
    assert!(attributes[0].starts_with("custory_csrf=") && attributes[0].len() > 40, "{csrf}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/oauth", "Max-Age=28800"] {
        assert!(attributes.contains(&attribute), "{attribute} in {csrf}");
    }
    assert!(!attributes.contains(&"Secure"), "{csrf}");

    // The session cookie: Lax, so the redirect back from the client's sign-in page keeps it.
    let mut browser = Browser::new();
    let url = authorize_url(&server, &client_id, REDIRECT, &challenge);
    let page = browser.get(&url).await;
    let mut form = hidden_fields(&page.html);
    form.push(("owner_credential", server.owner_token.clone()));
    let cookie = browser.cookies.get("custory_csrf").expect("csrf cookie").clone();
    let signed = browser
        .client
        .post(format!("{}/oauth/login", server.url))
        .header("origin", &server.url)
        .header("cookie", format!("custory_csrf={cookie}"))
        .form(&form)
        .send()
        .await
        .expect("post");
    assert_eq!(signed.status(), 303);
    let session = signed.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("set");
    let attributes: Vec<&str> = session.split("; ").collect();
    assert!(attributes[0].starts_with("custory_owner_session="), "{session}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/oauth", "Max-Age=28800"] {
        assert!(attributes.contains(&attribute), "{attribute} in {session}");
    }
    assert!(!attributes.contains(&"Secure"), "{session}");
    let (pair, _) = session.split_once(';').expect("attributes");
    let (name, value) = pair.split_once('=').expect("name=value");
    browser.cookies.insert(name.to_owned(), value.to_owned());
    // The consent page may post to the client's redirect origin, and nowhere else.
    let consent_page = browser.get(&url).await;
    let csp = consent_page.csp.expect("csp");
    assert!(csp.contains("form-action 'self' http://127.0.0.1:9;"), "{csp}");
    server.stop().await;

    // Reached over https (here: named so by --public-url), the cookies are Secure.
    let server = TestServer::start_with(ServerConfig {
        oauth: true,
        public_url: Some("https://mcp.example.com".into()),
        ..ServerConfig::default()
    })
    .await;
    let client_id = register(&server, "Headers", REDIRECT).await;
    let mut url = url::Url::parse(&format!("{}/oauth/authorize", server.url)).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let response = http().get(url.as_str()).send().await.expect("get");
    assert_eq!(response.status(), 200);
    let csrf = response.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("set");
    assert!(csrf.split("; ").any(|a| a == "Secure"), "{csrf}");
    server.stop().await;
}

#[tokio::test]
async fn codes_are_single_use_short_lived_and_bound_to_client_redirect_verifier_and_resource() {
    let server = oauth_server().await;
    let client_id = register(&server, "Codex", REDIRECT).await;
    let other_client = register(&server, "Other", REDIRECT).await;
    let mut browser = Browser::new();
    let (verifier, challenge) = pkce("two");
    let mcp_url = server.mcp_url();
    let code_for = |location: String| query_of(&location)["code"].clone();
    let url = authorize_url(&server, &client_id, REDIRECT, &challenge);
    let redeem_with =
        |code: String, client: String, redirect: String, verifier: String, resource: String| {
            let server = &server;
            async move {
                redeem(
                    server,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", &redirect),
                        ("client_id", &client),
                        ("code_verifier", &verifier),
                        ("resource", &resource),
                    ],
                )
                .await
            }
        };

    // Each mismatch burns its code: another client, another redirect, another verifier,
    // another resource.
    let other_verifier = pkce("other").0;
    let cases = [
        (
            other_client.clone(),
            REDIRECT.to_owned(),
            verifier.clone(),
            mcp_url.clone(),
            "invalid_grant",
        ),
        (
            client_id.clone(),
            "http://127.0.0.1:9/other".to_owned(),
            verifier.clone(),
            mcp_url.clone(),
            "invalid_grant",
        ),
        (client_id.clone(), REDIRECT.to_owned(), other_verifier, mcp_url.clone(), "invalid_grant"),
        (
            client_id.clone(),
            REDIRECT.to_owned(),
            verifier.clone(),
            "http://127.0.0.1:1/elsewhere".to_owned(),
            "invalid_target",
        ),
    ];
    for (client, redirect, verifier_sent, resource, error) in cases {
        let code = code_for(consent(&server, &mut browser, &url, &[]).await);
        let (status, body) =
            redeem_with(code.clone(), client, redirect, verifier_sent, resource).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(error)), "{body}");
        let (status, body) = redeem_with(
            code,
            client_id.clone(),
            REDIRECT.to_owned(),
            verifier.clone(),
            mcp_url.clone(),
        )
        .await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "burnt: {body}");
    }

    // A code redeemed twice: the second is refused and the key the first gave is revoked.
    let code = code_for(consent(&server, &mut browser, &url, &[]).await);
    let (status, first) = redeem_with(
        code.clone(),
        client_id.clone(),
        REDIRECT.to_owned(),
        verifier.clone(),
        mcp_url.clone(),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let token = first["access_token"].as_str().expect("token").to_owned();
    assert_eq!(tools_list_status(&server, &token).await.0, 200);
    let (status, replay) = redeem_with(
        code,
        client_id.clone(),
        REDIRECT.to_owned(),
        verifier.clone(),
        mcp_url.clone(),
    )
    .await;
    assert_eq!((status, replay["error"].as_str()), (400, Some("invalid_grant")), "{replay}");
    assert_eq!(tools_list_status(&server, &token).await.0, 401, "the replayed code's key");

    // A code waits two minutes at most.
    let code = code_for(consent(&server, &mut browser, &url, &[]).await);
    server.store.clock().advance(chrono::Duration::seconds(121));
    let (status, late) = redeem_with(
        code,
        client_id.clone(),
        REDIRECT.to_owned(),
        verifier.clone(),
        mcp_url.clone(),
    )
    .await;
    assert_eq!((status, late["error"].as_str()), (400, Some("invalid_grant")), "{late}");
    assert!(late["error_description"].as_str().is_some_and(|d| d.contains("expired")));

    // The token endpoint's other refusals, in the RFC 6749 shape.
    for (form, status, error) in [
        (
            vec![("grant_type", "refresh_token"), ("refresh_token", "x")],
            400,
            "unsupported_grant_type",
        ),
        (vec![("grant_type", "authorization_code")], 400, "invalid_request"),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "nope"),
                ("redirect_uri", REDIRECT),
                ("client_id", "ocl_unknown"),
                ("code_verifier", &verifier),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "nope"),
                ("redirect_uri", REDIRECT),
                ("client_id", &client_id),
                ("code_verifier", "short"),
            ],
            400,
            "invalid_request",
        ),
    ] {
        let (got, body) = redeem(&server, &form).await;
        assert_eq!((got, body["error"].as_str()), (status, Some(error)), "{form:?}: {body}");
        assert!(body["error_description"].as_str().is_some_and(|d| d.len() > 10));
    }
    server.stop().await;
}

#[tokio::test]
async fn the_authorization_request_refuses_what_it_must_and_redirects_only_where_registered() {
    let server = oauth_server().await;
    let client_id = register(&server, "Gemini CLI", REDIRECT).await;
    let (_, challenge) = pkce("three");
    let mut browser = Browser::new();
    let with = |edit: &dyn Fn(&mut url::form_urlencoded::Serializer<'_, url::UrlQuery<'_>>)| {
        let mut url = url::Url::parse(&format!("{}/oauth/authorize", server.url)).expect("url");
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("response_type", "code").append_pair("client_id", &client_id);
            edit(&mut query);
        }
        url.to_string()
    };
    // An unregistered (or missing) redirect URI, or an unknown client: a page, no redirect.
    for url in [
        with(&|q| {
            q.append_pair("redirect_uri", "https://evil.example/cb")
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
        }),
        with(&|q| {
            q.append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
        }),
        authorize_url(&server, "ocl_unknown", REDIRECT, &challenge),
    ] {
        let page = browser.get(&url).await;
        assert_eq!((page.status, page.location.as_deref()), (400, None), "{url}: {}", page.html);
        assert!(page.html.contains("<h1>Cannot sign in</h1>"), "{}", page.html);
        assert!(!page.html.contains("evil.example"), "the page does not link to it");
    }
    // With a registered redirect URI, errors go back to the client.
    for (url, error) in [
        (
            with(&|q| {
                q.append_pair("redirect_uri", REDIRECT).append_pair("state", "s");
            }),
            "invalid_request",
        ),
        (
            with(&|q| {
                q.append_pair("redirect_uri", REDIRECT)
                    .append_pair("state", "s")
                    .append_pair("code_challenge", &challenge)
                    .append_pair("code_challenge_method", "plain");
            }),
            "invalid_request",
        ),
        (
            with(&|q| {
                q.append_pair("redirect_uri", REDIRECT)
                    .append_pair("state", "s")
                    .append_pair("code_challenge", &challenge)
                    .append_pair("code_challenge_method", "S256")
                    .append_pair("resource", "https://elsewhere.example/mcp");
            }),
            "invalid_target",
        ),
    ] {
        let page = browser.get(&url).await;
        assert_eq!(page.status, 303, "{url}");
        let answer = query_of(page.location.as_deref().expect("location"));
        assert_eq!((answer["error"].as_str(), answer["state"].as_str()), (error, "s"), "{url}");
    }

    // A wrong owner credential is refused on the page; a post without the CSRF token is refused.
    let url = authorize_url(&server, &client_id, REDIRECT, &challenge);
    let page = browser.get(&url).await;
    let mut form = hidden_fields(&page.html);
    form.push(("owner_credential", "csa_wrong".to_owned()));
    let refused = browser.post(&format!("{}/oauth/login", server.url), &form).await;
    assert_eq!(refused.status, 401);
    assert!(refused.html.contains("not this server&#39;s owner credential"), "{}", refused.html);
    let mut without_csrf: Vec<(&str, String)> =
        hidden_fields(&page.html).into_iter().filter(|(n, _)| *n != "csrf").collect();
    without_csrf.push(("owner_credential", server.owner_token.clone()));
    let refused = browser.post(&format!("{}/oauth/login", server.url), &without_csrf).await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(refused.html.contains("CSRF"));
    // Another browser's token is no better: the cookie and the form must agree.
    let mut stranger = Browser::new();
    let _ = stranger.get(&url).await;
    let refused = stranger
        .post(&format!("{}/oauth/login", server.url), &{
            let mut form = hidden_fields(&page.html);
            form.push(("owner_credential", server.owner_token.clone()));
            form
        })
        .await;
    assert_eq!(refused.status, 403);

    // A page on another origin of the same site (another port of 127.0.0.1) can set this
    // host's cookies, but a browser says where it posts from: refused.
    let mut form = hidden_fields(&page.html);
    form.push(("owner_credential", server.owner_token.clone()));
    let refused = browser
        .post_from(&format!("{}/oauth/login", server.url), &form, "http://127.0.0.1:3000")
        .await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(refused.html.contains("posted from another origin"), "{}", refused.html);

    // Deny sends the client access_denied.
    let mut form = hidden_fields(&page.html);
    form.push(("owner_credential", server.owner_token.clone()));
    let signed = browser.post(&format!("{}/oauth/login", server.url), &form).await;
    assert_eq!(signed.status, 303);
    let consent_page = browser.get(&url).await;
    let mut form = hidden_fields(&consent_page.html);
    form.extend([
        ("decision", "deny".to_owned()),
        ("workspace", "acme".to_owned()),
        ("key_name", "x".to_owned()),
        ("expires", "30d".to_owned()),
        ("access", "read-only".to_owned()),
    ]);
    let denied = browser.post(&format!("{}/oauth/authorize", server.url), &form).await;
    assert_eq!(denied.status, 303);
    assert_eq!(query_of(&denied.location.expect("location"))["error"], "access_denied");

    // Registration refuses redirect URIs that could leak a code.
    for uri in ["http://evil.example/cb", "javascript:alert(1)", "https://a.example/cb#frag"] {
        let client = json!({"client_name": "x", "redirect_uris": [uri]});
        let body = server.visitor().post("/oauth/register").json(&client).expect(400).await;
        assert_eq!(body["error"], "invalid_redirect_uri", "{uri}");
    }
    server.stop().await;
}

/// Serves the documents `documents(base URL)` gives (path → JSON) over https on 127.0.0.1
/// with a certificate made now; returns the base URL and the certificate (DER) to trust.
async fn document_server(
    documents: impl Fn(&str) -> Vec<(&'static str, Value)>,
) -> (String, Vec<u8>) {
    use std::sync::Arc;
    use tokio_rustls::rustls;
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("self-signed certificate");
    let der = certified.cert.der().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("https://127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let mut router = axum::Router::new();
    for (path, document) in documents(&base) {
        router =
            router.route(path, axum::routing::get(move || async move { axum::Json(document) }));
    }
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (base, der)
}

#[tokio::test]
async fn a_client_known_by_its_metadata_document_signs_in_without_registering() {
    let port_free = "http://127.0.0.1:9/callback";
    let (base, der) = document_server(|base| {
        let document = |id: String| {
            json!({"client_id": id, "client_name": "Doc Client", "redirect_uris": [port_free],
                   "token_endpoint_auth_method": "none"})
        };
        vec![
            ("/client.json", document(format!("{base}/client.json"))),
            ("/impostor.json", document(format!("{base}/client.json"))),
        ]
    })
    .await;
    let config = ServerConfig {
        oauth: true,
        oauth_metadata: custory_mcp::server::FetchPolicy {
            allow_private_addresses: true,
            extra_roots: vec![der],
        },
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let client_id = format!("{base}/client.json");
    let (verifier, challenge) = pkce("document");
    let mut browser = Browser::new();
    let url = authorize_url(&server, &client_id, port_free, &challenge);
    let first = browser.get(&url).await;
    assert_eq!(first.status, 200, "{}", first.html);
    assert!(first.html.contains("Doc Client"), "the document's name: {}", first.html);
    let location = consent(&server, &mut browser, &url, &[]).await;
    let code = query_of(&location)["code"].clone();
    let (status, token) = redeem_code(&server, &code, port_free, &client_id, &verifier).await;
    assert_eq!(status, 200, "{token}");
    let access_token = token["access_token"].as_str().expect("token");
    assert_eq!(tools_list_status(&server, access_token).await.0, 200);
    let keys = server.owner().list_keys("acme", "").await;
    assert_eq!(keys["keys"][0]["oauth_client"]["client_id"], client_id);

    // A document that names another client, or a redirect it does not list, is refused.
    for (id, redirect) in
        [(format!("{base}/impostor.json"), port_free), (client_id.clone(), "http://127.0.0.1:9/x")]
    {
        let page = browser.get(&authorize_url(&server, &id, redirect, &challenge)).await;
        assert_eq!((page.status, page.location.as_deref()), (400, None), "{id}: {}", page.html);
    }
    server.stop().await;

    // By default nothing on a private address is fetched.
    let server = oauth_server().await;
    let page = Browser::new().get(&authorize_url(&server, &client_id, port_free, &challenge)).await;
    assert_eq!(page.status, 400, "{}", page.html);
    assert!(page.html.contains("private address"), "{}", page.html);
    server.stop().await;
}

#[tokio::test]
async fn the_flow_leaves_no_secret_in_the_servers_log() {
    let env = crate::common::TestEnv::new();
    let db = env.home.path().join("custory.db");
    let process = env.serve(&db, &["--oauth", "-vvv"]).await;
    let site = Served {
        url: process.url(),
        owner: process.announced["owner_credential"].as_str().expect("owner").to_owned(),
    };
    assert_eq!(process.announced["oauth"], true);
    let client_id = register(&site, "Logged Client", REDIRECT).await;
    let (verifier, challenge) = pkce("log");
    let mut browser = Browser::new();
    let url = authorize_url(&site, &client_id, REDIRECT, &challenge);
    let code = query_of(&consent(&site, &mut browser, &url, &[]).await)["code"].clone();
    let (status, token) = redeem_code(&site, &code, REDIRECT, &client_id, &verifier).await;
    assert_eq!(status, 200, "{token}");
    let access_token = token["access_token"].as_str().expect("token").to_owned();
    assert_eq!(tools_list_status(&site, &access_token).await.0, 200);
    // A replay is refused with a sentence that quotes nothing secret.
    let (_, replay) = redeem_code(&site, &code, REDIRECT, &client_id, &verifier).await;
    let replay = replay.to_string();
    let log = process.terminate().await;
    assert!(log.contains("/oauth/token"), "the log is verbose: {log}");
    let session = browser.cookies.get("custory_owner_session").expect("session cookie").clone();
    for (what, secret) in [
        ("access token", access_token.as_str()),
        ("code", code.as_str()),
        ("verifier", verifier.as_str()),
        ("owner credential", site.owner.as_str()),
        ("session", session.as_str()),
    ] {
        assert!(!log.contains(secret), "the {what} is in the log");
        assert!(!replay.contains(secret), "the {what} is in an error");
    }
    let mut stored = std::fs::read(&db).expect("database");
    stored.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
    let stored = String::from_utf8_lossy(&stored);
    for secret in [&access_token, &code, &session] {
        assert!(!stored.contains(secret.as_str()), "a secret is stored in the clear");
    }
}

/// A visitor whose connections come from `source` (any 127.x.y.z reaches a loopback server),
/// so a test can be many strangers at once.
pub(crate) fn visitor_from(url: &str, source: std::net::Ipv4Addr) -> Visitor {
    let client = reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::V4(source))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("client");
    Visitor::new(url).with_client(client)
}

/// Every line the server writes to stderr, as it comes: the pipe is drained, so the server
/// never waits on it.
pub(crate) fn log_lines(
    server: &mut crate::common::ServeProcess,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    use tokio::io::AsyncBufReadExt as _;
    let stderr = server.child.stderr.take().expect("the server's stderr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits (60 s at most) until the server's log says `count` requests for `path` have come in.
pub(crate) async fn requests_arrived(
    log: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    path: &str,
    count: usize,
) {
    let field = format!("path={path} ");
    let mut seen = 0;
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while seen < count {
            let line = log.recv().await.expect("the server's log ended");
            if line.contains("started processing request") && line.contains(&field) {
                seen += 1;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{seen} of {count} requests for {path} reached the server"));
}

#[tokio::test]
async fn strangers_at_the_oauth_endpoints_hold_up_nobody_while_the_writer_is_taken() {
    let env = crate::common::TestEnv::new();
    let db = crate::common::TestDatabase::for_backend(&env.home.path().join("custory.db"));
    // A long statement limit: the writer waits as long as the test holds it.
    let mut server =
        env.serve_on(&db.arg(), &["--oauth", "-vv", "--statement-timeout", "60000"]).await;
    let mut log = log_lines(&mut server);
    let site = Served {
        url: server.url(),
        owner: server.announced["owner_credential"].as_str().expect("owner").to_owned(),
    };
    let key =
        server.owner().create_key_in("acme", json!({"name": "reader", "expires": "30d"})).await;
    let client_id = register(&site, "Waiting Client", REDIRECT).await;
    let (verifier, _) = pkce("held");

    // Another connection holds the database's write lock, as a long import does.
    let held = db.hold_write_lock();

    // What can be refused without a write is refused at once: made-up codes, an address past
    // the failed-auth limit (30 a minute), a redirect URI that may not be registered.
    let token = |code: String, from: std::net::Ipv4Addr| {
        let stranger = visitor_from(&site.url, from);
        let form = [
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", REDIRECT.to_owned()),
            ("client_id", client_id.clone()),
            ("code_verifier", verifier.clone()),
        ];
        async move {
            let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            stranger.post("/oauth/token").form(&fields).send().await
        }
    };
    let made_up = || custory_mcp::token::random_base62(43);
    for code in [made_up(), "short".to_owned()] {
        let refused = token(code, std::net::Ipv4Addr::new(127, 0, 0, 5)).await;
        assert_eq!(refused.status, 400, "{}", String::from_utf8_lossy(&refused.body));
        let body: Value = serde_json::from_slice(&refused.body).expect("json");
        assert_eq!(body["error"], "invalid_grant");
    }
    let mut statuses = Vec::new();
    for _ in 0..31 {
        statuses.push(token(made_up(), std::net::Ipv4Addr::new(127, 0, 0, 6)).await.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 30, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let refused = json!({"client_name": "x", "redirect_uris": ["http://evil.example/cb"]});
    let body = server.visitor().post("/oauth/register").json(&refused).expect(400).await;
    assert_eq!(body["error"], "invalid_redirect_uri");

    // More registrations than the server has async workers, each from its own network: they
    // need the writer, so they wait for it.
    let strangers = std::thread::available_parallelism().map_or(2, usize::from) + 2;
    let registrations: Vec<_> = (0..strangers)
        .map(|i| {
            let source = std::net::Ipv4Addr::new(127, 0, 10 + i as u8, 1);
            let stranger = visitor_from(&site.url, source);
            let client =
                json!({"client_name": format!("Stranger {i}"), "redirect_uris": [REDIRECT]});
            tokio::spawn(async move { stranger.post("/oauth/register").json(&client).send().await })
        })
        .collect();
    requests_arrived(&mut log, "/oauth/register", strangers).await;
    // Meanwhile everyone else is answered: health, and an MCP client's list and tool call.
    server.visitor().get("/healthz").expect(200).await;
    assert!(!key.tools().await.is_empty());
    key.ok("get_workspace", json!({})).await;
    let pending = registrations.iter().filter(|r| !r.is_finished()).count();
    assert_eq!(pending, strangers, "the registrations wait for the writer, and only they do");

    held.release();
    for registration in registrations {
        let reply = registration.await.expect("registration");
        assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    }
    register(&site, "After", REDIRECT).await;
    server.terminate().await;
}

#[tokio::test]
async fn registration_stays_open_to_a_new_network_whatever_forty_others_did() {
    let server = TestServer::start_with(ServerConfig {
        oauth: true,
        // The per-network rate is not what this test is about: the bound on waiting clients is.
        oauth_registrations_per_minute: 10_000,
        ..ServerConfig::default()
    })
    .await;
    let mut visitors = HashMap::new();
    let mut register_from = async |source: std::net::Ipv4Addr, name: &str| {
        let visitor = visitors.entry(source).or_insert_with(|| visitor_from(&server.url, source));
        let client = json!({"client_name": name, "redirect_uris": [REDIRECT]});
        let body = visitor.post("/oauth/register").json(&client).expect(201).await;
        // One second apart, so "oldest" means one registration.
        server.store.clock().advance(chrono::Duration::seconds(1));
        body["client_id"].as_str().expect("client_id").to_owned()
    };
    let (_, challenge) = pkce("crowd");
    let known = async |client_id: &str| {
        let page =
            Browser::new().get(&authorize_url(&server, client_id, REDIRECT, &challenge)).await;
        match page.status {
            200 => true,
            400 if page.html.contains("not registered") => false,
            other => panic!("{other}: {}", page.html),
        }
    };
    let waiting = |source: Option<&str>| {
        let row = match source {
            Some(source) => server.db.query_row(
                "SELECT count(*) FROM oauth_clients WHERE used_at IS NULL AND created_ip = ?1",
                &[source.into()],
            ),
            None => {
                server.db.query_row("SELECT count(*) FROM oauth_clients WHERE used_at IS NULL", &[])
            }
        };
        row[0].int().expect("a count")
    };

    // A client the owner approved, from one of the crowded networks.
    let approved = register_from(std::net::Ipv4Addr::new(127, 0, 1, 9), "Approved").await;
    let (verifier, approved_challenge) = pkce("approved");
    let url = authorize_url(&server, &approved, REDIRECT, &approved_challenge);
    let code = query_of(&consent(&server, &mut Browser::new(), &url, &[]).await)["code"].clone();
    let (status, token) = redeem_code(&server, &code, REDIRECT, &approved, &verifier).await;
    assert_eq!(status, 200, "{token}");

    // One network holds at most 50 waiting registrations, however many addresses it uses: past
    // that its own oldest go.
    let mut one_network = Vec::new();
    for n in 0..60u8 {
        let source = std::net::Ipv4Addr::new(127, 0, 60, 1 + n);
        one_network.push(register_from(source, &format!("One network {n}")).await);
    }
    assert_eq!(waiting(Some("127.0.60.0/24")), 50);
    assert!(!known(&one_network[9]).await && known(&one_network[10]).await);

    // 1,000 registrations from 40 other networks (127.0.1.0/24 … 127.0.40.0/24), never
    // approved: as many as may wait at once. The network holding the most made room first,
    // down to the others' share.
    for n in 0..1_000u32 {
        let source = std::net::Ipv4Addr::new(127, 0, 1 + (n % 40) as u8, 7);
        register_from(source, &format!("Crowd {n}")).await;
    }
    assert_eq!(waiting(None), 1_000);
    assert!(waiting(Some("127.0.60.0/24")) <= 25, "{}", waiting(Some("127.0.60.0/24")));

    // A new network still registers. To make room, one waiting registration was forgotten:
    // the oldest of a network holding the most.
    let waiting_clients = || -> HashMap<String, (String, i64)> {
        let sql = "SELECT id, created_ip, created_at FROM oauth_clients WHERE used_at IS NULL";
        let rows = server.db.query_rows(sql, &[]);
        rows.into_iter()
            .map(|row| {
                let text = |i: usize| row[i].text().expect("text").to_owned();
                (text(0), (text(1), row[2].int().expect("created_at")))
            })
            .collect()
    };
    let before = waiting_clients();
    let fresh = register_from(std::net::Ipv4Addr::new(127, 0, 99, 1), "Fresh").await;
    assert!(known(&fresh).await);
    let after = waiting_clients();
    assert_eq!(after.len(), 1_000);
    let gone: Vec<&String> = before.keys().filter(|id| !after.contains_key(*id)).collect();
    assert_eq!(gone.len(), 1, "{gone:?}");
    let (network, at) = &before[gone[0]];
    let held = |network: &str| before.values().filter(|(n, _)| n == network).count();
    let most = before.values().map(|(n, _)| held(n)).max().expect("counts");
    assert_eq!(held(network), most, "{network} held {} of the most {most}", held(network));
    assert!(before.values().all(|(n, t)| n != network || t >= at), "its oldest");
    assert!(!known(gone[0]).await);

    // A client that led to a key is never forgotten.
    assert!(known(&approved).await);
    let access_token = token["access_token"].as_str().expect("token");
    assert_eq!(tools_list_status(&server, access_token).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn redirect_uris_are_allowed_by_scheme_and_every_other_scheme_is_refused() {
    let server = TestServer::start_with(ServerConfig {
        oauth: true,
        oauth_registrations_per_minute: 10_000,
        ..ServerConfig::default()
    })
    .await;
    let register_uris = |uris: Value| {
        let client = json!({"client_name": "Schemes", "redirect_uris": uris});
        server.visitor().post("/oauth/register").json(&client).send()
    };
    // What real clients register: loopback http (mcp-remote, both SDKs, Claude Code, Codex;
    // VS Code with and without a port), VS Code's https pages, Cursor's three in one request,
    // VS Code's own URL handler, and an app's reverse-DNS scheme (RFC 8252 §7.1).
    for uris in [
        json!([
            "http://127.0.0.1:33418/",
            "http://127.0.0.1/",
            "https://vscode.dev/redirect",
            "https://insiders.vscode.dev/redirect"
        ]),
        json!(["http://localhost:3334/oauth/callback"]),
        json!(["http://[::1]:8080/callback"]),
        json!([
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://localhost:8787/callback"
        ]),
        json!(["vscode://vscode.github-authentication/did-authenticate"]),
        json!(["com.example.app:/oauth2redirect"]),
        json!(["io.github.someone.tool://callback"]),
    ] {
        let reply = register_uris(uris.clone()).await;
        assert_eq!(reply.status, 201, "{uris}: {}", String::from_utf8_lossy(&reply.body));
    }
    // Operating-system handlers, browser-internal schemes and everything else: refused, with
    // the reason, even beside an allowed URI.
    for uri in [
        "ms-msdt:/id PCWDiagnostic /skip force",
        "search-ms:query=invoice&crumb=location:\\\\evil.example\\share",
        "view-source:https://example.com/",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "ms-settings:privacy",
        "shell:startup",
        "microsoft-edge:https://evil.example",
        "x-apple.systempreferences:com.apple.preference.security",
        "intent://scan/#Intent;scheme=zxing;end",
        "chrome://settings",
        "about:blank",
        "blob:https://example.com/1",
        "mailto:someone@example.com",
        "tel:+15555550100",
        "ftp://example.com/cb",
        "wss://example.com/cb",
        "myapp://callback",
        "http://evil.example/cb",
        "http://127.0.0.1.evil.example/cb",
        "https://a.example/cb#fragment",
        "com.example.app:/cb#fragment",
    ] {
        let reply = register_uris(json!(["http://127.0.0.1:9/ok", uri])).await;
        let body: Value = serde_json::from_slice(&reply.body).expect("json");
        let error = body["error"].as_str();
        assert_eq!((reply.status, error), (400, Some("invalid_redirect_uri")), "{uri}");
        let description = body["error_description"].as_str().expect("description");
        let scheme = uri.split(':').next().expect("scheme");
        assert!(
            description.contains(&format!("the scheme {scheme}:"))
                || description.contains("plain http to another machine")
                || description.contains("fragment"),
            "{uri}: {description}"
        );
    }

    // A client registered before these rules keeps no way to such a redirect: a page, no
    // redirect.
    server.db.execute(
        "INSERT INTO oauth_clients (id, name, redirect_uris, created_at) VALUES (?1, ?2, ?3, ?4)",
        &["ocl_older".into(), "Older".into(), r#"["search-ms:query=x"]"#.into(), 0.into()],
    );
    let (_, challenge) = pkce("older");
    let older = authorize_url(&server, "ocl_older", "search-ms:query=x", &challenge);
    let page = Browser::new().get(&older).await;
    assert_eq!((page.status, page.location.as_deref()), (400, None), "{}", page.html);
    assert!(page.html.contains("invalid_redirect_uri"), "{}", page.html);
    server.stop().await;

    // A client known by its metadata document is held to the same rules when it signs in.
    let (base, der) = document_server(|base| {
        let id = format!("{base}/handler.json");
        vec![(
            "/handler.json",
            json!({"client_id": id, "client_name": "Handler", "token_endpoint_auth_method": "none",
                   "redirect_uris": ["http://127.0.0.1:9/cb", "ms-msdt:/id PCWDiagnostic"]}),
        )]
    })
    .await;
    let server = TestServer::start_with(ServerConfig {
        oauth: true,
        oauth_metadata: custory_mcp::server::FetchPolicy {
            allow_private_addresses: true,
            extra_roots: vec![der],
        },
        ..ServerConfig::default()
    })
    .await;
    let client_id = format!("{base}/handler.json");
    let url = authorize_url(&server, &client_id, "http://127.0.0.1:9/cb", &challenge);
    let page = Browser::new().get(&url).await;
    assert_eq!((page.status, page.location.as_deref()), (400, None), "{}", page.html);
    assert!(
        page.html.contains("invalid_redirect_uri") && page.html.contains("ms-msdt"),
        "{}",
        page.html
    );
    server.stop().await;
}

/// A server that cannot fetch a client's metadata document says so on the page, with the flag
/// that turns the feature off; with `--no-client-metadata-documents` the metadata stops
/// advertising it, a URL client id is refused with a sentence saying to register, and a
/// registered client signs in as before.
#[tokio::test]
async fn metadata_documents_that_cannot_be_fetched_point_at_the_flag_that_turns_them_off() {
    let redirect = "http://127.0.0.1:9/callback";
    let (_, challenge) = pkce("offline");
    // Nothing listens on port 1: the fetch fails as it does on a server with no internet.
    let unreachable = "https://127.0.0.1:1/client.json";
    let server = TestServer::start_with(ServerConfig {
        oauth: true,
        oauth_metadata: custory_mcp::server::FetchPolicy {
            allow_private_addresses: true,
            extra_roots: vec![],
        },
        ..ServerConfig::default()
    })
    .await;
    let metadata =
        server.visitor().get("/.well-known/oauth-authorization-server/oauth").expect(200).await;
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    let page = Browser::new().get(&authorize_url(&server, unreachable, redirect, &challenge)).await;
    assert_eq!((page.status, page.location.as_deref()), (400, None), "{}", page.html);
    assert!(page.html.contains("could not be fetched"), "{}", page.html);
    assert!(
        page.html.contains("custory-mcp serve --oauth --no-client-metadata-documents"),
        "{}",
        page.html
    );
    server.stop().await;

    // Turned off: not advertised, refused with what to do, registration unaffected.
    let server = TestServer::start_with(ServerConfig {
        oauth: true,
        client_metadata_documents: false,
        ..ServerConfig::default()
    })
    .await;
    let metadata =
        server.visitor().get("/.well-known/oauth-authorization-server/oauth").expect(200).await;
    assert_eq!(metadata["client_id_metadata_document_supported"], false);
    assert!(metadata["registration_endpoint"].is_string());
    let page = Browser::new().get(&authorize_url(&server, unreachable, redirect, &challenge)).await;
    assert_eq!((page.status, page.location.as_deref()), (400, None), "{}", page.html);
    assert!(page.html.contains("--no-client-metadata-documents"), "{}", page.html);
    assert!(page.html.contains("has to register"), "{}", page.html);
    assert!(!page.html.contains("could not be fetched"), "nothing was fetched: {}", page.html);
    let client_id = register(&server, "Codex", redirect).await;
    let page = Browser::new().get(&authorize_url(&server, &client_id, redirect, &challenge)).await;
    assert_eq!(page.status, 200, "{}", page.html);
    server.stop().await;

    // The flag as a person types it, and only with --oauth.
    let env = crate::common::TestEnv::new();
    let db = env.home.path().join("custory.db");
    let process = env.serve(&db, &["--oauth", "--no-client-metadata-documents"]).await;
    let metadata: Value =
        reqwest::get(format!("{}/.well-known/oauth-authorization-server/oauth", process.url()))
            .await
            .expect("GET metadata")
            .json()
            .await
            .expect("JSON");
    assert_eq!(metadata["client_id_metadata_document_supported"], false, "{metadata}");
    process.terminate().await;
    let mut command = env.command();
    command.args(["serve", "--no-client-metadata-documents"]);
    let refused = crate::common::run_piped(command, None).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--oauth"), "{}", refused.stderr);
}
