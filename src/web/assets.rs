//! The page's files, built into the binary (no CDN; works with no internet).

/// The signed-in page; `{{version}}` is filled in.
pub const INDEX: &str = include_str!("assets/index.html");
/// The sign-in page; `{{message}}` is filled in (HTML-escaped).
pub const SIGN_IN: &str = include_str!("assets/signin.html");
/// The page's script (no inline script: the CSP forbids it).
pub const APP_JS: &str = include_str!("assets/app.js");
/// The stylesheet, shared by both pages.
pub const STYLE: &str = include_str!("assets/style.css");

/// `s` with `& < > " '` escaped for HTML text and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The sign-in page with `message` (empty: none).
pub fn sign_in(message: &str) -> String {
    let m = if message.is_empty() {
        String::new()
    } else {
        format!(
            "<p class=\"error\" id=\"signin-error\">{}</p>",
            escape(message)
        )
    };
    SIGN_IN.replace("{{message}}", &m)
}

/// The signed-in page.
pub fn index() -> String {
    INDEX.replace("{{version}}", &escape(crate::version::VERSION))
}
