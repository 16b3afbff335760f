//! The box's web page (`[web]`, docs/WEB.md): the sign-in wall, CSRF, no token in any
//! answer, admin tokens kept out of rooms, over plain HTTP with reqwest; then the whole
//! page in headless Chromium through chromedriver (WebDriver, fantoccini): sign in,
//! the state changing when the fake central stops, pairing against the fake central,
//! identify, revoking a token. Real sockets on 127.0.0.1, real sled, the fake central.

#[path = "support/browser.rs"]
mod browser;
mod support;

use bbedge::room::tokens::Role;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::logs::LogCapture;
use support::TestBox;

/// The config pairs that turn the page on (the test config puts it on 127.0.0.1:0).
const WEB_ON: (&str, &str) = ("web.enabled", "true");

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn base(tb: &TestBox) -> String {
    format!("http://{}", tb.web.expect("[web] enabled"))
}

/// Signs in with `token`; returns the session cookie (`bbedge_session=<id>`).
async fn sign_in(tb: &TestBox, token: &str) -> String {
    let r = client()
        .post(format!("{}/login", base(tb)))
        .form(&[("token", token)])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure");
    cookie.split(';').next().unwrap().to_owned()
}

/// The session's CSRF token.
async fn csrf(tb: &TestBox, cookie: &str) -> String {
    let v: Value = client()
        .get(format!("{}/api/session", base(tb)))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["csrf"].as_str().expect("csrf").to_owned()
}

