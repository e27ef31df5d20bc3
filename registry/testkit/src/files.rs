//! A static file server over a directory: stands in for a release's download URL (the
//! actions' installer fetches `v<version>/<asset>` from it), counting what was fetched.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct FileServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    fetched: Arc<AtomicUsize>,
    asked: Arc<AtomicUsize>,
    _server: crate::in_process::Background,
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
            asked: Arc<AtomicUsize>,
        }
        async fn file(State(app): State<App>, Path(rest): Path<String>) -> (StatusCode, Vec<u8>) {
            app.asked.fetch_add(1, Ordering::SeqCst);
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
        let asked = Arc::new(AtomicUsize::new(0));
        let app = App {
            root,
            fetched: fetched.clone(),
            asked: asked.clone(),
        };
        let server = crate::in_process::Background::start(|_| {
            axum::Router::new()
                .route("/{*rest}", get(file))
                .with_state(app)
        });
        FileServer {
            base: server.base(),
            fetched,
            asked,
            _server: server,
        }
    }

    /// How many requests arrived, served or not.
    pub fn requests(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }

    /// How many files were served.
    pub fn fetched(&self) -> usize {
        self.fetched.load(Ordering::SeqCst)
    }
}
