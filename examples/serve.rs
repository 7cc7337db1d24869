//! Serves the browser page (`web/`, built by `web/build.sh`) and the four MNIST files, found
//! or downloaded as the `mnist` example does, so that a browser can train soma on WebGPU:
//!
//! ```sh
//! web/build.sh && cargo run --release --example serve   # then open http://127.0.0.1:8000/
//! ```
//!
//! The page fetches `data/<name>` for each of MNIST's four files; the answer is the file found
//! (gzip or raw IDX: the engine reads both). Only files under `web/` and those four are served.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use clap::Parser;
use soma::data::{DatasetKind, locate};
use tiny_http::{Header, Method, Request, Response, Server};

/// Serve soma's browser page and MNIST.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Address to listen on (127.0.0.1: this machine only).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Directory holding the four IDX files (else $MNIST_DIR, ./data/mnist, or a download).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Never download missing data.
    #[arg(long)]
    offline: bool,
    /// Print each request's method and URL on stdout as it comes (the end-to-end test checks
    /// that training on dropped data asks the server for nothing).
    #[arg(long)]
    log_requests: bool,
}

/// The page's files, relative to the crate root.
const WEB_DIR: &str = "web";

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(WEB_DIR);
    let glue = root.join("pkg").join("soma_web.js");
    if !glue.is_file() {
        return Err(format!(
            "{} not found: build the page first with `web/build.sh`",
            glue.display()
        )
        .into());
    }
    let files = locate(DatasetKind::Mnist, args.data.as_deref(), !args.offline)?;
    let data = [
        &files.train_images,
        &files.train_labels,
        &files.test_images,
        &files.test_labels,
    ];
    let server = Server::http((args.host.as_str(), args.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or("the server has no IP address")?;
    // The first stdout line says where, for scripts that start this on port 0.
    println!("serving http://{addr}/");
    eprintln!(
        "page from {}, MNIST from {}",
        root.display(),
        files.dir.display()
    );
    for request in server.incoming_requests() {
        if args.log_requests {
            println!("{} {}", request.method(), request.url());
        }
        let path = resolve(&root, &data, request.url());
        if let Err(e) = answer(request, path) {
            eprintln!("serve: {e}");
        }
    }
    Ok(())
}

/// The file a URL names: `data/<MNIST name>` (any suffix the found file has) or a file under
/// `root`; `None` for anything else, `..` and hidden names included.
fn resolve(root: &Path, data: &[&PathBuf; 4], url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    if let Some(name) = path.strip_prefix("data/") {
        return data
            .iter()
            .find(|f| {
                f.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.trim_end_matches(".gz") == name)
            })
            .map(|f| f.to_path_buf());
    }
    let relative = Path::new(path);
    let plain = relative.components().all(|c| match c {
        Component::Normal(s) => !s.to_string_lossy().starts_with('.'),
        _ => false,
    });
    plain.then(|| root.join(relative)).filter(|p| p.is_file())
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        Some("json") => "application/json",
        // The IDX files, gzip or raw, go as bytes: with `Content-Encoding: gzip` the browser
        // would unpack them and the engine check a different file than the one found.
        _ => "application/octet-stream",
    }
}

fn answer(request: Request, path: Option<PathBuf>) -> std::io::Result<()> {
    let header = |k: &str, v: &str| Header::from_bytes(k, v).expect("a valid header");
    if !matches!(request.method(), Method::Get | Method::Head) {
        return request.respond(Response::from_string("method not allowed").with_status_code(405));
    }
    let Some(path) = path else {
        return request.respond(Response::from_string("not found").with_status_code(404));
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            return request.respond(
                Response::from_string(format!("{}: {e}", path.display())).with_status_code(500),
            );
        }
    };
    request.respond(
        Response::from_file(file)
            .with_header(header("Content-Type", content_type(&path)))
            // The page is rebuilt in place: always the current files.
            .with_header(header("Cache-Control", "no-cache")),
    )
}