async fn post(tb: &TestBox, path: &str, headers: HeaderMap, body: Value) -> (StatusCode, Value) {
    let r = client()
        .post(format!("{}{path}", base(tb)))
        .headers(headers)
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[tokio::test]
async fn without_a_session_only_the_sign_in_page_answers_and_it_shows_nothing() {
    let tb = TestBox::start(&[WEB_ON]).await;
    let (admin, _) = tb.token(Role::Admin, None).await;
    let c = client();
    let r = c.get(format!("{}/", base(&tb))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'self'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "same-origin");
    let page = r.text().await.unwrap();
    assert!(page.contains("This is a bbedge box"), "{page}");
    assert!(!page.contains("<script"), "the sign-in page runs no script");
    let uuid = tb.svc().device_id.to_string();
    assert!(!page.contains(&uuid), "the sign-in page names no device");
    for path in [
        "/app.js",
        "/api/session",
        "/api/status",
        "/api/tokens",
        "/events",
    ] {
        let r = c.get(format!("{}{path}", base(&tb))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "GET {path}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("SIGN_IN_REQUIRED") && !body.contains(&uuid),
            "{body}"
        );
    }
    for path in [
        "/api/identify",
        "/api/tokens",
        "/api/tokens/revoke",
        "/api/pair",
    ] {
        let (s, _) = post(&tb, path, HeaderMap::new(), json!({})).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "POST {path}");
    }
    // A made-up session id is no session.
    let r = c
        .get(format!("{}/api/status", base(&tb)))
        .header("cookie", format!("bbedge_session={}", "0".repeat(64)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!tb.hub.facts().identify, "nothing changed");
    // The admin token signs in; the page then answers.
    let cookie = sign_in(&tb, &admin).await;
    let r = c
        .get(format!("{}/api/status", base(&tb)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "unpaired", "{v}");
    assert!(v["led"]["steps"].as_array().is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn room_tokens_and_revoked_or_unknown_admin_tokens_do_not_sign_in() {
    let (logs, _guard) = LogCapture::install();
    let tb = TestBox::start(&[WEB_ON]).await;
    let (observer, _) = tb.token(Role::Observer, None).await;
    let (operator, _) = tb.token(Role::Operator, None).await;
    let (admin, admin_id) = tb.token(Role::Admin, None).await;
    let refused = |token: String, says: &'static str| {
        let url = format!("{}/login", base(&tb));
        async move {
            let r = client()
                .post(url)
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert!(r.headers().get("set-cookie").is_none());
            let page = r.text().await.unwrap();
            assert!(page.contains(says), "{page}");
            assert!(!page.contains(&token) || token.is_empty(), "token echoed");
        }
    };
    refused(observer, "not an admin token").await;
    refused(operator, "not an admin token").await;
    refused("bbt_nonsense".into(), "not an admin token").await;
    refused(String::new(), "Paste an admin token").await;
    let cookie = sign_in(&tb, &admin).await;
    tb.svc().revoke(&admin_id).await.unwrap();
    refused(admin.clone(), "was revoked").await;
    // The revoked token's session ended with it (revoked outside the page: the CLI way).
    let r = client()
        .get(format!("{}/api/status", base(&tb)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Three tokens tried; the empty form is answered before any lookup.
    assert_eq!(
        logs.count("sign-in refused: not an admin token of this box"),
        3
    );
    assert_eq!(logs.count("sign-in refused: the admin token is revoked"), 1);
    assert!(!logs.text().contains(&admin), "a token in the log");
}

#[tokio::test]
async fn an_admin_token_admits_to_no_room() {
    let tb = TestBox::start(&[WEB_ON]).await;
    let (admin, _) = tb.token(Role::Admin, None).await;
    let c = tb
        .connect(&tb.device_path(), Some(&admin))
        .await
        .expect("upgrade");
    let closed = c.closed().await;
    assert_eq!(
        closed.code, 4003,
        "the usual auth failure: {:?}",
        closed.frames
    );
    assert_eq!(
        closed.frames[0]["error"]["code"], "AUTH_FAILED",
        "{:?}",
        closed.frames
    );
}

#[tokio::test]
async fn a_post_without_the_csrf_token_or_from_another_origin_changes_nothing() {
    let (logs, _guard) = LogCapture::install();
    let tb = TestBox::start(&[WEB_ON]).await;
    let (admin, admin_id) = tb.token(Role::Admin, None).await;
    let cookie = sign_in(&tb, &admin).await;
    let token = csrf(&tb, &cookie).await;
    let host = tb.web.unwrap().to_string();
    let own = format!("http://{host}");
    let cases: [(&str, HeaderMap); 4] = [
        ("no CSRF token", headers(&[("cookie", &cookie)])),
        (
            "a wrong CSRF token",
            headers(&[("cookie", &cookie), ("x-csrf-token", &"f".repeat(64))]),
        ),
        (
            "another origin",
            headers(&[
                ("cookie", &cookie),
                ("x-csrf-token", &token),
                ("origin", "http://evil.example"),
            ]),
        ),
        (
            "another session's token",
            headers(&[("cookie", &cookie), ("x-csrf-token", &token[..63])]),
        ),
    ];
    for (what, h) in cases {
        let (s, v) = post(&tb, "/api/identify", h.clone(), json!({"seconds": 5})).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{what}: {v}");
        let (s, _) = post(&tb, "/api/tokens", h, json!({"role": "admin"})).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{what}");
    }
    assert!(!tb.hub.facts().identify, "identify did not start");
    assert_eq!(
        bbedge::room::tokens::list(&tb.svc().store).unwrap().len(),
        1
    );
    assert_eq!(
        logs.count("request refused: CSRF token missing or wrong"),
        6
    );
    assert_eq!(logs.count("request refused: Origin is not this page"), 2);
    // With the token and its own origin it works, and is logged with the actor.
    let ok = headers(&[
        ("cookie", &cookie),
        ("x-csrf-token", &token),
        ("origin", &own),
    ]);
    let (s, v) = post(&tb, "/api/identify", ok, json!({"seconds": 5})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    tb.wait_facts("identify", |f| f.identify).await;
    let line = logs
        .text()
        .lines()
        .find(|l| l.contains("identify from the web page"))
        .map(str::to_owned)
        .expect("logged");
    assert!(
        line.contains(&admin_id) && line.contains("\"outcome\":\"ok\""),
        "{line}"
    );
}

#[tokio::test]
async fn a_new_token_is_shown_once_and_never_again_nor_logged() {
    let (logs, _guard) = LogCapture::install();
    let tb = TestBox::start(&[WEB_ON]).await;
    let (admin, _) = tb.token(Role::Admin, None).await;
    let cookie = sign_in(&tb, &admin).await;
    let h = headers(&[
        ("cookie", &cookie),
        ("x-csrf-token", &csrf(&tb, &cookie).await),
    ]);
    let (s, v) = post(
        &tb,
        "/api/tokens",
        h.clone(),
        json!({"role": "operator", "label": "desk"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let new = v["token"].as_str().expect("shown once").to_owned();
    let id = v["record"]["id"].as_str().unwrap().to_owned();
    assert!(new.starts_with("bbt_"));
    // It works in the room: the page issued a real token.
    let (_c, _) = tb.join_with(&new).await;
    let c = client();
    for path in ["/", "/app.js", "/api/session", "/api/status", "/api/tokens"] {
        let body = c
            .get(format!("{}{path}", base(&tb)))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for secret in [&new, &admin] {
            assert!(!body.contains(secret.as_str()), "{path} shows a token");
        }
        if path == "/api/tokens" {
            assert!(body.contains(&id), "{body}");
        }
    }
    let (s, v) = post(&tb, "/api/tokens", h.clone(), json!({"role": "root"})).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("BAD_REQUEST"))
    );
    let (s, v) = post(
        &tb,
        "/api/tokens/revoke",
        h.clone(),
        json!({"id": "tok_nope"}),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("TOKEN_NOT_FOUND"))
    );
    let (s, v) = post(&tb, "/api/tokens/revoke", h, json!({"id": id})).await;
    assert_eq!(
        (s, v["revoked"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
    let text = logs.text();
    assert!(
        !text.contains(&new) && !text.contains(&admin),
        "a token in the log"
    );
    assert_eq!(logs.count("token issued from the web page"), 1);
    assert_eq!(logs.count("token revoked from the web page"), 1);
}

/// The scenario of issue 13 in headless Chromium: sign in, watch the state change when
/// central stops, pair against the fake central, identify, revoke a token. Screenshots
/// in `target/web-screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_a_real_browser() {
    use browser::{attr, click, fill, screenshot, text, wait_text};
    use support::fake_central::register::{FakeCentral as Registrar, Tls};
    use support::fake_central::FakeCentral;
    if let Some(runner) = support::binary::runner() {
        // The test process would be emulated while chromedriver and chromium run
        // natively: the page is the same code on every architecture, and the plain
        // HTTP tests above run under the emulator.
        eprintln!("SKIP: the browser test is not run through the emulator {runner}");
        return;
    }
    let driver = match browser::Driver::start().await {
        Ok(d) => d,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIP: no browser ({why}); `apt-get install chromium chromium-driver`");
            return;
        }
        Err(why) => panic!("CI installs chromium and chromium-driver (.ci/run): {why}"),
    };
    let mut rt = FakeCentral::start().await;
    let (tb, _agent) = support::paired::online_box(&rt, &[WEB_ON]).await;
    let (admin, _) = tb.token(Role::Admin, None).await;
    let (_, desk_id) = tb.token(Role::Operator, None).await;
    let c = driver.browser().await;
    let base = base(&tb);

    // Sign in.
    c.goto(&base).await.expect("open the page");
    assert!(text(&c, "sign-in").await.contains("Sign in"));
    screenshot(&c, "01-sign-in").await;
    fill(&c, "token", &admin).await;
    click(&c, "sign-in").await;
    wait_text(&c, "state", "online", |t| t == "online").await;
    wait_text(&c, "participants", "the agent", |t| t.contains("agent")).await;
    assert_eq!(
        attr(&c, "led", "data-colour").await.as_deref(),
        Some("green")
    );
    let (up, _) = wait_text(&c, "upstream", "online since", |t| {
        t.starts_with("online since")
    })
    .await;
    assert!(up.contains(&rt.realtime_url()), "{up}");
    let source = c.source().await.unwrap();
    assert!(!source.contains(&admin), "the page shows the admin token");
    screenshot(&c, "02-online").await;

    // Central stops: the page follows the state within a second, without reloading.
    rt.stop().await;
    tb.wait_facts("the link down", |f| f.link != bbedge::signal::Link::Online)
        .await;
    let (shown, took) = wait_text(&c, "state", "the new state", |t| {
        !t.is_empty() && t != "online"
    })
    .await;
    assert!(
        ["connecting", "offline_buffering"].contains(&shown.as_str()),
        "{shown}"
    );
    assert!(
        took < std::time::Duration::from_millis(1500),
        "took {took:?}"
    );
    eprintln!("the page showed {shown} {took:?} after the link went down");
    screenshot(&c, "03-central-stopped").await;

    // Pair against the fake central: first a refused code, with `bbedge pair`'s sentence
    // and code, then the right one.
    let reg = Registrar::start(Tls::Plain).await;
    let e = reg.enroll();
    fill(&c, "pair-server", &reg.url()).await;
    fill(&c, "pair-uuid", &e.device_uuid).await;
    fill(&c, "pair-code", "ZZZZ-ZZZZ-ZZZZ").await;
    click(&c, "pair").await;
    let (refused, _) = wait_text(&c, "pair-result", "the refusal", |t| t.contains("[PAIR_")).await;
    assert!(refused.contains("PAIR_CODE_REFUSED"), "{refused}");
    screenshot(&c, "04-pair-refused").await;
    fill(&c, "pair-code", &e.code).await;
    click(&c, "pair").await;
    let (paired, _) = wait_text(&c, "pair-result", "paired", |t| {
        t.starts_with("Paired with")
    })
    .await;
    assert!(paired.contains(&reg.url()), "{paired}");
    let creds = std::fs::read_to_string(tb.dir.path().join("credentials.toml")).unwrap();
    assert!(
        creds.contains(&e.device_uuid),
        "the new credentials are on disk"
    );
    wait_text(&c, "pairing", "the new server", |t| t.contains(&reg.url())).await;
    assert_eq!(text(&c, "pair-code").await, "", "the code field is cleared");
    screenshot(&c, "05-paired").await;

    // Identify: the state and the dot follow; the dot blinks the burst pattern.
    fill(&c, "identify-seconds", "30").await;
    click(&c, "identify").await;
    wait_text(&c, "state", "identify", |t| t == "identify").await;
    assert!(tb.hub.facts().identify);
    assert_eq!(
        attr(&c, "led", "data-colour").await.as_deref(),
        Some("white")
    );
    let mut seen = std::collections::HashSet::new();
    let t0 = std::time::Instant::now();
    while seen.len() < 2 && t0.elapsed() < std::time::Duration::from_secs(5) {
        let lit = attr(&c, "led", "class")
            .await
            .unwrap_or_default()
            .contains("on");
        seen.insert(lit);
    }
    assert_eq!(seen.len(), 2, "the dot blinks");
    screenshot(&c, "06-identify").await;

    // Revoke the operator token from the list.
    click(&c, &format!("revoke-{desk_id}")).await;
    wait_text(&c, "token-result", "revoked", |t| t.contains("Revoked")).await;
    let rec = bbedge::room::tokens::list(&tb.svc().store)
        .unwrap()
        .into_iter()
        .find(|r| r.id == desk_id)
        .unwrap();
    assert!(rec.revoked);
    wait_text(&c, &format!("token-{desk_id}"), "revoked", |t| {
        t.contains("revoked")
    })
    .await;
    screenshot(&c, "07-token-revoked").await;
    c.close().await.expect("close the browser");
}

#[tokio::test]
async fn bbedge_token_add_role_admin_makes_a_token_that_signs_in() {
    let tb = TestBox::start(&[WEB_ON]).await;
    // Through the running daemon's control socket, as on a box.
    let o = support::binary::command()
        .args(["token", "add", "--role", "admin", "--label", "it desk"])
        .env_remove("STATE_DIRECTORY")
        .env(
            "BBEDGE_DAEMON__STATE_DIR",
            format!("{:?}", tb.dir.path().display().to_string()),
        )
        .env("BBEDGE_STATUS_LED__BACKEND", "sim")
        .output()
        .await
        .expect("bbedge runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .expect("token printed once")
        .trim()
        .to_owned();
    let cookie = sign_in(&tb, &token).await;
    let v: Value = client()
        .get(format!("{}/api/tokens", base(&tb)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v[0]["role"], "admin", "{v}");
    assert_eq!(v[0]["label"], "it desk", "{v}");
}

#[tokio::test]
async fn with_realtime_tls_on_the_page_is_served_over_the_same_certificate() {
    let tb = TestBox::start(&[WEB_ON, ("realtime.tls.enabled", "true")]).await;
    let (admin, _) = tb.token(Role::Admin, None).await;
    let addr = tb.web.unwrap();
    let cert = std::fs::read(tb.dir.path().join("realtime-tls/cert.pem")).unwrap();
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}", addr.port());
    let r = c
        .get(format!("{url}/"))
        .send()
        .await
        .expect("HTTPS with the rooms' cert");
    assert_eq!(r.status(), StatusCode::OK);
    let plain = client().get(format!("http://{addr}/")).send().await;
    assert!(plain.is_err(), "no plain HTTP on the TLS port");
    let r = c
        .post(format!("{url}/login"))
        .form(&[("token", admin.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

/// The next `status` message of an event stream, as JSON (hang guard: 5 s).
async fn next_status(r: &mut reqwest::Response, buf: &mut String) -> Option<Value> {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let msg: String = buf.drain(..end + 2).collect();
            let data = msg.lines().find_map(|l| l.strip_prefix("data: "))?;
            return Some(serde_json::from_str(data).expect("JSON data"));
        }
        let chunk = tokio::time::timeout(
            support::scaled(std::time::Duration::from_secs(5)),
            r.chunk(),
        )
        .await
        .expect("stream hang guard")
        .expect("stream readable")?;
        buf.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
}

#[tokio::test]
async fn the_event_stream_follows_the_state_and_ends_when_the_admin_token_is_revoked() {
    let tb = TestBox::start(&[WEB_ON]).await;
    let (admin, admin_id) = tb.token(Role::Admin, None).await;
    let cookie = sign_in(&tb, &admin).await;
    let mut r = client()
        .get(format!("{}/events", base(&tb)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut buf = String::new();
    let first = next_status(&mut r, &mut buf)
        .await
        .expect("a first message");
    assert_eq!(first["state"], "unpaired");
    // A change is pushed at once, not at the next tick.
    let t0 = std::time::Instant::now();
    tb.led.identify(std::time::Duration::from_secs(30)).unwrap();
    loop {
        let v = next_status(&mut r, &mut buf).await.expect("messages");
        if v["state"] == "identify" {
            assert_eq!(v["led"]["pattern"], "burst");
            assert_eq!(v["led"]["colour"], "white");
            break;
        }
    }
    assert!(
        t0.elapsed() < support::scaled(std::time::Duration::from_secs(1)),
        "{:?}",
        t0.elapsed()
    );
    // Revoked the CLI's way: the stream ends by the next tick.
    tb.svc().revoke(&admin_id).await.unwrap();
    let mut after = 0;
    while next_status(&mut r, &mut buf).await.is_some() {
        after += 1;
        assert!(after < 3, "the stream goes on after the revocation");
    }
}
