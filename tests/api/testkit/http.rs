//! An HTTP client that plays a browser without running one: it follows no redirect by itself
//! (tests look at each hop) and keeps cookies by name, dropping the ones a server deletes.

use std::collections::HashMap;

pub struct HttpBrowser {
    pub http: reqwest::Client,
    pub cookies: HashMap<String, String>,
    /// Sent as `Accept` on every request, as a browser navigating to a page does.
    accept: Option<&'static str>,
}

impl HttpBrowser {
    /// Sends no `Accept` header.
    pub fn new() -> HttpBrowser {
        HttpBrowser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: HashMap::new(),
            accept: None,
        }
    }

    /// Asks for HTML, so Tessera answers with its pages rather than JSON.
    pub fn for_pages() -> HttpBrowser {
        HttpBrowser {
            accept: Some("text/html"),
            ..HttpBrowser::new()
        }
    }

    /// Adds this browser's cookies (and `Accept`) to a request built by hand.
    pub fn prepare(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(accept) = self.accept {
            request = request.header("accept", accept);
        }
        if self.cookies.is_empty() {
            return request;
        }
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        request.header("Cookie", jar.join("; "))
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let value = value.to_str().expect("ascii");
            let pair = value.split(';').next().expect("pair");
            let (name, content) = pair.split_once('=').expect("name=value");
            if content.is_empty() || value.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), content.into());
            }
        }
    }

    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        let response = self
            .prepare(self.http.get(url))
            .send()
            .await
            .expect("request");
        self.keep(&response);
        response
    }

    pub async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let response = self
            .prepare(self.http.post(url).form(form))
            .send()
            .await
            .expect("request");
        self.keep(&response);
        response
    }
}
