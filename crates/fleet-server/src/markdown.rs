//! Markdown to HTML for documents a model wrote. Model output is untrusted:
//! the HTML pulldown-cmark produces is sanitized by ammonia, which drops
//! `<script>`, event handlers, `style` and `javascript:` URLs.

use pulldown_cmark::{Options, Parser, html};

pub fn render(markdown: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    options.insert(Options::ENABLE_TASKLISTS);
    let mut unsafe_html = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut unsafe_html, Parser::new_ext(markdown, options));
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&unsafe_html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn script_and_javascript_links_render_inert() {
        let hostile = "# Report\n\n<script>alert('x')</script>\n\n[click](javascript:alert(1)) \
             <a href=\"javascript:alert(2)\" onclick=\"alert(3)\">b</a> \
             <img src=x onerror=\"alert(4)\"> <iframe src=\"https://evil.example\"></iframe>\n\n\
             [fine](https://example.com/x)";
        let html = render(hostile);
        let lower = html.to_ascii_lowercase();
        for bad in [
            "<script",
            "javascript:",
            "onclick",
            "onerror",
            "<iframe",
            "alert(1)",
        ] {
            assert!(!lower.contains(bad), "`{bad}` survived in {html}");
        }
        assert!(html.contains("<h1>Report</h1>"), "{html}");
        assert!(html.contains("href=\"https://example.com/x\""), "{html}");
    }

    #[test]
    fn tables_render() {
        let html = render("| a | b |\n|---|---|\n| 1 | 2 |\n");
        assert!(
            html.contains("<table>") && html.contains("<td>2</td>"),
            "{html}"
        );
    }
}
