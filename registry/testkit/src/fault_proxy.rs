//! A fault-injecting HTTP proxy: the 429s and 5xx a real registry gives under load, on demand.

/// An HTTP proxy in front of `upstream` that answers the first request matching each rule with
/// that rule's status (and `Retry-After: 1`) instead of forwarding it: how a test gets the 429s
/// and 5xx a real registry gives under load. Everything else is forwarded, with `Location`
/// headers rewritten to point back at the proxy.
pub struct FaultProxy {
    pub host: String,
    _server: crate::in_process::Background,
}

/// (method, path substring, status to answer once).
pub type Fault = (&'static str, &'static str, u16);

impl FaultProxy {
    pub fn start(upstream: &str, faults: Vec<Fault>) -> FaultProxy {
        use axum::body::Body;
        use axum::extract::{Request, State};
        use axum::response::Response;
        use std::sync::{Arc, Mutex};

        #[derive(Clone)]
        struct Proxy {
            upstream: String,
            me: String,
            faults: Arc<Mutex<Vec<Fault>>>,
            http: reqwest::Client,
        }

        async fn handle(State(p): State<Proxy>, req: Request) -> Response {
            let method = req.method().to_string();
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let fault = {
                let mut faults = p.faults.lock().unwrap();
                let i = faults
                    .iter()
                    .position(|(m, s, _)| *m == method && path.contains(s));
                i.map(|i| faults.remove(i).2)
            };
            if let Some(status) = fault {
                return Response::builder()
                    .status(status)
                    .header("retry-after", "1")
                    .body(Body::from(
                        "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"injected\"}]}",
                    ))
                    .unwrap();
            }
            let mut out = p
                .http
                .request(req.method().clone(), format!("http://{}{path}", p.upstream));
            for (k, v) in req.headers() {
                if k != "host" {
                    out = out.header(k, v);
                }
            }
            let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap();
            let resp = out.body(body).send().await.unwrap();
            let mut answer = Response::builder().status(resp.status().as_u16());
            for (k, v) in resp.headers() {
                if k == "location" {
                    let l = v.to_str().unwrap().replace(&p.upstream, &p.me);
                    answer = answer.header(k, l);
                } else if k != "transfer-encoding" && k != "content-length" {
                    answer = answer.header(k, v);
                }
            }
            answer
                .body(Body::from(resp.bytes().await.unwrap()))
                .unwrap()
        }

        let server = crate::in_process::Background::start(|host| {
            let state = Proxy {
                upstream: upstream.to_owned(),
                me: host.to_owned(),
                faults: Arc::new(Mutex::new(faults)),
                http: reqwest::Client::new(),
            };
            axum::Router::new().fallback(handle).with_state(state)
        });
        FaultProxy {
            host: server.host.clone(),
            _server: server,
        }
    }
}
