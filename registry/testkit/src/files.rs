//! A static file server over a directory: stands in for a release's download URL (the
//! actions' installer fetches `v<version>/<asset>` from it), counting what was fetched.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct FileServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    fetched: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl FileServer {
    /// Serves the files under `root` (`GET /a/b` is `root/a/b`; anything else is a 404).
    pub fn start(root: PathBuf) -> FileServer {
        use axum::extract::{Path, State};
        use axum::http::StatusCode;
        use axum::routing::get;

        #[derive(Clone)]
        struct App {
            root: PathBuf,
            fetched: Arc<AtomicUsize>,
        }
        async fn file(State(app): State<App>, Path(rest): Path<String>) -> (StatusCode, Vec<u8>) {
            if rest.split('/').any(|part| part == ".." || part.is_empty()) {
                return (StatusCode::NOT_FOUND, Vec::new());
            }
            match std::fs::read(app.root.join(&rest)) {
                Ok(bytes) => {
                    app.fetched.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::OK, bytes)
                }
                Err(_) => (StatusCode::NOT_FOUND, Vec::new()),
            }
        }
        let fetched = Arc::new(AtomicUsize::new(0));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route("/{*rest}", get(file))
            .with_state(App {
                root,
                fetched: fetched.clone(),
            });
        runtime.spawn(async move { axum::serve(listener, router).await });
        FileServer {
            base,
            fetched,
            _runtime: runtime,
        }
    }

    /// How many files were served.
    pub fn fetched(&self) -> usize {
        self.fetched.load(Ordering::SeqCst)
    }
}
