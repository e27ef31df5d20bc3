//! HTTP servers a test kit part runs inside the test process (the fault proxy, the OIDC issuer,
//! the file server): a router served on a port of its own choosing by a runtime of its own,
//! until dropped.

/// A router being served; dropping it stops the server.
pub struct Background {
    /// `127.0.0.1:PORT`.
    pub host: String,
    _runtime: tokio::runtime::Runtime,
}

impl Background {
    /// Binds a free port on 127.0.0.1 and serves the router `make` builds for that address.
    pub fn start(make: impl FnOnce(&str) -> axum::Router) -> Background {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let router = make(&host);
        runtime.spawn(async move { axum::serve(listener, router).await });
        Background {
            host,
            _runtime: runtime,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.host)
    }
}
