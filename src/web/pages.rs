//! The HTML pages, filled by handlebars in strict mode: every value is HTML-escaped by
//! the engine, and a name missing from the data is an error, not an empty string.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use handlebars::Handlebars;
use serde_json::json;

static PAGES: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    for (name, text) in [
        ("logs", include_str!("page.html")),
        ("console", include_str!("console.html")),
        ("login", include_str!("login.html")),
    ] {
        h.register_template_string(name, text)
            .unwrap_or_else(|e| panic!("web/{name}.html: {e}"));
    }
    h
});

fn page(name: &str, data: serde_json::Value) -> Response {
    match PAGES.render(name, &data) {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("the {name} page: {e}")).into_response(),
    }
}

/// The log page of `user`.
pub fn logs(user: &str) -> Response {
    page("logs", json!({ "user": user }))
}

/// The console (home page) of `user`.
pub fn console(user: &str, admin: bool) -> Response {
    page(
        "console",
        json!({ "user": user, "role": if admin { "admin" } else { "" } }),
    )
}

/// The sign-in page, with what went wrong last time.
pub fn login(error: Option<&str>) -> Response {
    page("login", json!({ "error": error }))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn values_are_escaped_and_every_page_renders() {
        let console = body(console("<script>x</script>\"", true)).await;
        assert!(
            console.contains("data-me=\"&lt;script&gt;x&lt;/script&gt;&quot;\""),
            "{console}"
        );
        assert!(console.contains("data-role=\"admin\""));
        assert!(!console.contains("<script>x"));
        let logs = body(logs("dev1")).await;
        assert!(logs.contains("<b id=\"me\">dev1</b>"));
        assert!(!body(login(None)).await.contains("class=\"error\""));
        let failed = body(login(Some("Wrong & <bad>"))).await;
        assert!(
            failed.contains("<p class=\"error\">Wrong &amp; &lt;bad&gt;</p>"),
            "{failed}"
        );
    }
}
