//! The downloader against a tiny HTTP/1.1 server on 127.0.0.1 (no other network): verified
//! downloads, rejected corrupt files that leave nothing behind, mirror fallback, and the error when
//! every mirror fails.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use md5::{Digest, Md5};
use soma::data::download::{Remote, fetch};
use soma::error::Error;

/// Serves fixed paths (`status`, `body`) over HTTP/1.1, one connection at a time, until dropped.
struct Server {
    addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(routes: &[(&str, u16, Vec<u8>)]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let routes: HashMap<String, (u16, Vec<u8>)> = routes
            .iter()
            .map(|(p, s, b)| (p.to_string(), (*s, b.clone())))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let _ = serve(conn, &routes);
                }
            }
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, prefix: &str) -> String {
        format!("http://{}/{prefix}/", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, routes: &HashMap<String, (u16, Vec<u8>)>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = routes
        .get(path)
        .cloned()
        .unwrap_or((404, b"not found".to_vec()));
    let reason = if status == 200 { "OK" } else { "Error" };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(&body)?;
    conn.flush()
}

fn md5_hex(bytes: &[u8]) -> &'static str {
    let digest = Md5::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex.leak()
}

/// Deterministic bytes, larger than one read buffer so the stream is read in several pieces.
fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// Files in `dir`, sorted (to assert nothing partial is left).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

#[test]
fn good_files_download_and_verify() {
    let a = payload(1, 200_000);
    let b = payload(2, 10);
    let server = Server::start(&[("/m/a.gz", 200, a.clone()), ("/m/b.gz", 200, b.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("sub"); // created by fetch
    let files = [
        Remote {
            name: "a.gz",
            md5: md5_hex(&a),
        },
        Remote {
            name: "b.gz",
            md5: md5_hex(&b),
        },
    ];
    let mirror = server.url("m");
    fetch(&[&mirror], &dest, &files).unwrap();
    assert_eq!(std::fs::read(dest.join("a.gz")).unwrap(), a);
    assert_eq!(std::fs::read(dest.join("b.gz")).unwrap(), b);
    assert_eq!(listing(&dest), vec!["a.gz", "b.gz"]);

    // Present files are not fetched again: with the server gone this still succeeds.
    drop(server);
    fetch(&[&mirror], &dest, &files).unwrap();
}

#[test]
fn corrupt_file_is_rejected_and_removed() {
    let good = payload(3, 100_000);
    let mut bad = good.clone();
    bad[5000] ^= 1;
    let server = Server::start(&[("/m/f.gz", 200, bad.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let files = [Remote {
        name: "f.gz",
        md5: md5_hex(&good),
    }];
    let err = fetch(&[&server.url("m")], dir.path(), &files).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Download { .. }), "{err:?}");
    assert!(msg.contains("md5 mismatch"), "{msg}");
    assert!(
        msg.contains(md5_hex(&good)) && msg.contains(md5_hex(&bad)),
        "{msg}"
    );
    assert!(msg.contains(&server.url("m")), "{msg}");
    assert!(
        listing(dir.path()).is_empty(),
        "left behind: {:?}",
        listing(dir.path())
    );
}

#[test]
fn falls_back_to_the_next_mirror() {
    let good = payload(4, 70_000);
    let mut bad = good.clone();
    bad.truncate(60_000);
    // Mirror `missing` answers 404, mirror `corrupt` serves a wrong file, mirror `ok` is right.
    let server = Server::start(&[("/corrupt/f.gz", 200, bad), ("/ok/f.gz", 200, good.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let files = [Remote {
        name: "f.gz",
        md5: md5_hex(&good),
    }];
    let (missing, corrupt, ok) = (
        server.url("missing"),
        server.url("corrupt"),
        server.url("ok"),
    );
    fetch(&[&missing, &corrupt, &ok], dir.path(), &files).unwrap();
    assert_eq!(std::fs::read(dir.path().join("f.gz")).unwrap(), good);
    assert_eq!(listing(dir.path()), vec!["f.gz"]);
}

#[test]
fn all_mirrors_failing_is_a_download_error() {
    let good = payload(5, 1000);
    let server = Server::start(&[
        ("/corrupt/f.gz", 200, payload(6, 1000)),
        ("/gone/f.gz", 500, Vec::new()),
    ]);
    // A port with nothing listening: bind, note the address, close.
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/x/", l.local_addr().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let files = [Remote {
        name: "f.gz",
        md5: md5_hex(&good),
    }];
    let mirrors = [
        server.url("missing"),
        server.url("corrupt"),
        server.url("gone"),
        refused.clone(),
    ];
    let mirrors: Vec<&str> = mirrors.iter().map(String::as_str).collect();
    let err = fetch(&mirrors, dir.path(), &files).unwrap_err();
    let msg = err.to_string();
    let Error::Download { url, reason } = &err else {
        panic!("expected a download error, got {err:?}");
    };
    for m in &mirrors {
        assert!(url.contains(&format!("{m}f.gz")), "{url} lacks {m}");
    }
    assert!(reason.contains("404"), "{msg}");
    assert!(reason.contains("500"), "{msg}");
    assert!(reason.contains("md5 mismatch"), "{msg}");
    assert!(
        listing(dir.path()).is_empty(),
        "left behind: {:?}",
        listing(dir.path())
    );
}
